"""``spiking-transformers models``: the table of registered variants."""

from __future__ import annotations

import argparse
import json

NAME = "models"
HELP = "list the registered models (name, family, params, default T, spike-driven, paper, venue)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'sdt*'")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..models import list_models, model_info

    rows = []
    for name in list_models(args.pattern):
        info = model_info(name)
        rows.append(
            dict(
                name=name,
                family=info.family,
                params=info.params,
                T=info.default_T,
                spike_driven=info.spike_driven,
                paper=info.paper.title,
                venue=info.venue,
            )
        )
    if args.as_json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no model matches {args.pattern!r}")
        return 1
    header = ("name", "family", "params", "T", "spike-driven", "paper", "venue")
    table = [
        (r["name"], r["family"], f"{r['params'] / 1e6:.2f}M", str(r["T"]), "yes" if r["spike_driven"] else "no",
         r["paper"][:48], r["venue"])
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return 0
