"""``lowbit run CONFIG``: one experiment = a sweep with one cell (see lowbit.engine.single).

``--nproc N`` (or torchrun) trains it data-parallel on N processes: lowbit.engine.backends.ddp.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import COMMANDS, UsageError
from .sweep import add_run_options, run_spec


@COMMANDS.register("run")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run one experiment (one model, one seed) from a TOML config",
        description="Run one experiment: a study spec with one model and one seed, or the short form with [data], "
        "[model], [train] (float), optional [quant] / [inq] with [retrain]. Writes spec.toml, results.sqlite, "
        "jobs/<id>/ (checkpoints, metrics.jsonl, model.safetensors) and report.md/html under --out.",
    )
    p.add_argument("config", type=Path, help="experiment TOML file")
    add_run_options(p, "a [scales.NAME] of the spec (default: default)")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train data-parallel on N processes of this machine (DistributedDataParallel: gloo on CPU, NCCL on "
        "GPUs; the batch size stays the global batch); under torchrun the processes are torchrun's",
    )
    p.set_defaults(func=_run)


def _launch_argv(args: argparse.Namespace) -> list[str]:
    """The command line every rank runs (``--nproc`` and the options it does not use left out)."""
    argv = ["run", str(args.config.resolve())]
    if args.scale is not None:
        argv += ["--scale", args.scale]
    if args.out is not None:
        argv += ["--out", str(args.out.resolve())]
    argv += ["--resume"] * args.resume + ["--no-progress"] * args.no_progress
    for r in args.reuse:
        argv += ["--reuse", str(Path(r).resolve())]
    return argv


def _run_distributed(spec, args: argparse.Namespace) -> int:
    """One rank of a distributed run: rank 0 runs the engine on the ``ddp`` backend, the others follow it."""

    from ..engine.backends.ddp import follow, register
    from ..engine.plan import plan
    from ..train import distributed
    from ..train.distributed import PeerLost

    devices = {
        distributed.resolve_device(j.config["recipe"]["train"]["device"])
        for j in plan(spec)
        if "train" in j.config["recipe"]
    }
    distributed.init_from_env("cuda" if any(d.startswith("cuda") for d in devices) else "cpu")
    try:
        if distributed.rank() > 0:
            follow()
            return 0
        args.backend, args.workers = register(), 1
        return run_spec(spec, args)
    except PeerLost as e:
        print(f"lowbit run: error: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from ..engine.single import check_one_cell, is_short_form, short_error, short_to_spec
    from ..engine.spec import SpecError, find_code_beside, parse_spec, read_spec_file
    from ..train.distributed import env_world_size

    if not isinstance(args.nproc, int) or args.nproc < 1:
        raise UsageError(f"--nproc {args.nproc!r} is not accepted; expected a whole number >= 1")
    in_group = env_world_size() > 1
    launching = args.nproc > 1 and not in_group and not (args.dry_run or args.plan_only)
    if (launching or in_group) and (args.backend != "local" or args.workers not in (1, 2)):
        raise UsageError(
            "--nproc / torchrun runs the jobs one after the other on every process: leave out --backend and --workers"
        )
    raw = read_spec_file(args.config, "config file")
    find_code_beside(raw, args.config)
    source = args.config.name
    if is_short_form(raw):
        try:
            spec = parse_spec(short_to_spec(raw, source), args.scale, source)
        except SpecError as e:
            raise short_error(e) from None
    else:
        spec = parse_spec(raw, args.scale, source)
        check_one_cell(spec.raw, source)
    if launching:  # the config was checked once, here; now N processes run it
        from ..engine.backends.ddp import launch

        return launch(_launch_argv(args), args.nproc)
    if in_group:
        return _run_distributed(spec, args)
    return run_spec(spec, args)
