"""Helpers shared by the sub-commands: ``--model-arg`` parsing and the one loader's command-line face."""

from __future__ import annotations

import argparse
import ast
from typing import Any

__all__ = ["parse_model_args", "add_loading_arguments", "load_from_args"]


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """``["depth=2", "img_size=64", "spike_layer=plif"]`` -> ``{"depth": 2, "img_size": 64, "spike_layer": "plif"}``.

    Each value is read as a Python literal (numbers, lists, tuples, True/None), else kept as a string.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def add_loading_arguments(p: argparse.ArgumentParser, *, model_flag: bool = True) -> None:
    """``--model``, ``--family`` and ``--model-arg``: what to build for a bare weights file."""
    if model_flag:
        p.add_argument("--model", metavar="NAME", default=None,
                       help="registered variant to build for a bare weights file (default: from config.json, "
                            "else the variant whose shapes match)")
    p.add_argument("--family", metavar="F", default=None,
                   help="official family of an official checkpoint (then --model-arg gives the official kwargs)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor override, repeatable (value parsed as a Python literal, else a string)")


def load_from_args(path: str, args: argparse.Namespace, *, model: str | None = None, ema: bool = False):
    """:func:`~spiking_transformers.loading.load_any_checkpoint` with the command's loading flags."""
    from ..loading import load_any_checkpoint

    return load_any_checkpoint(path, model=model if model is not None else getattr(args, "model", None),
                               family=getattr(args, "family", None),
                               model_args=parse_model_args(getattr(args, "model_arg", []) or []), ema=ema)
