"""``lowbit design``: pick a CIFAR ResNet for a parameter budget and a target precision by short proxy trainings.

    lowbit design --params 1e6 --precision W2A2 --data cifar10 [--budget-tolerance 0.15] [--proxy-epochs N]
                  [--out DIR] [--dry-run] [--resume]
    lowbit design --params 1e6 --precision mixed --bytes 200000 [--act-bits 2] ...   (bits per layer, issue 26)

Enumerates the registered ``cifar_resnet`` family (basic / preact / depthwise blocks x depth, the width that
fits the budget; ``lowbit.studies.design``), runs the candidates through the sweep engine (float parent +
the target precision as a QAT method; ``--resume`` continues a killed run) and writes ``design.md`` with the
ranking, the pick, the paper's check (Boo et al. §5.3) and a plot of the proxy score against depth per block type.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import COMMANDS, UsageError
from .sweep import add_backend_options, backend_options

# --data NAME -> (registered data set, the argument --data-root fills)
DATA_SETS = {
    "cifar10": ("cifar10_jpeg", "archive"),  # the real CIFAR-10 JPEG archive (default: the shared copy)
    "cifar10-python": ("cifar10", "root"),  # CIFAR-10 in the original python format (needs --data-root)
    "image-folder": ("image_folder", "root"),  # root/{train,test}/<class>/*.png|jpg (needs --data-root)
}


@COMMANDS.register("design")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "design",
        help="choose a CIFAR ResNet (block type x depth x width) for a parameter budget and precision",
        description="Enumerate the three-group CIFAR ResNets (basic, pre-activation and depthwise blocks) whose "
        "parameter count fits --params within --budget-tolerance, train each briefly in float and at the target "
        "precision through the sweep engine, and rank them by the quantized model's accuracy on held-out training "
        "images (the proxy score; --validation 0 scores on the test set instead). Writes DIR/design.md, "
        "DIR/figures/proxy_score_vs_depth.png and the engine's report.",
    )
    p.add_argument("--params", type=float, required=True, help="parameter budget, e.g. 1e6")
    p.add_argument(
        "--precision",
        default=None,
        help="target precision W<bits>A<bits>, e.g. W2A2; or mixed (weight bits per layer under --bytes)",
    )
    p.add_argument(
        "--bytes",
        type=int,
        default=None,
        help="with --precision mixed: each candidate's memory budget in bytes, as `lowbit summary` counts them",
    )
    p.add_argument("--weight-bits", type=int, default=None, help="target weight bits (instead of --precision)")
    p.add_argument("--act-bits", type=int, default=None, help="target activation bits (instead of --precision)")
    p.add_argument("--data", choices=sorted(DATA_SETS), default="cifar10", help="data set (default cifar10)")
    p.add_argument("--data-root", type=Path, default=None, help="where the data is (cifar10: the JPEG archive)")
    p.add_argument("--subset", type=int, default=2000, help="training images of the proxy (0 = all; default 2000)")
    p.add_argument(
        "--validation",
        type=int,
        default=1000,
        help="training images held out to score the proxies, never trained on (default 1000; 0 = score on the test "
        "set, which then also chose the architecture)",
    )
    p.add_argument("--test-subset", type=int, default=1000, help="test images scoring it with --validation 0 (0 = all)")
    p.add_argument("--budget-tolerance", type=float, default=0.15, help="accepted |params - budget| / budget")
    p.add_argument("--proxy-epochs", type=int, default=2, help="epochs of each proxy training (float and QAT)")
    p.add_argument("--blocks", nargs="+", default=["basic", "preact", "depthwise"], help="block types to consider")
    p.add_argument("--all-depths", action="store_true", help="every valid depth, not only Table 5's grid")
    p.add_argument("--max-depth", type=int, default=110, help="deepest network considered (default 110)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of each proxy training (default 0)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--out", type=Path, default=Path("runs") / "design", help="run folder (default runs/design)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (finished jobs are not re-run)")
    p.add_argument("--dry-run", action="store_true", help="list the candidates and their parameter counts; run nothing")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2; 1 = in-process)")
    add_backend_options(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_run)


def target_bits(args: argparse.Namespace) -> tuple[int, int | None]:
    """(weight bits, act bits) from --precision or --weight-bits/--act-bits (exactly one of the two forms)."""
    from ..studies.design import check_bits, parse_precision

    if args.precision == "mixed":  # weight bits chosen per layer; activations: --act-bits (PACT) or float
        if args.weight_bits is not None:
            raise UsageError("--precision mixed chooses the weight bits per layer; leave out --weight-bits")
        if args.bytes is None or args.bytes < 1:
            raise UsageError("--precision mixed needs --bytes B, each candidate's memory budget in bytes (>= 1)")
        return 0, args.act_bits if args.act_bits is None else check_bits(args.act_bits, "--act-bits")
    if args.bytes is not None:
        raise UsageError("--bytes is the budget of --precision mixed; give --precision mixed with it")
    typed = args.weight_bits is not None or args.act_bits is not None
    if args.precision is not None and typed:
        raise UsageError("give --precision or --weight-bits/--act-bits, not both")
    if args.precision is not None:
        return parse_precision(args.precision)
    if args.weight_bits is None or args.act_bits is None:
        raise UsageError("give the target precision: --precision W2A2, or --weight-bits 2 --act-bits 2")
    return check_bits(args.weight_bits, "--weight-bits"), check_bits(args.act_bits, "--act-bits")


def data_table(args: argparse.Namespace) -> dict:
    name, root_key = DATA_SETS[args.data]
    if args.data_root is None and root_key == "root":
        raise UsageError(f"--data {args.data} needs --data-root DIR")
    for opt, v in (("--subset", args.subset), ("--test-subset", args.test_subset), ("--validation", args.validation)):
        if v < 0:
            raise UsageError(f"{opt} {v} is not accepted; expected a number of images >= 0 (0 = all / none)")
    out = {"name": name, "subset": args.subset}
    if args.validation:  # scored on held-out training images: the test set is not read
        out["validation"] = args.validation
    else:
        out["test_subset"] = args.test_subset
    if args.data_root is not None:
        out[root_key] = str(args.data_root)
    return out


def _run(args: argparse.Namespace) -> int:
    from ..engine.spec import parse_spec
    from ..studies.design import design_spec, enumerate_candidates
    from ..studies.design_report import write_design_report

    w, a = target_bits(args)
    mixed = args.precision == "mixed"
    target = "mixed" if mixed else f"W{w}A{a}"
    data = data_table(args)
    classes = 10
    if args.data == "image-folder" and args.data_root is not None and (args.data_root / "train").is_dir():
        classes = sum(d.is_dir() for d in (args.data_root / "train").iterdir())  # the FC's size
    cands = enumerate_candidates(
        args.params, args.budget_tolerance, tuple(args.blocks), args.max_depth, args.all_depths, num_classes=classes
    )
    method = None
    if mixed:
        from ..studies.design_mixed import min_bytes, mixed_method

        least = {c.label: min_bytes(c, a, num_classes=classes) for c in cands}
        over = [c.label for c in cands if least[c.label] > args.bytes]
        if over:
            print(f"left out (more than {args.bytes:,} bytes even at 2 bits per layer): {', '.join(over)}")
        cands = [c for c in cands if least[c.label] <= args.bytes]
        if not cands:
            raise UsageError(f"--bytes {args.bytes}: no candidate fits even at 2 bits per layer; raise --bytes")
        method = mixed_method(args.bytes, a, 256)
    if args.dry_run:
        print(f"{len(cands)} candidate(s) within {args.budget_tolerance:.0%} of {args.params:,.0f} parameters:")
        print(f"{'model':<12}{'block':<11}{'depth':>6}{'width':>7}{'parameters':>13}{'vs budget':>11}")
        for c in cands:
            print(
                f"{c.label:<12}{c.block:<11}{c.depth:>6}{c.width:>7}{c.params:>13,}{c.params / args.params - 1:>+11.1%}"
            )
    raw = design_spec(
        cands,
        args.params,
        w,
        a,
        data,
        args.proxy_epochs,
        tuple(args.seeds),
        args.batch_size,
        256,
        args.device,
        method=method,
    )
    spec = parse_spec(raw, None, "lowbit design")
    if args.dry_run:
        return 0
    from ..engine.run import JobsFailed, sweep

    try:
        sweep(
            spec,
            args.out,
            resume=args.resume,
            workers=args.workers,
            progress=not args.no_progress,
            backend=args.backend,
            backend_options=backend_options(args),
            tensorboard=args.tensorboard,
        )
        failed = None
    except JobsFailed as e:  # rank the candidates that finished; report the rest, status 1
        failed = e
    images = "all" if args.subset == 0 else f"{args.subset:,}"
    seeds = ", ".join(map(str, args.seeds))
    proxy = f"{args.proxy_epochs} epoch(s) float + {args.proxy_epochs} QAT on {images} {args.data} training images"
    proxy += f", seed(s) {seeds}"
    if mixed:
        proxy += f", weight bits per layer within {args.bytes:,} bytes (Hutchinson sensitivity, exact allocation)"
    paper_setting = args.data == "cifar10" and abs(args.params - 1e6) <= 0.15e6 and target == "W2A2"
    meaningful = paper_setting and args.subset == 0 and args.proxy_epochs >= 100
    try:
        path = write_design_report(args.out, cands, target, proxy, meaningful)
    except ValueError:
        if failed is None:
            raise
        print(f"lowbit design: {failed}", file=sys.stderr)  # no candidate finished: nothing to rank
        return 1
    print(path.read_text().split("\n\n")[1])
    print(f"design report written to {path}")
    if failed is not None:
        print(f"lowbit design: {failed}; the ranking leaves out the candidates without a result", file=sys.stderr)
        return 1
    return 0
