"""``spiking-transformers info NAME``: everything the registry knows about one variant."""

from __future__ import annotations

import argparse
import dataclasses
import json

NAME = "info"
HELP = "show the facts about one registered model (paper, T, input, accuracy, parameters, official config)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="registered model name (see `spiking-transformers models`)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from ..models import model_info

    info = dataclasses.asdict(model_info(args.name))
    if args.as_json:
        print(json.dumps(info, indent=1))
        return 0
    paper = info.pop("paper")
    for key, value in info.items():
        print(f"{key:>24}: {value}")
    for key, value in paper.items():
        print(f"{'paper.' + key:>24}: {value}")
    return 0
