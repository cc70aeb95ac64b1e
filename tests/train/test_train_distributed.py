"""Data-parallel training (train/distributed.py, engine/backends/ddp.py): gloo processes on 127.0.0.1.

- 2 processes train like 1 with the same global batch: weights equal within float32 summation-order tolerance
  (rtol 1e-5, atol 1e-6 after 12 Adam steps of a W2/PACT-A2 MLP), bitwise equal across the ranks; the last
  batch splits unevenly and, in one epoch, leaves rank 1 without a sample; rank 1 writes no file.
- INQ: the ranks start from different weights; the partition, codebooks and frozen weights after ``fit_inq``
  are rank 0's, bitwise, on both ranks.
- ``lowbit run --nproc 2``: a rank killed mid-training stops the other with one line and the launcher with one
  line; ``--resume`` ends with the model files and store rows of an uninterrupted 2-process run, bitwise.

A rank ends with ``os._exit`` after its checks (tests/nn/test_nn_ddp.py: a DDP reducer's destructor can deadlock
at interpreter exit); a failing rank raises and ``mp.spawn`` reports it.
"""

from __future__ import annotations

import datetime
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

import lowbit as lb
from lowbit.engine.backends.ddp import free_port
from lowbit.nn import QuantMixin
from lowbit.quantizers import get
from lowbit.train import TrainConfig, fit, fit_inq, load_checkpoint

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is not available"
)
SRC = Path(lb.__file__).resolve().parents[1]
# 193 samples in global batches of 64: 64, 64, 64, 1 -> the last batch has nothing for rank 1
CFG = dict(epochs=3, batch_size=64, lr=0.01, seed=3, calibrate_batches=2)


def data(n: int = 193) -> TensorDataset:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long())


def model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    return lb.quantize_(m, lb.QuantConfig(weight=get("uniform", bits=2), act=get("pact", bits=2)))


def _init(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60)
    )


def _gathered(t: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(t) for _ in range(2)]
    dist.all_gather(out, t)
    return out


def _flat(m: nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().float().reshape(-1) for t in m.state_dict().values()])


def _fit_rank(rank: int, port: int, out: str) -> None:
    _init(rank, port)
    m = model()
    run_dir = Path(out) / f"rank{rank}"
    history = fit(m, data(), TrainConfig(**CFG), run_dir=run_dir, progress=False)
    a, b = _gathered(_flat(m))
    assert torch.equal(a, b), "the ranks' models differ"
    if rank == 0:
        torch.save({"state": m.state_dict(), "history": history}, Path(out) / "ddp.pt")
    else:
        assert not run_dir.exists() or not any(run_dir.rglob("*")), "rank 1 wrote files"
    dist.barrier()
    os._exit(0)


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    mp.spawn(_fit_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    got = torch.load(tmp_path / "ddp.pt")
    m = model()
    want = fit(m, data(), TrainConfig(**CFG), progress=False)
    for k, v in m.state_dict().items():
        torch.testing.assert_close(got["state"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert any(k.endswith("alpha") for k in got["state"]), "no PACT alpha: the quantizer state is not tested"
    assert not torch.equal(_flat(m), _flat(model())), "training changed nothing"
    assert [round(h["loss"], 5) for h in got["history"]] == [round(h["loss"], 5) for h in want]
    tensors, meta = load_checkpoint(tmp_path / "rank0" / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 2 and "rng.torch.1" in tensors  # rank 1's RNG state is checkpointed too


def _inq_rank(rank: int, port: int, out: str) -> None:
    _init(rank, port)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    if rank == 1:  # a different model on rank 1: only a broadcast can make the partitions agree
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
    inq, _ = fit_inq(m, data(), TrainConfig(epochs=1, batch_size=64, lr=0.01), bits=4, portions=(0.5, 1.0))
    layers = [x for x in m.modules() if isinstance(x, QuantMixin)]
    for layer in layers:
        q = layer.weight_quant
        for t in (layer.weight.detach(), q.frozen("weight").to(torch.uint8), q.get_buffer("exp_weight")):
            a, b = _gathered(t.contiguous())
            assert torch.equal(a, b), f"rank {rank}: INQ state differs across ranks"
    assert inq.check() and inq.stage == 1
    dist.barrier()
    os._exit(0)


@pytest.mark.slow
def test_inq_partition_is_decided_on_rank_0_and_broadcast(tmp_path):
    mp.spawn(_inq_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)


KILLER = """
import os
import signal

from torch import nn


class Net(nn.Module):
    '''An MLP whose rank 1 kills itself (SIGKILL) at training forward KILL_AT, when that is set.'''

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                                  nn.Linear(16, num_classes))
        self.seen = 0

    def forward(self, x):
        if self.training:
            self.seen += 1
            if os.environ.get("RANK") == "1" and str(self.seen) == os.environ.get("KILL_AT"):
                os.kill(os.getpid(), signal.SIGKILL)
        return self.body(x)


def build(in_features, num_classes):
    return Net(in_features, num_classes)
"""

CONFIG = """
name = "ddp-kill"
[data]
name = "spirals"
subset = 300
test_resolution = 11
[model]
target = "killer:build"
[train]
epochs = 5
batch_size = 50
lr = 0.01
[quant]
weight = { name = "uniform", bits = 2 }
act = { name = "pact", bits = 2 }
keep_float = ["first"]
[retrain]
epochs = 2
"""


def _lowbit(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "KILL_AT"}
    e.update(PYTHONPATH=f"{SRC}{os.pathsep}{cwd}", LOWBIT_DIST_TIMEOUT="60", **env)
    return subprocess.run(
        [sys.executable, "-m", "lowbit", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=180
    )


def _models(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return {p.parent.name: load_file(p) for p in sorted(out.glob("jobs/*/model.safetensors"))}


def _rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "results.sqlite") as db:
        return sorted(db.execute("SELECT job_id, metric, value FROM results").fetchall())


@pytest.mark.slow
def test_killed_rank_stops_the_run_in_one_line_and_resume_is_exact(tmp_path):
    (tmp_path / "killer.py").write_text(textwrap.dedent(KILLER))
    (tmp_path / "exp.toml").write_text(CONFIG)
    run = ["run", "exp.toml", "--nproc", "2", "--no-progress"]
    ref = _lowbit([*run, "--out", "ref"], tmp_path)
    assert ref.returncode == 0, ref.stderr

    # rank 1 dies in epoch 2 of the float job (6 steps per epoch)
    killed = _lowbit([*run, "--out", "run"], tmp_path, KILL_AT="15")
    assert killed.returncode != 0
    lines = [ln for ln in killed.stderr.splitlines() if ln.strip() and "Warning" not in ln]
    assert "Traceback" not in killed.stderr, killed.stderr
    assert len(lines) == 2, killed.stderr  # rank 0's line and the launcher's
    assert lines[0].startswith("lowbit run: error: rank 0 of 2: another process of this run stopped"), lines
    assert "--resume" in lines[0]
    assert (
        lines[1] == f"lowbit run: rank 1 of 2 was killed by {signal.SIGKILL.name}; the run stopped: rerun with "
        "--resume to continue"
    ), lines
    assert list((tmp_path / "run").glob("jobs/*/train/checkpoints/last.safetensors")), "killed before a checkpoint"
    assert not list((tmp_path / "run").glob("jobs/*/model.safetensors")), "killed after the float job finished"

    resumed = _lowbit([*run, "--out", "run", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    want, got = _models(tmp_path / "ref"), _models(tmp_path / "run")
    assert len(want) == 2 and want.keys() == got.keys()
    for job in want:
        for k in want[job]:
            assert torch.equal(want[job][k], got[job][k]), f"job {job} tensor {k} differs after the resume"
    assert _rows(tmp_path / "ref") == _rows(tmp_path / "run")


def test_nproc_options_are_checked_in_one_line(tmp_path, capsys):
    from lowbit.cli import main

    (tmp_path / "killer.py").write_text(textwrap.dedent(KILLER))
    (tmp_path / "exp.toml").write_text(CONFIG)
    cfg = str(tmp_path / "exp.toml")
    assert main(["run", cfg, "--nproc", "0"]) == 2
    assert "--nproc 0 is not accepted; expected a whole number >= 1" in capsys.readouterr().err
    assert main(["run", cfg, "--nproc", "2", "--workers", "4"]) == 2
    assert "leave out --backend and --workers" in capsys.readouterr().err
    assert main(["run", cfg, "--nproc", "2", "--plan-only"]) == 0  # a dry run plans in this process: no launch
    assert "2 jobs" in capsys.readouterr().out
