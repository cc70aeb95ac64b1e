"""Edge cases of the engine found in review: each of these failed (or misbehaved) before its fix."""

from __future__ import annotations

import pytest
import torch
from support.specs import SPIRALS_TINY

from lowbit.engine.backends import make_backend
from lowbit.engine.plan import plan
from lowbit.engine.run import sweep
from lowbit.engine.spec import SpecError, parse_spec

SMALL = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')  # float only


def _spec(extra: str = "", text: str = SMALL):
    import tomllib

    return parse_spec(tomllib.loads(text + extra), None, "edges.toml")


def test_a_figure_with_nothing_to_plot_still_gives_a_report(tmp_path):
    spec = _spec('[[report.figures]]\nmetric = "accuracy"\nx = "seed"\nwhere = { method = "float", seed = 5 }\n')
    report = sweep(spec, tmp_path / "run", workers=1, progress=False)
    assert report.is_file() and "accuracy" in report.read_text()


def test_resume_accepts_a_changed_report_section_but_not_a_changed_recipe(tmp_path):
    sweep(_spec(), tmp_path / "run", workers=1, progress=False)
    extra = '[[report.tables]]\nrows = "model"\ncolumns = "method"\nvalue = "accuracy"\n'
    assert sweep(_spec(extra), tmp_path / "run", resume=True, workers=1, progress=False).is_file()
    with pytest.raises(ValueError, match="first difference: train.epochs"):
        sweep(_spec(text=SMALL.replace("epochs = 3\n", "epochs = 4\n")), tmp_path / "run", resume=True, workers=1)


def test_reserved_axis_names_are_refused():
    with pytest.raises(SpecError, match=r"grid.metric = \[2, 4\]: this name is a column of the result rows"):
        _spec(text=SMALL.replace("seed = [0]", "seed = [0]\nmetric = [2, 4]"))


def test_an_exclude_that_removes_everything_is_an_error():
    spec = _spec('[[exclude]]\nmodel = "small"\n')
    with pytest.raises(SpecError, match="removes every cell"):
        plan(spec)


def test_report_extra_options_are_checked_on_load():
    with pytest.raises(SpecError, match=r"report.extras.score_vs_axis.figure: unknown key"):
        _spec("[report.extras.score_vs_axis]\nfigure = {}\n")


def test_one_worker_backend_gives_back_the_callers_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with make_backend("local", 1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


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
