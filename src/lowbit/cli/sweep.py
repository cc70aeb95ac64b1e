"""``lowbit sweep SPEC``: run every job of a study spec into one run folder (docs/architecture.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import COMMANDS, UsageError


def add_run_options(p: argparse.ArgumentParser, scale_help: str) -> None:
    """Options shared by sweep, run and reproduce."""
    p.add_argument("--scale", default=None, help=scale_help)
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<spec name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (finished jobs are not re-run)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the planned jobs and their count, then run every check that needs the data (load it, build each "
        "model on it, plan each quantization); train nothing, write nothing",
    )
    p.add_argument(
        "--plan-only",
        action="store_true",
        help="like --dry-run without loading the data or building models (the spec's own checks only)",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="the folder holding the data sets (sets LOWBIT_DATA for this run; default: $LOWBIT_DATA or "
        "<repo>/../shared/data)",
    )
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2; 1 = in-process)")
    add_backend_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="take jobs already finished in run folder DIR (same config, so the same job id) instead of training "
        "them again, e.g. to extend a run to more seeds; repeatable",
    )


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """--backend and its options, --tensorboard (sweep, run, reproduce, design; docs/scaling.md)."""
    p.add_argument(
        "--backend",
        default="local",
        help="where jobs run: local (worker processes on this machine) or ray (a Ray cluster: the cluster extra)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="--backend ray: the cluster to join, auto or HOST:PORT (of `ray start --head`); default: start Ray on "
        "this machine with --workers CPUs",
    )
    p.add_argument(
        "--storage",
        type=Path,
        default=None,
        metavar="DIR",
        help="--backend ray: a folder every node sees at this path; jobs keep their checkpoints there, so a job "
        "retried on another node continues where it was (default: a temporary folder on the node)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=None,
        help="--backend ray: how many times a job whose worker or node died is run again (default 2)",
    )
    p.add_argument(
        "--tensorboard",
        type=Path,
        default=None,
        metavar="DIR",
        help="write each job's per-epoch and final scalars as TensorBoard events under DIR, one run per job named "
        "by its axes (the tracking extra)",
    )


def backend_options(args: argparse.Namespace) -> dict:
    """The backend's own options given on the command line (the unset ones left out)."""
    opts = {"address": args.address, "storage": args.storage, "retries": args.retries}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.items() if v is not None}


@COMMANDS.register("sweep")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a study spec: every model x method x seed x axis value",
        description="Plan the jobs of a study spec (TOML; format in lowbit.engine.spec and the README), run "
        "each one not yet in the run folder's results.sqlite (parents first, in worker processes), and write "
        "report.md, report.html and figures/. Kill it at any moment; --resume ends with the same results.",
    )
    p.add_argument("spec", type=Path, help="study spec TOML (e.g. configs/studies/spirals.toml)")
    add_run_options(p, "tiny | default | paper, or any [scales.NAME] of the spec (default: default)")
    p.set_defaults(func=_run)


def run_spec(spec, args: argparse.Namespace) -> int:
    """Dry-run or sweep a parsed spec with the shared options; print where the report went."""
    from ..engine.backends import WorkerStartFailed, check_backend
    from ..engine.entries import entry_label
    from ..engine.plan import describe, plan
    from ..engine.reuse import check_sources, reusable
    from ..engine.run import JobsFailed, preflight, sweep
    from ..engine.store import Store

    if getattr(args, "data_root", None) is not None:  # before anything reads data; worker processes inherit it
        os.environ["LOWBIT_DATA"] = str(args.data_root.expanduser().resolve())
    out = args.out or Path("runs") / spec.name
    if args.dry_run or args.plan_only:
        jobs = plan(spec)
        print(f"{spec.name} (scale {spec.scale})")
        print(describe(jobs))
        check_sources(out, args.reuse)
        for src in args.reuse:  # what --reuse would take (nothing is written)
            with Store(src, create=False) as source:
                print(f"{len(reusable(jobs, src, source))} of them finished in {src} (--reuse takes them)")
        if not args.plan_only:  # the checks a sweep makes before training: data, model fit, quantization plans
            from ..engine.readiness import for_a_gpu, missing_data, missing_model_files, readiness

            check_backend(args.backend, args.workers, backend_options(args))
            ready = not missing_data(spec.data) and not missing_model_files(spec)
            if ready or not for_a_gpu(jobs):  # a CPU spec's missing data fails here, in one line, as before
                preflight(spec, jobs, timing=False)
                print(
                    f"checked: data {entry_label(spec.data)!r} loaded; every model fits it; every quantization planned"
                )
            if for_a_gpu(jobs):  # a paper scale: every missing set in one line each, the device, memory, GPU time
                missing, lines = readiness(spec, jobs, loaded=ready)
                print("\n".join([*missing, *lines]))
                return 1 if missing else 0
        return 0
    t0 = time.perf_counter()
    try:
        report = sweep(
            spec,
            out,
            resume=args.resume,
            workers=args.workers,
            backend=args.backend,
            progress=not args.no_progress,
            reuse=args.reuse,
            backend_options=backend_options(args),
            tensorboard=args.tensorboard,
        )
    except WorkerStartFailed as e:
        raise UsageError(str(e)) from None
    except JobsFailed as e:  # every other job finished and the report lists the failures: status 1, not 2
        print(f"{spec.name}: report written to {e.report} ({time.perf_counter() - t0:.0f} s)")
        print(f"lowbit {args.command}: {e}", file=sys.stderr)
        return 1
    print(f"{spec.name}: report written to {report} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..engine.spec import load_spec

    return run_spec(load_spec(args.spec, args.scale), args)
