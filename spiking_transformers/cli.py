"""The ``spiking-transformers`` command (also ``python -m spiking_transformers``).

Each sub-command lives in its own module under ``spiking_transformers/commands/`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only discovers and dispatches them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Sequence

from . import __version__, commands

__all__ = ["main", "build_parser"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spiking-transformers",
        description="Published spiking transformers: build, train, evaluate, analyse.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (CommandError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"spiking-transformers {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
