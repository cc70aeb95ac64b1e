"""``lowbit results RUN_DIR``: the rows of a run's results.sqlite, filtered, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from . import COMMANDS, UsageError


@COMMANDS.register("results")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "results",
        help="query a run's result store (one row per job and metric)",
        description="Print the rows of RUN_DIR/results.sqlite: job id, its axis values (model, method, seed, ...), "
        "metric, value, wall time, model file and code version. --where KEY=VALUE keeps matching rows (repeat to "
        "combine); KEY is an axis or a column (job, metric, value, ...); a key or value the run does not have is an "
        "error that lists what it has. Jobs that failed (or were not run because a job they need failed) are not "
        "result rows: --failed lists them instead, with their errors (--json adds the tracebacks).",
    )
    p.add_argument("run_dir", type=Path, help="a run folder holding results.sqlite")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="keep rows where KEY equals VALUE")
    p.add_argument("--failed", action="store_true", help="list the jobs that failed or were not run, not the results")
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
        key = "job" if key.strip() == "job_id" else key.strip()
        out[key] = value.strip()
    return out


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _grid_axes(run_dir: Path) -> list[str]:
    """The axes the run's spec.toml names (read as TOML only: nothing it names is imported)."""
    try:
        return list(tomllib.loads((run_dir / "spec.toml").read_text()).get("grid", {}))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return []


def check_where(where: dict[str, str], everything: list[dict[str, Any]], run_dir: Path) -> None:
    """Each KEY must be a column or axis of the run and each VALUE one that some row (result or failure) has:
    a typo is an error listing what there is, not an empty table. Filters that each match but not together
    give 0 rows."""
    columns = ["job", *_grid_axes(run_dir)]
    for r in everything:
        columns += [k for k in r if k not in columns and k != "traceback"]
    for key, want in where.items():
        if key not in columns:
            raise UsageError(f"--where {key}={want}: unknown key {key!r}; keys of this run: {', '.join(columns)}")
        present: list[str] = []
        for r in everything:
            v = _text(r.get(key))
            if v and v not in present:
                present.append(v)
        if want not in present:
            shown = ", ".join(present[:20]) + (f", ... ({len(present)} in all)" if len(present) > 20 else "")
            has = f"{key} values in this run: {shown}" if present else f"no row of this run has a {key}"
            raise UsageError(f"--where {key}={want}: matches nothing; {has}")


def _failed_note(failed: list[dict[str, Any]], run_dir: Path) -> str:
    from ..engine.rows import FAILED

    n = sum(f["status"] == FAILED for f in failed)
    parts = [f"{n} job{'s' * (n != 1)} failed"] if n else []
    if len(failed) - n:
        m = len(failed) - n
        parts.append(f"{m} {'was' if m == 1 else 'were'} not run" if n else f"{m} job{'s' * (m != 1)} not run")
    return f"{' and '.join(parts)}: `lowbit results {run_dir} --failed` lists them"


def _run(args: argparse.Namespace) -> int:
    from ..engine.safepath import check_run_folder
    from ..engine.store import Store

    check_run_folder(args.run_dir)  # a folder from elsewhere: no link in it leads out of it
    with Store(args.run_dir, create=False) as store:
        results = [r.flat() for r in store.rows()]
        failed = [{**f.flat(), "traceback": f.detail} for f in store.failures()]
    where = _where(args.where)
    check_where(where, results + failed, args.run_dir)
    rows = [r for r in (failed if args.failed else results) if all(_text(r.get(k)) == v for k, v in where.items())]
    if not args.json:
        rows = [{k: v for k, v in r.items() if k != "traceback"} for r in rows]
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    note = _failed_note(failed, args.run_dir) if failed and not args.failed else ""
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
        print(f"{len(rows)} {'failed or not run jobs' if args.failed else 'rows'}" + (f"; {note}" if note else ""))
        return 0
    if note:  # stdout stays the rows a program reads
        print(f"lowbit results: note: {note}", file=sys.stderr)
    return 0
