"""``spiking-transformers compare``: every chosen attention on the same backbone, trained under one recipe on one data
set, in one table and one figure.

    spiking-transformers compare                                   # bundled digits and synthetic events
    spiking-transformers compare --attn ssa,xnor,a2os2a --data cifar10 --data-dir ~/data/cifar10 --epochs 50

For each data set and each attention it builds the backbone (``--backbone``, default a small Spikformer) with that
attention (the backbones' ``attn=`` argument), trains it with the library's training loop
(:class:`~spiking_transformers.training.Trainer`) under the data set's recipe, and measures the trained model on test
batches with the library's energy analysis (:func:`~spiking_transformers.analysis.analyze`): accuracy, firing rate,
synaptic operations, energy (45 nm), parameters, training time per epoch and the spike-driven audit's verdict.
Output: ``compare.md`` (markdown table), ``compare.json`` and ``compare.png`` (accuracy against energy, one panel per
data set, the Pareto front marked) in ``--out``.

Every attention gets the same backbone, widths, neurons, recipe, seed and epochs; the backbone's own parts (tokenizer,
MLP, residual) stay as they are, so SEMM appears with its attention experts only (its experts MLP is part of the
``semm_*`` models, not of the attention), and DISTA with the backbone's LIF neurons.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

# the figure is drawn with the package's other plots; both names stay importable here
from ..analysis.plots import label_offsets as _label_offsets  # noqa: F401
from ..analysis.plots import plot_pareto

NAME = "compare"
HELP = "train one backbone with each chosen attention on one data set; table + accuracy-vs-energy figure"

log = logging.getLogger(__name__)

#: The attentions compared when ``--attn`` is not given: the two roots of the lineage and the five paper-only ones.
DEFAULT_ATTENTIONS = ("ssa", "sdsa", "xnor", "a2os2a", "dista", "semm", "stformer")
DEFAULT_DATA = ("digits", "synthetic-events")
#: A small backbone, the same for every attention (overrides of the registered backbone model).
BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "spikformer": ("spikformer_4_384_cifar10", dict(embed_dim=32, depth=1, num_heads=2)),
    "sdt": ("sdt_2_256_cifar10", dict(embed_dim=32, depth=1, num_heads=2)),
}
#: Recipe per bundled data set (its optimisation settings; the model is replaced by the backbone).
DATA_RECIPES = {"digits": "digits", "synthetic-events": "synthetic_events"}
#: Total down-sampling of the Spikformer tokenizer per input size, so that small inputs keep a 4 x 4 token grid.
_PATCH = {8: 2, 16: 4}


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--attn", type=_csv, default=list(DEFAULT_ATTENTIONS), metavar="A,B,...",
                   help="attentions to compare (registered names; 'all' for every registered one)")
    p.add_argument("--data", type=_csv, default=list(DEFAULT_DATA), metavar="NAME,...",
                   help="data sets, one table section and one figure panel each")
    p.add_argument("--data-dir", help="folder of the data set's files (CIFAR, event folders)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default="spikformer", help="the host backbone")
    p.add_argument("--recipe", help="training recipe for every data set (default: the bundled data set's own, "
                                    "'digits' otherwise)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of every run")
    p.add_argument("--T", type=int, default=4, help="time steps")
    p.add_argument("--embed-dim", type=int, help="backbone width (default 32)")
    p.add_argument("--depth", type=int, help="backbone blocks (default 1)")
    p.add_argument("--num-heads", type=int, help="attention heads (default 2)")
    p.add_argument("--batch-size", type=int, help="training batch (default: the recipe's)")
    p.add_argument("--energy-batches", type=int, default=4, metavar="N", help="test batches the energy is measured on")
    p.add_argument("--limit", type=int, metavar="N", help="use only N training and N test samples, evenly spaced "
                                                           "over each split (a quick smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads (default min(2, cpu count))")
    p.add_argument("--out", help="output folder (default runs/compare-<time>)")


def _attention_names(requested: list[str]) -> list[str]:
    from ..layers.attention import list_attentions

    known = list_attentions()
    if requested == ["all"]:
        return known
    unknown = [a for a in requested if a not in known]
    if unknown:
        raise ValueError(f"unknown attention(s) {', '.join(unknown)}; registered: {', '.join(known)}")
    return requested


def _config(args: argparse.Namespace, data: str, attn: str):
    from ..data import dataset_info
    from ..training.config import resolve_config

    model, arch = BACKBONES[args.backbone]
    arch = dict(arch)
    for key in ("embed_dim", "depth", "num_heads"):
        if getattr(args, key) is not None:
            arch[key] = getattr(args, key)
    info = dataset_info(data)
    if args.backbone == "spikformer" and info.img_size in _PATCH:
        arch["patch_size"] = _PATCH[info.img_size]
    if args.backbone == "sdt" and info.img_size in _PATCH:
        arch["pool_stages"] = (False, False, False, True) if info.img_size == 8 else (False, False, True, True)
    overrides: dict[str, Any] = dict(
        model=model, model_args={**arch, "attn": attn}, data=data, data_dir=args.data_dir, T=args.T,
        epochs=args.epochs, seed=args.seed, threads=args.threads, batch_size=args.batch_size, progress=False,
        tensorboard=False, out=None,
    )
    recipe = args.recipe or DATA_RECIPES.get(data, "digits")
    return resolve_config(recipe, overrides)


def _measure(args: argparse.Namespace, data: str, attn: str) -> dict[str, Any]:
    """Train one (data set, attention) pair and measure it; returns one table row."""
    import torch

    from ..analysis import analyze
    from ..data import time_major_collate
    from ..layers.attention import attention_info
    from ..training.run import build_datasets, build_model
    from ..training.trainer import Trainer, seed_everything

    config = _config(args, data, attn)
    seed_everything(config.seed)
    model = build_model(config)
    train_set, test_set = build_datasets(config)
    if args.limit:
        # evenly spaced samples: some splits are stored class by class, so the first N would hold few classes
        train_set = torch.utils.data.Subset(train_set, _spread(len(train_set), args.limit))
        test_set = torch.utils.data.Subset(test_set, _spread(len(test_set), args.limit))
    t0 = time.perf_counter()
    metrics = Trainer(model, config, train_set, test_set, out_dir=None).fit()
    wall = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(test_set, batch_size=config.batch_size, shuffle=False,
                                         collate_fn=time_major_collate)
    batches = [x for i, (x, _) in zip(range(args.energy_batches), loader)]
    report = analyze(model, batches, name=f"{attn}")
    info = attention_info(attn)
    epochs = max(int(metrics["epochs"]), 1)
    return {
        "data": data,
        "attention": attn,
        "paper": info.paper,
        "reference": info.reference,
        "accuracy": float(metrics["test_top1"]),
        "firing_rate": float(report.totals["firing_rate"]),
        "synaptic_ops": float(report.totals["acs"] + report.totals["macs"]),
        "acs": float(report.totals["acs"]),
        "macs": float(report.totals["macs"]),
        "energy_pj": float(report.totals["energy_pj"]),
        "params": int(report.params),
        "train_time_per_epoch_s": float(metrics["train_time_s"]) / epochs,
        "wall_time_s": wall,
        "verdict": report.audit.verdict,
        "registry_spike_driven": info.spike_driven,
        "epochs": epochs,
        "backbone": args.backbone,
        "model": config.model,
        "model_args": dict(config.model_args),
        "recipe": config.recipe,
    }


def _spread(n: int, k: int) -> list[int]:
    """``min(k, n)`` indices spread evenly over ``range(n)``."""
    k = min(k, n)
    return sorted({(i * n) // k for i in range(k)})


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(energy, accuracy)`` that no other point beats: lower or equal energy and higher or
    equal accuracy, one of them strictly. Sorted by energy."""
    front = []
    for i, (e, a) in enumerate(points):
        dominated = any(e2 <= e and a2 >= a and (e2 < e or a2 > a) for j, (e2, a2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _human_ops(x: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


def format_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table (one row per data set and attention; energy per sample; ``*``: on the Pareto front)."""
    header = ("data", "attention", "accuracy %", "firing rate", "synaptic ops", "MACs", "energy (uJ)", "params",
              "train s/epoch", "audit verdict", "Pareto")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join((
            r["data"], r["attention"] + (" (paper)" if r["reference"] == "paper" else ""), f"{r['accuracy']:.2f}",
            f"{r['firing_rate']:.4f}", _human_ops(r["synaptic_ops"]), _human_ops(r["macs"]),
            f"{r['energy_pj'] * 1e-6:.3f}", f"{r['params']:,}", f"{r['train_time_per_epoch_s']:.1f}", r["verdict"],
            "*" if r.get("pareto") else "",
        )) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..runtime import tune_cpu_allocator
    from ..training.trainer import configure_threads

    if args.epochs < 1 or args.energy_batches < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError("--epochs, --energy-batches and --limit must be at least 1")
    attentions = _attention_names(args.attn)
    out = Path(args.out or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    tune_cpu_allocator()
    configure_threads(args.threads or 0)
    rows: list[dict[str, Any]] = []
    for data in args.data:
        block: list[dict[str, Any]] = []
        for attn in attentions:
            log.info("compare: %s with %s attention", data, attn)
            try:
                block.append(_measure(args, data, attn))
            except (ValueError, TypeError, RuntimeError) as exc:
                # one attention that cannot run on this backbone / input does not stop the others
                log.warning("compare: %s on %s failed: %s", attn, data, exc)
                block.append({"data": data, "attention": attn, "error": str(exc)})
        ok = [r for r in block if "error" not in r]
        for i in pareto_front([(r["energy_pj"], r["accuracy"]) for r in ok]):
            ok[i]["pareto"] = True
        rows.extend(block)
    good = [r for r in rows if "error" not in r]
    if not good:
        raise ValueError("no attention could be trained: " + "; ".join(f"{r['attention']}: {r['error']}" for r in rows))
    table = format_markdown(good)
    failed = [r for r in rows if "error" in r]
    notes = [f"- {r['attention']} on {r['data']}: not run ({r['error']})" for r in failed]
    import torch

    from ..benchmark import machine_info

    machine = dict(machine_info(), threads=torch.get_num_threads())
    load = machine["load_average"]
    machine_line = (f"Measured on {machine['cpu']}, {machine['threads']} thread(s), load average "
                    f"{load[0]:.1f}, torch {machine['torch']}." if load else f"Measured on {machine['cpu']}.")
    (out / "compare.md").write_text(table + "\n\n" + machine_line + "\n" + ("\n".join(notes) + "\n" if notes else ""))
    (out / "compare.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=1, default=lambda o: None) + "\n")
    plot_pareto(good, out / "compare.png")
    print(table)
    print(machine_line)
    for line in notes:
        print(line)
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {out / 'compare.png'}")
    return 0 if all(math.isfinite(r["accuracy"]) for r in good) else 1
