"""``spiking-transformers models``: the table of registered variants."""

from __future__ import annotations

import argparse
import json

NAME = "models"
HELP = "list the registered models (name, family, params, default T, spike-driven, paper, venue)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'sdt*'")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--attention", action="store_true",
                   help="list the registered attentions instead (any of them goes on a backbone with attn=NAME)")


def _print_table(header: tuple[str, ...], table: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def _attentions(args: argparse.Namespace) -> int:
    from ..layers.attention import attention_info, list_attentions

    rows = [attention_info(n) for n in list_attentions(args.pattern)]
    if args.as_json:
        print(json.dumps([dict(name=i.name, description=i.description, paper=i.paper, spike_driven=i.spike_driven,
                               reference=i.reference) for i in rows], indent=1))
        return 0
    if not rows:
        print(f"no attention matches {args.pattern!r}")
        return 1
    sd = {True: "yes", False: "no", None: "depends"}
    _print_table(("attention", "spike-driven", "reference", "paper", "description"),
                 [(i.name, sd[i.spike_driven], i.reference, i.paper, i.description) for i in rows])
    return 0


def run(args: argparse.Namespace) -> int:
    if args.attention:
        return _attentions(args)
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
    _print_table(header, table)
    return 0
