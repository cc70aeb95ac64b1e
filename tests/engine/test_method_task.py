"""A method may pick its own task (a recipe axis inside one spec: plain vs crop + flip vs label smoothing), its
QAT children inherit it, the choice is part of the job id, and a wrong one is refused before anything runs.
The label-smoothed loss is checked against the formula written out by hand."""

from __future__ import annotations

import math
import tomllib

import pytest
import torch
from support.specs import DIGITS, SPIRALS_TINY

from lowbit.engine.plan import plan
from lowbit.engine.run import sweep
from lowbit.engine.spec import SpecError, parse_spec
from lowbit.tasks import get_task
from lowbit.tasks.images import LABEL_SMOOTHING


def _spec(text: str):
    return parse_spec(tomllib.loads(text), None, "digits.toml")


SMALL = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')  # float only
IMAGE = DIGITS.replace('task = "classification"\n[data]', 'task = "image_classification"\n[data]')


def _with_task(text: str, task_line: str) -> str:
    return text.replace('[methods.float]\nkind = "float"', f'[methods.float]\nkind = "float"\n{task_line}')


def test_method_task_is_inherited_and_changes_the_ids():
    plain = {j.label: j.id for j in plan(_spec(IMAGE))}
    planned = plan(_spec(_with_task(IMAGE, 'task = "image_classification_crop_flip"')))
    assert {j.label for j in planned} == set(plain)
    for j in planned:
        # float has its own task; W4A4 / INQ retrain with their float parent's data treatment
        assert j.config["task"] == "image_classification_crop_flip", j.label
        assert "task" not in j.config["recipe"]  # the task lives once, in config["task"]
        assert plain[j.label] != j.id  # a different data treatment is a different job
    # naming the spec's own task on the method is the same job as not naming it
    same = {j.label: j.id for j in plan(_spec(_with_task(IMAGE, 'task = "image_classification"')))}
    assert same == plain


def test_a_child_may_override_its_parents_task():
    text = IMAGE.replace(
        '[methods.W4A4]\nkind = "qat"', '[methods.W4A4]\nkind = "qat"\ntask = "image_classification_crop_flip_smooth"'
    )
    tasks = {j.axes["method"]: j.config["task"] for j in plan(_spec(text))}
    assert tasks == {
        "float": "image_classification",
        "W4A4": "image_classification_crop_flip_smooth",
        "INQ": "image_classification",
    }


@pytest.mark.parametrize(
    "task, message",
    [
        ('"no_such_task"', r"methods\.float\.task = 'no_such_task': unknown task; accepted: .*classification"),
        # classification reports accuracy only; image_classification also error: tables would read them differently
        (
            '"image_classification"',
            r"methods\.float\.task = 'image_classification': expected a task reporting the spec "
            r"task 'classification''s metrics \(accuracy\)",
        ),
    ],
)
def test_bad_method_task_is_refused(task, message):
    with pytest.raises(SpecError, match=message):
        _spec(_with_task(DIGITS, f"task = {task}"))


def test_label_smoothing_loss_matches_the_formula():
    """Szegedy et al. 2016 §7: target q = (1 - ε) one-hot + ε / K; loss = -Σ q log softmax(z). The model ignores
    its (augmented) input, so the crop + flip does not change the logits."""
    torch.manual_seed(0)
    logits = torch.randn(5, 4)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits

    x, y = torch.randn(5, 3, 8, 8), torch.tensor([0, 3, 1, 1, 2])
    got = get_task("image_classification_crop_flip_smooth").loss(Fixed(), (x, y)).item()
    eps, k = LABEL_SMOOTHING, 4
    total = 0.0
    for i in range(5):
        z = [float(v) for v in logits[i]]
        log_norm = math.log(sum(math.exp(v) for v in z))
        for c in range(k):
            q = (1 - eps) * (c == int(y[i])) + eps / k
            total -= q * (z[c] - log_norm)
    assert got == pytest.approx(total / 5, rel=1e-6)
    plain = get_task("image_classification_crop_flip").loss(Fixed(), (x, y)).item()
    assert plain != pytest.approx(got)  # the smoothing is applied


def test_a_qat_job_is_placed_on_its_training_device_before_it_is_calibrated(tmp_path, monkeypatch):
    """Calibration and the metrics before retraining run where training will (a paper-scale job on a GPU)."""
    from lowbit.engine import steps

    events = []
    real_place, real_quantize = steps.place, steps._Ctx.quantize

    def place(model, device):
        events.append(("place", device))
        return real_place(model, device)

    def quantize(self, model):
        events.append(("quantize", next(model.parameters()).device.type))
        return real_quantize(self, model)

    monkeypatch.setattr(steps, "place", place)
    monkeypatch.setattr(steps._Ctx, "quantize", quantize)
    qat = '[methods.W4]\nkind = "qat"\nparent = "float"\ncalibrate = 64\n'
    qat += 'quant = { weight = { name = "uniform", bits = 4 } }\n'
    sweep(
        _spec(text=SMALL.replace('method = ["float"]', 'method = ["float", "W4"]') + qat),
        tmp_path / "r",
        workers=1,
        progress=False,
    )
    assert events == [("place", "cpu"), ("quantize", "cpu")]
