"""Peak memory of a training step against batch size: ours (default), ours in memory mode, and SpikingJelly 2.0.

Every point is one fresh process (``spiking-transformers bench`` for ours, ``benchmarks/peer_spikingjelly.py`` for
the peer), so each peak RSS (``ru_maxrss``: the whole process, Python and torch included) belongs to that one
configuration. Memory does not depend on the machine's load, so this runs on a busy machine; the step times it
records are not figures (the load average is stored next to each point).

Memory mode is ``model.set_grad_checkpointing(True)``: only the input of the tokenizer and of each block is kept
for backward, the rest is recomputed there (``spiking_transformers/models/_grad_checkpoint.py``).

The largest batch that fits in ``--budget-gb`` is extrapolated from a least-squares line through the measured points
of each path (peak RSS grows linearly with batch once the fixed cost is paid); the table says so.

    python benchmarks/memory_vs_batch.py --batches 8 16 32 64 --json docs/memory_vs_batch.json \\
        --png docs/memory_vs_batch.png
    python benchmarks/memory_vs_batch.py --from-json docs/memory_vs_batch.json --png docs/memory_vs_batch.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from spiking_transformers.commands.bench import machine_info, run_child

PATHS = {
    "ours default": dict(grad_checkpointing=False),
    # memory mode gives freed tensors back to the system (runtime.release_freed_memory, which the benchmark child
    # calls for grad_checkpointing without tune_malloc): a kept freed block would hold the peak RSS above the live peak
    "ours memory mode": dict(grad_checkpointing=True, tune_malloc=False),
}
PEER = "SpikingJelly 2.0 (eager)"


def _ours(model: str, batch: int, T: int, threads: int, repeats: int, warmup: int, **opts: Any) -> dict[str, Any]:
    from spiking_transformers.neurons.lif import DEFAULT_BACKEND

    config = dict(
        model=model, mode="train", batch_size=batch, T=T, threads=threads, backend=DEFAULT_BACKEND, repeats=repeats,
        warmup=warmup, compact_saves=False, fold_bn=False, tiny=False, fuse_bn=True, model_args={},
        **{"tune_malloc": True, **opts},
    )
    r = run_child(config)
    return dict(peak_gb=r["peak_rss_bytes"] / 1e9, step_s=r["median_s"])


def _peer(batch: int, threads: int, repeats: int) -> dict[str, Any]:
    script = Path(__file__).with_name("peer_spikingjelly.py")
    res = subprocess.run(
        [sys.executable, str(script), "--model", "spikformer", "--mode", "train", "--batch-size", str(batch),
         "--threads", str(threads), "--repeats", str(repeats)],
        capture_output=True, text=True,
    )
    if res.returncode:
        raise RuntimeError(f"SpikingJelly peer failed: {(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    # peer_spikingjelly reports ru_maxrss / 1024**2 (GiB); convert to GB like ours
    return dict(peak_gb=r["peak_rss_gb"] * 1024**3 / 1e9, step_s=r["median_s"])


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``GB = a + b * batch`` through ``(batch, GB)`` points; returns ``(a, b)``."""
    n = len(points)
    if n < 2:
        raise ValueError(f"need two or more points to extrapolate, got {n}")
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    b = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    return my - b * mx, b


def largest_batch(points: list[tuple[int, float]], budget_gb: float) -> int:
    """Largest batch whose extrapolated peak (:func:`fit_line`) is within ``budget_gb``."""
    a, b = fit_line(points)
    return int((budget_gb - a) // b) if b > 0 else sys.maxsize


def measure(args: argparse.Namespace) -> dict[str, Any]:
    paths = {name: PATHS[name] for name in args.paths if name in PATHS}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in args.paths}
    for batch in args.batches:
        for name in rows:
            load_before = os.getloadavg()
            try:
                if name == PEER:
                    r = _peer(batch, args.threads, args.repeats)
                else:
                    r = _ours(args.model, batch, args.T, args.threads, args.repeats, args.warmup, **paths[name])
            except Exception as exc:  # a path that cannot run is reported, not fatal for the others
                print(f"{name} batch {batch}: {exc}", file=sys.stderr)
                continue
            r.update(batch=batch, load_before=load_before, load_after=os.getloadavg())
            rows[name].append(r)
            print(f"{name:28s} batch {batch:3d}: peak RSS {r['peak_gb']:.2f} GB "
                  f"(step {r['step_s']:.1f} s at load {r['load_after'][0]:.1f}: not a timing figure)", flush=True)
    return dict(model=args.model, T=args.T, threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                budget_gb=args.budget_gb, machine=machine_info(), rows=rows)


def time_ratio(model: str, batch: int, T: int, pairs: int, threads: int) -> dict[str, Any]:
    """Step time of memory mode / default, measured in one process with alternating steps (A, B, A, B, ...), so a
    change of the machine's load hits both alike; returns the per-pair ratios, their median and the load seen."""
    import copy
    import statistics
    import time

    import torch

    from spiking_transformers.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    plain = create_model(model, T=T)
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing(True)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, *plain.img_size, generator=g)
    y = torch.randint(0, max(plain.num_classes, 1), (batch,), generator=g)
    steps = []
    for m in (plain, ckpt):
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

        def step(m=m, opt=opt) -> float:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
            return time.perf_counter() - t0

        steps.append(step)
    for s in steps:  # warm-up
        s()
    load_before = os.getloadavg()
    ta, tb = [], []
    for i in range(pairs):
        order = (0, 1) if i % 2 == 0 else (1, 0)  # alternate which goes first
        t = {k: steps[k]() for k in order}
        ta.append(t[0])
        tb.append(t[1])
    ratios = [b / a for a, b in zip(ta, tb)]
    return dict(batch=batch, pairs=pairs, threads=threads, default_s=ta, memory_mode_s=tb, ratios=ratios,
                median_ratio=statistics.median(ratios), load_before=load_before, load_after=os.getloadavg())


def table(data: dict[str, Any]) -> str:
    rows = {k: v for k, v in data["rows"].items() if v}
    batches = sorted({r["batch"] for v in rows.values() for r in v})
    budget = data["budget_gb"]
    head = ["path", *(f"b{b} GB" for b in batches), f"largest batch in {budget:g} GB (linear fit)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, pts in rows.items():
        by = {r["batch"]: r["peak_gb"] for r in pts}
        cells = [f"{by[b]:.2f}" if b in by else "-" for b in batches]
        xy = [(r["batch"], r["peak_gb"]) for r in pts]
        if len(xy) >= 2:
            a, b = fit_line(xy)
            fit = f"{largest_batch(xy, budget)} ({a:.2f} + {b * 1000:.1f} MB x batch)"
        else:
            fit = "-"
        lines.append("| " + " | ".join([name, *cells, fit]) + " |")
    return "\n".join(lines)


def plot(data: dict[str, Any], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    budget = data["budget_gb"]
    for name, pts in data["rows"].items():
        if not pts:
            continue
        xs = [r["batch"] for r in pts]
        ys = [r["peak_gb"] for r in pts]
        (line,) = ax.plot(xs, ys, "o-", label=name)
        if len(pts) >= 2:
            a, b = fit_line(list(zip(xs, ys)))
            top = max(largest_batch(list(zip(xs, ys)), budget), max(xs))
            top = min(top, 4 * max(xs))
            ax.plot([max(xs), top], [a + b * max(xs), a + b * top], ":", color=line.get_color())
    ax.axhline(budget, color="grey", lw=0.8, ls="--")
    ax.text(ax.get_xlim()[0], budget, f" {budget:g} GB", va="bottom", color="grey", fontsize=8)
    ax.set_xlabel("batch size")
    ax.set_ylabel("peak RSS of the process (GB)")
    m = data["machine"]
    ax.set_title(f"{data['model']} training step, T={data['T']}, float32\n"
                 f"{m['cpu']}, torch {m['torch']}, {data['threads']} thread(s); dotted: linear extrapolation",
                 fontsize=8)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="spikformer_4_384_cifar10")
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1, help="timed steps per point (memory needs one)")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--budget-gb", type=float, default=8.0)
    p.add_argument("--paths", nargs="*", default=[*PATHS, PEER], choices=[*PATHS, PEER],
                   help="what to measure (default: all); separate runs can be merged with --from-json A B")
    p.add_argument("--json", default=None, help="write the measurements here")
    p.add_argument("--png", default=None, help="write the plot here")
    p.add_argument("--ratio-pairs", type=int, default=0,
                   help="also time memory mode against default in N interleaved pairs (one process, batch --ratio-batch)")
    p.add_argument("--ratio-batch", type=int, default=8)
    p.add_argument("--from-json", nargs="+", default=None,
                   help="no measuring: table and plot from earlier --json files (rows merged, in order)")
    args = p.parse_args()
    if args.from_json:
        parts = [json.loads(Path(f).read_text()) for f in args.from_json]
        data = dict(parts[0], rows={})
        for part in parts:
            if "time_ratio" in part:
                data["time_ratio"] = part["time_ratio"]
            for name, pts in part["rows"].items():
                data["rows"].setdefault(name, []).extend(pts)
                data["rows"][name].sort(key=lambda r: r["batch"])
    else:
        if any(b < 1 for b in args.batches):
            raise SystemExit(f"--batches must be positive, got {args.batches}")
        data = measure(args) if args.paths else dict(rows={}, machine=machine_info(), model=args.model, T=args.T,
                                                     threads=args.threads, budget_gb=args.budget_gb)
        if args.ratio_pairs:
            data["time_ratio"] = time_ratio(args.model, args.ratio_batch, args.T, args.ratio_pairs, args.threads)
            r = data["time_ratio"]
            print(f"memory mode / default step time, batch {r['batch']}, {r['pairs']} interleaved pairs: median "
                  f"x{r['median_ratio']:.2f} (pairs {', '.join(f'{v:.2f}' for v in r['ratios'])}; load "
                  f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f})")
        if args.json:
            Path(args.json).write_text(json.dumps(data, indent=1))
    print(table(data))
    if args.png:
        plot(data, args.png)


if __name__ == "__main__":
    main()
