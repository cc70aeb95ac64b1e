"""Memory of reading a large result store: ``Store.rows()``, ``RunResults`` (what ``lowbit report`` reads),
``build_report`` (all of ``lowbit report``) and ``lowbit results --csv``, measured as the peak resident memory
(``ru_maxrss``) of a fresh process over its resident memory just before the call; each measurement runs in its own
process, so one does not inherit another's peak.

    .venv/bin/python benchmarks/store_memory.py [--rows 1000000] [--metrics 10] [--out /tmp/store-bench]

The store is synthetic but made the way a sweep makes it: a digits spec with one model, the float and W4A4 methods
and as many seeds as it takes to reach ``--rows`` rows; every job's rows are written with ``Store.add_job`` from the
job's own planned config (so each row carries the real config JSON and checksum). ``--metrics`` values per job.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SPEC = """
name = "store-bench"
task = "classification"
[data]
name = "digits"
subset = 300
[grid]
model = ["narrow"]
method = ["float", "W4A4"]
seed = {seeds}
[models.narrow]
name = "fcdnn"
width = 16
depth = 2
[train]
epochs = 3
[methods.float]
kind = "float"
[methods.W4A4]
kind = "qat"
parent = "float"
calibrate = 256
train = {{ epochs = 1, lr = 0.001 }}
[methods.W4A4.quant]
weight = {{ name = "uniform", bits = 4 }}
act = {{ name = "uniform", bits = 4, signed = false }}
"""


def build(out: Path, rows: int, metrics: int) -> None:
    import tomllib

    from lowbit.engine.plan import plan
    from lowbit.engine.spec import parse_spec
    from lowbit.engine.store import Store

    seeds = max(1, rows // (2 * metrics))
    text = SPEC.format(seeds=json.dumps(list(range(seeds))))
    out.mkdir(parents=True, exist_ok=True)
    spec = parse_spec(tomllib.loads(text), source="bench")
    (out / "spec.toml").write_text(spec.to_toml())
    names = ["accuracy", "accuracy_before", "train_accuracy", "train_loss", "memory"]
    names += [f"m{i}" for i in range(metrics - len(names))]
    t0 = time.perf_counter()
    with Store(out) as store:
        store._db.execute("PRAGMA synchronous=OFF")  # only the writing is sped up; the rows are the same
        for k, job in enumerate(plan(spec)):
            values = {n: 50.0 + (k % 97) / 10 for n in names[:metrics]}
            store.add_job(job.id, values, job.axes, job.config, 1.5, f"jobs/{job.id}/model.safetensors")
        n = store._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    size = (out / "results.sqlite").stat().st_size
    print(
        f"built {n:,} rows ({seeds:,} seeds x 2 methods x {metrics} metrics) in {time.perf_counter() - t0:.0f} s; "
        f"results.sqlite {size / 2**20:.0f} MiB"
    )


MEASURE = r"""
import resource, sys, io, contextlib
import torch
torch.set_num_threads(1)
from lowbit.engine.store import Store
from lowbit.engine.report.results import RunResults
from lowbit.cli import main
what, out = sys.argv[1], sys.argv[2]
def rss():  # current resident set, KiB
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024
before = rss()
if what == "rows":
    with Store(out, create=False) as s:
        r = s.rows()
elif what == "RunResults":
    r = RunResults(out)
elif what == "report":
    from lowbit.engine.report import build_report
    r = build_report(out)
elif what == "results-csv":
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        main(["results", out, "--csv"])
    r = buf.getvalue()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, peak)
"""


def measure(out: Path, what: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", MEASURE, what, str(out)], capture_output=True, text=True)
    if res.returncode:
        print(f"{what}: failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
        return float("nan"), time.perf_counter() - t0
    before, peak = map(int, res.stdout.split()[-2:])
    return (peak - before) / 1024, time.perf_counter() - t0  # MiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--metrics", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("/tmp/lowbit-store-bench"))
    p.add_argument("--what", nargs="*", default=["rows", "RunResults", "report", "results-csv"])
    args = p.parse_args()
    out = args.out / f"rows{args.rows}"
    if not (out / "results.sqlite").is_file():
        build(out, args.rows, args.metrics)
    n = args.rows
    for what in args.what:
        mib, secs = measure(out, what)
        print(
            f"{what:12s} {n:>9,} rows: peak {mib:8.1f} MiB over the process before it "
            f"({mib * 2**20 / n:6.0f} bytes/row), {secs:.0f} s"
        )


if __name__ == "__main__":
    main()
