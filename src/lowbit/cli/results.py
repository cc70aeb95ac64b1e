"""``lowbit results RUN_DIR``: the rows of a run's results.sqlite, filtered, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from . import COMMANDS, UsageError


@COMMANDS.register("results")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "results",
        help="query a run's result store (one row per job and metric)",
        description="Print the rows of RUN_DIR/results.sqlite: job id, its axis values (model, method, seed, ...), "
        "metric, value, wall time, model file and code version. --where AXIS=VALUE keeps matching rows (repeat to "
        "combine; also job=ID, metric=NAME).",
    )
    p.add_argument("run_dir", type=Path, help="a run folder holding results.sqlite")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="keep rows where KEY equals VALUE")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print a JSON list of row objects")
    p.set_defaults(func=_run)


def _where(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--where {item!r} is not accepted; expected KEY=VALUE, e.g. method=W2")
        out[key.strip()] = value.strip()
    return out


def _run(args: argparse.Namespace) -> int:
    from ..engine.store import Store

    with Store(args.run_dir, create=False) as store:
        rows = [r.flat() for r in store.rows(_where(args.where))]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    if args.json:
        print(json.dumps(rows, indent=1))
    elif args.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        shown = [c for c in columns if c not in ("model_path", "code_version")]
        text = [
            [("" if r.get(c) is None else f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r[c])) for c in shown]
            for r in rows
        ]
        widths = [max([len(c)] + [len(t[i]) for t in text]) for i, c in enumerate(shown)]
        print("  ".join(c.ljust(w) for c, w in zip(shown, widths)))
        for t in text:
            print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
        print(f"{len(rows)} rows")
    return 0
