"""What the core install (no extras) must do: run with the python of a venv that has only lowbit's core deps.

Used by `.ci/core_check.sh` (a real core-only venv) and by tests/test_core_install.py (the dev venv with the optional
packages blocked from importing). Prints one line per check; exits non-zero at the first failure.
Usage: python .ci/core_smoke.py WORKDIR
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from types import SimpleNamespace

OPTIONAL = ("scipy", "onnx", "onnxruntime", "librosa", "soundfile", "sklearn", "brevitas")
work = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
work.mkdir(parents=True, exist_ok=True)
os.chdir(work)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def check(what: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        sys.exit(1)


def cli(*args: str, expect: int = 0) -> SimpleNamespace:
    """``lowbit ARGS`` in this process (an uncaught exception is a traceback: the check fails with it)."""
    from lowbit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as e:  # --help, --version, argparse errors
            rc = e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    r = SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())
    tail = (r.stderr.strip().splitlines() or [""])[-1]
    check(f"lowbit {' '.join(args)} -> exit {rc}", rc == expect, tail if rc else "")
    return r


import torch  # noqa: E402

import lowbit as lb  # noqa: E402

torch.set_num_threads(1)
present = [m for m in OPTIONAL if sys.modules.get(m) is not None]
check("import lowbit imports no optional package", not present, ", ".join(present))
check("lowbit --version", cli("--version").stdout.strip().endswith(lb.__version__))

from lowbit.cli import COMMANDS  # noqa: E402

for name in COMMANDS.names():
    cli(name, "--help")
check("reproduce --list names the studies", "spirals" in cli("reproduce", "--list").stdout)
check("quantizers prints the catalogue", "uniform" in cli("quantizers").stdout)
cli("quantizers", "--plot", str(work / "q.png"))
check("quantizers --plot wrote a PNG", (work / "q.png").read_bytes()[:4] == b"\x89PNG")

# quantize_, training (fit with calibration), INQ, summary, freeze, packed files
from lowbit.data import spirals  # noqa: E402
from lowbit.serialize import save_model  # noqa: E402
from lowbit.train import TrainConfig, fit  # noqa: E402

torch.manual_seed(0)
kw = {"width": 16, "depth": 3}
model = lb.models.create_model("fcdnn", **kw)
lb.quantize_(
    model,
    lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first", "last")
    ),
)
train = spirals.train_set(seed=0)
small = torch.utils.data.TensorDataset(*(t[:512] for t in train.tensors))
hist = fit(model, small, TrainConfig(epochs=2, batch_size=64, lr=1e-2), progress=False)
check("fit trains a quantized model", len(hist) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in hist))

float_model = lb.models.create_model("fcdnn", **kw)
opt = torch.optim.SGD(float_model.parameters(), lr=1e-3)
inq = lb.INQ(float_model, bits=4, portions=(0.5, 1.0), optimizer=opt)
for _ in inq:
    opt.zero_grad()
    float_model(small.tensors[0][:64]).sum().backward()
    opt.step()
check("INQ runs all portions", True)

save_model(work / "m.safetensors", model, "fcdnn", **kw)
table = lb.summary(model, torch.randn(1, 2))
check("summary", table.totals["params"] > 0)
lb.freeze(model)
lb.deploy.save_packed(model, work / "m.lowbit", model_name="fcdnn", model_kwargs=kw)
x = torch.randn(8, 2)
same = torch.equal(lb.deploy.load_packed(work / "m.lowbit").eval()(x), model.eval()(x))
check("packed file round trip gives identical outputs", same)

cli("summary", str(work / "m.safetensors"), "--input-shape", "1,2")
cli("summary", str(work / "m.lowbit"))
cli("export", str(work / "m.safetensors"), "--format", "packed", "--out", str(work / "m2.lowbit"))
check("export --format packed wrote a file", (work / "m2.lowbit").stat().st_size > 0)

# a feature that needs an extra says which one, in one line, without a traceback
try:
    import onnx  # noqa: F401

    has_onnx = True
except ImportError:
    has_onnx = False
if not has_onnx:
    r = cli("export", str(work / "m.safetensors"), "--format", "onnx", "--out", "m.onnx", "--input-shape", "1,2",
            expect=2)
    check("ONNX export names the deploy extra", "lowbit[deploy]" in r.stderr and "Traceback" not in r.stderr)
    try:
        lb.deploy.export_onnx(model, work / "m.onnx", torch.randn(1, 2))
        check("lb.deploy.export_onnx without onnx raises", False)
    except ImportError as e:
        check("lb.deploy.export_onnx names the deploy extra", "lowbit[deploy]" in str(e), str(e))
print("core install: all checks passed")
