"""The ``spiking-transformers`` command (also ``python -m spiking_transformers``).

Each sub-command lives in its own module under ``spiking_transformers/commands/`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only discovers and dispatches them, and turns every
error into one line on stderr with exit status 2 (``--debug``: the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _one_line(exc: BaseException) -> str:
    """The exception as one line: its message's first line (a KeyError's quotes removed), else its type."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[0] if len(lines) == 1 else f"{lines[0]} ({len(lines) - 1} more line(s): --debug shows all)"
    if isinstance(exc, (CommandError, ValueError, FileNotFoundError, KeyError, TypeError)) or "Error" not in \
            type(exc).__name__:
        return line
    return f"{type(exc).__name__}: {line}"


def _quiet_broken_pipe() -> None:
    # The reader went away (`spiking-transformers models | head`): stop writing, say nothing. Point stdout at
    # /dev/null so that the interpreter's final flush does not raise a second time.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; returns the exit status.

    Every error is one line on stderr, ``spiking-transformers COMMAND: error: ...``, with exit status 2 (argparse's
    usage errors too); ``--debug`` (before or after the command) re-raises instead, with the traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that went away is reported here, not at interpreter exit
        return status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except Exception as exc:
        if debug:
            raise
        print(f"spiking-transformers {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
