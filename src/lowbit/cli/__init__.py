"""``lowbit`` command line. Each command lives in its own module and registers itself in COMMANDS.

A command module defines ``add_parser(subparsers)`` (which sets ``func``) and is listed in ``_MODULES``.
Errors a user can fix (bad values, missing files) print one line, no traceback, and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# add a command by adding its module name here
_MODULES: list[str] = ["reproduce", "run", "report", "quantizers", "summary", "export"]


class UsageError(Exception):
    """Raised by commands for input errors; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lowbit", description="Train, study and ship low-bit neural networks.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _MODULES:
        importlib.import_module(f"lowbit.cli.{name}").add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"lowbit {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lowbit {args.command}: interrupted; re-run with --resume to continue", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
