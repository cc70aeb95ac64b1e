"""The zoo table of docs/guide/own-model.md: models nobody here wrote, each quantized with the four configs of the
zoo tests, measured side by side in one run.

For every zoo model (tests/support/zoo.py: torchvision, timm, transformers, nn.Transformer, an LSTM, a layer bag;
random weights, small inputs) and config (W8A8, W4 weights only, W2A2 uniform + PACT with first and last layer
float, LSQ W4A4):

- quantized share: the share of the model's weights that are quantized (1 - ``lowbit.coverage.float_share``);
- QAT step / float step: the time of one training step (forward, backward, Adam) of the quantized model over the
  same step of the float model, both eager, median of ``steps`` timed steps after ``warmup``, interleaved;
- ONNX per form (qdq, qop, integer): the largest |ONNX - fake-quantized| over the outputs, in output steps
  (``lowbit.deploy.onnx_check.compare``: <= 1 is "deployed = simulated"), and the top-1 agreement on the batch.

    .venv/bin/python benchmarks/zoo_table.py            # everything (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/zoo_table.py --no-onnx  # shares and step times only
    .venv/bin/python benchmarks/zoo_table.py --models tv_resnet18 lstm_classifier

Prints a Markdown table (and ``--json PATH`` writes the numbers).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.zoo import ZOO, available, build  # noqa: E402

import lowbit as lb  # noqa: E402
from lowbit.coverage import float_share  # noqa: E402

HP = {"batch": 4, "warmup": 2, "steps": 7, "threads": 2, "lr": 1e-3}  # batch of 4 images 32x32 or 12 tokens
G = lb.quantizers.get
CONFIGS = {
    "W8A8": lambda: lb.QuantConfig(weight=G("uniform", bits=8), act=G("uniform", bits=8)),
    "W4": lambda: lb.QuantConfig(weight=G("uniform", bits=4)),
    "W2A2": lambda: lb.QuantConfig(weight=G("uniform", bits=2), act=G("pact", bits=2), keep_float=("first", "last")),
    "LSQ W4A4": lambda: lb.QuantConfig(weight=G("lsq", bits=4), act=G("lsq", bits=4)),
}
FORMS = ("qdq", "qop", "integer")


def _step_fn(model: torch.nn.Module, x: tuple):
    opt = torch.optim.Adam(model.parameters(), lr=HP["lr"])
    y = torch.arange(x[0].shape[0]) % 10
    model.train()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(*x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def step_ratio(qmodel: torch.nn.Module, fmodel: torch.nn.Module, x: tuple) -> float:
    """Median QAT step time over the median float step time, the two timed alternately."""
    q, f = _step_fn(qmodel, x), _step_fn(fmodel, x)
    for _ in range(HP["warmup"]):
        q(), f()
    tq, tf = [], []
    for _ in range(HP["steps"]):
        for fn, out in ((q, tq), (f, tf)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(tq) / statistics.median(tf)


def onnx_agreement(model: torch.nn.Module, x: tuple) -> dict[str, str]:
    from lowbit.deploy import export_onnx
    from lowbit.deploy.onnx_check import compare

    out = {}
    model = lb.freeze(copy.deepcopy(model)).eval()  # what is shipped: compare() reads the frozen model
    with tempfile.TemporaryDirectory() as d:
        for form in FORMS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    path = export_onnx(model, Path(d) / f"{form}.onnx", x, form=form)
                    a = compare(model, path, x)
                out[form] = f"{a.max_ratio:.2f} / {100 * a.top1:.0f} %"
            except Exception as e:  # noqa: BLE001  (a cell says what failed; the table goes on)
                out[form] = f"{type(e).__name__}"
    return out


def measure(name: str, with_onnx: bool) -> list[dict]:
    rows = []
    for cname, cfg in CONFIGS.items():
        qmodel, x = build(name)
        fmodel, _ = build(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lb.quantize_(qmodel, cfg())
            lb.calibrate(qmodel, [x])
        row = {"model": name, "config": cname, "quantized share": 1 - float_share(qmodel)}
        if with_onnx:
            row |= onnx_agreement(qmodel, x)
        row["QAT step / float step"] = step_ratio(qmodel, fmodel, x)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _cell(column: str, value) -> str:
    if column == "quantized share":
        return f"{value:.3f}"
    return f"{value:.2f}x" if "step" in column else str(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=list(ZOO))
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(HP["threads"])
    rows = []
    for name in args.models:
        reason = available(ZOO[name])
        if reason:
            print(f"skipped: {reason}", file=sys.stderr)
            continue
        rows += measure(name, not args.no_onnx)
    cols = ["model", "config", "quantized share", "QAT step / float step", *([] if args.no_onnx else FORMS)]
    print(f"torch {torch.__version__}, {HP}; ONNX cells: max |ONNX - simulated| in output steps / top-1 agreement")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        cells = [
            f"{r[c]:.3f}" if c == "quantized share" else f"{r[c]:.2f}x" if "step" in c else str(r[c]) for c in cols
        ]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
