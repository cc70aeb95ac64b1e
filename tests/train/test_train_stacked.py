"""fit_stacked / fit_inq_stacked train K models exactly as K separate fit / fit_inq calls (bitwise), resume
exactly from each other's checkpoints, and refuse models that do not stack."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lowbit import QuantConfig, calibrate, quantize_
from lowbit.data import spirals as sp
from lowbit.models.fcdnn import FCDNN
from lowbit.train import TrainConfig, fit, fit_inq
from lowbit.train.stacked import fit_stacked, stack_problem
from lowbit.train.stacked_inq import fit_inq_stacked

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def data():
    t = sp.train_set(0)
    return TensorDataset(t.tensors[0][:700], t.tensors[1][:700])


def _models(width=16, depth=3, residual=True):
    out = []
    for s in SEEDS:
        torch.manual_seed(s)
        out.append(FCDNN(width, depth, residual))
    return out


def _cfgs(**kw):
    base = dict(epochs=2, batch_size=128, lr=0.01, schedule="onecycle")
    return [TrainConfig(**{**base, **kw, "seed": s}) for s in SEEDS]


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


QUANT = {
    "float": None,
    "W2": {"weight": {"name": "uniform", "bits": 2}},
    "A2 pact": {"act": {"name": "pact", "bits": 2}, "keep_float": ["first"]},
    "W2A2 pact": {"weight": {"name": "uniform", "bits": 2}, "act": {"name": "pact", "bits": 2}},
}


@pytest.mark.parametrize("method", list(QUANT))
def test_stacked_training_equals_separate_training_bitwise(data, method, tmp_path):
    models = _models()
    if QUANT[method] is not None:
        for m in models:
            quantize_(m, QuantConfig.from_dict(QUANT[method]))
            calibrate(m, [data.tensors[0][:256]])
    separate = [copy.deepcopy(m) for m in models]
    cfgs = _cfgs()
    sep_hist = [
        fit(m, data, c, run_dir=tmp_path / f"s{i}", progress=False) for i, (m, c) in enumerate(zip(separate, cfgs))
    ]
    assert stack_problem(models, data.tensors[0][:32]) is None
    hist = fit_stacked(models, data, cfgs, run_dirs=[tmp_path / f"f{i}" for i in range(3)])
    for i, (a, b) in enumerate(zip(models, separate)):
        assert _same(a, b), f"seed {SEEDS[i]}: weights differ"
        assert [h["loss"] for h in hist[i]] == [h["loss"] for h in sep_hist[i]]
        # the files a separate fit writes, the same (but for the wall-clock seconds)
        rows = [json.loads(x) for x in (tmp_path / f"f{i}" / "metrics.jsonl").read_text().splitlines()]
        ref = [json.loads(x) for x in (tmp_path / f"s{i}" / "metrics.jsonl").read_text().splitlines()]
        assert [{**r, "seconds": 0} for r in rows] == [{**r, "seconds": 0} for r in ref]
    if method != "float":  # the models really are quantized and trained differently per seed
        assert not torch.equal(models[0].hidden[1].weight, models[1].hidden[1].weight)


def test_stacked_inq_equals_separate_inq_bitwise(data, tmp_path):
    models = _models()
    separate = [copy.deepcopy(m) for m in models]
    cfgs = _cfgs(epochs=1)
    ref = [
        fit_inq(m, data, c, bits=3, run_dir=tmp_path / f"s{i}", progress=False)[0]
        for i, (m, c) in enumerate(zip(separate, cfgs))
    ]
    inqs = fit_inq_stacked(models, data, cfgs, bits=3, run_dirs=[tmp_path / f"f{i}" for i in range(3)])
    for a, b, qa, qb in zip(models, separate, inqs, ref):
        assert _same(a, b)
        assert qa.check() and qb.check()


def test_a_stacked_run_resumes_a_mix_of_finished_and_interrupted_models_exactly(data, tmp_path):
    """Seed 0 trained separately to the end, seed 1 stopped after one epoch, seed 2 not started: the stacked
    resume ends with the weights of three uninterrupted separate runs."""
    cfgs = _cfgs(epochs=3)
    ref = _models()
    for m, c in zip(ref, cfgs):
        fit(m, data, c, progress=False)
    dirs = [tmp_path / f"j{i}" for i in range(3)]
    fit(_models()[0], data, cfgs[0], run_dir=dirs[0], progress=False)
    _stop_after_one_epoch(_models()[1], data, cfgs[1], dirs[1])
    resumed = _models()
    fit_stacked(resumed, data, cfgs, run_dirs=dirs, resume=True)
    for a, b in zip(resumed, ref):
        assert _same(a, b)
    assert len((dirs[1] / "metrics.jsonl").read_text().splitlines()) == 3


def _stop_after_one_epoch(model, data, cfg, run_dir):
    """Run ``fit`` with the full schedule and stop it after epoch 0 (as a kill between epochs would)."""

    class Stop(Exception):
        pass

    from lowbit.train import loop

    real = loop.save_train_state

    def save_then_stop(*a, **k):
        real(*a, **k)
        raise Stop

    loop.save_train_state = save_then_stop
    try:
        with pytest.raises(Stop):
            fit(model, data, cfg, run_dir=run_dir, progress=False)
    finally:
        loop.save_train_state = real


class _BatchMix(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 4)

    def forward(self, x):
        h = self.a(x)
        return h - h.mean(0)  # rows are not independent: stacking would mix the models


def test_models_that_do_not_stack_are_named():
    x = torch.randn(4, 2)
    assert "rows are not independent" in stack_problem([_BatchMix(), _BatchMix()], x)
    bn = [nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4)) for _ in range(2)]
    assert "parameters or buffers outside a Linear" in stack_problem(bn, x)
    drop = [nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.1)) for _ in range(2)]
    assert "dropout" in stack_problem(drop, x)
    assert "differ" in stack_problem([FCDNN(8, 3), FCDNN(8, 4)], x)
