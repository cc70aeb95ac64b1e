"""``lowbit run CONFIG``: one experiment = a sweep with one cell (see lowbit.engine.single)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import COMMANDS
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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..engine.single import check_one_cell, is_short_form, short_error, short_to_spec
    from ..engine.spec import SpecError, find_code_beside, parse_spec, read_spec_file

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
    return run_spec(spec, args)
