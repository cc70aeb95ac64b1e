"""``lowbit`` command line. Each command lives in its own module and registers itself in COMMANDS.

A command module registers ``add_parser(subparsers)`` (which sets ``func``) in ``COMMANDS`` under the command's
name; the modules are listed in ``COMMANDS.modules`` (an installed package may add commands through the
``lowbit.commands`` entry-point group).
Exit status: 0 done; 1 a sweep (``sweep``, ``reproduce``, ``run``) finished with failed jobs (one summary line on
stderr; the report lists them; ``--resume`` runs them again); 2 errors a user can fix (bad values, missing files:
one line, no traceback, nothing run); 130 interrupted (Ctrl-C; ``--resume`` continues).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..extras import EXTRAS, MissingExtraError
from ..registry import Registry

# add a command by adding its module here (the module registers its add_parser under the command's name)
COMMANDS: Registry[Callable[[argparse._SubParsersAction], None]] = Registry(
    "command",
    modules=[
        f"lowbit.cli.{m}"
        for m in (
            "reproduce",
            "sweep",
            "run",
            "results",
            "report",
            "models",
            "datasets",
            "train_config",
            "quantizers",
            "summary",
            "export",
            "design",
            "sensitivity",
        )
    ],
    entry_points="lowbit.commands",
)


class UsageError(Exception):
    """Raised by commands for input errors; printed as one line."""


def shape_error(shape_text: str | None, e: BaseException) -> UsageError:
    """The error for an ``--input-shape`` the model cannot run (first line of torch's message)."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return UsageError(f"--input-shape {shape_text!r} does not fit the model: {first}")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="lowbit", description="Train, study and ship low-bit neural networks.")
    p.add_argument("--version", action="version", version=f"lowbit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for _, add_parser in COMMANDS.items():
        add_parser(sub)
    return p


# optional dependencies -> the extra that installs them (a missing one is a one-line error naming the extra)
_EXTRAS = {"onnx": "deploy", "onnxruntime": "deploy", "soundfile": "audio", "librosa": "audio"}
_EXTRAS |= {mod: extra for mod, (_, extra) in EXTRAS.items()}  # the table pyproject.toml's extras are checked against


def _one_line(e: BaseException) -> str:
    """A user-facing line for an error a user can fix (no traceback)."""
    from ..fileio import DiskFullError, is_disk_full

    if isinstance(e, DiskFullError):
        return str(e)
    if isinstance(e, OSError) and is_disk_full(e):
        return str(DiskFullError(e.filename or "a file"))
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) and " " in e.args[0]:
        return e.args[0]  # a message raised as KeyError
    if isinstance(e, KeyError):
        return f"internal error: {e!r} (please report it with the command that caused it)"
    return str(e) or type(e).__name__


def _quiet_stdout() -> None:
    """After a closed pipe (``lowbit summary --json | head``): drop further output so exit does not complain."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    from ..runlock import RunLocked

    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in _EXTRAS:
            raise
        extra = _EXTRAS[top]
        msg = f"needs the {extra!r} extra ({top!r} is not installed): pip install 'lowbit[{extra}]'"
        print(f"lowbit {args.command}: error: {e if isinstance(e, MissingExtraError) else msg}", file=sys.stderr)
        return 2
    except (UsageError, ValueError, TypeError, KeyError, OSError, RunLocked) as e:
        print(f"lowbit {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lowbit {args.command}: interrupted; re-run with --resume to continue", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
