"""RevSFormer: training memory and step time against depth, reversible backward versus plain autograd.

Each cell (depth x backward) runs in a fresh child process: build ``RevSFormer`` (small width so that the whole
sweep takes minutes on a CPU), one training step (forward, cross-entropy, backward; no optimiser, so only
activations and gradients count), then ``--repeats`` timed steps. Reported per cell:

* ``peak_step_mb``: growth of the child's peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``) over the first
  training step, i.e. the activations kept for backward plus the backward's transient tensors and the gradients
  (the model, the input and the interpreter are already resident before it); on CUDA
  ``torch.cuda.max_memory_allocated`` over the step instead;
* ``saved_mb``: bytes of every tensor autograd keeps for backward during the forward (``saved_tensors_hooks``), a
  load-independent count of the activation memory;
* ``step_s``: median wall time of the timed steps (noisy on a shared machine: compare ratios, not absolutes).

Usage::

    python benchmarks/revsformer_memory.py [--depths 4 8 16] [--dim 128] [--batch 16] [--T 4] [--repeats 2]
                                           [--device cpu] [--json out.json] [--png docs/revsformer_memory.png]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _cell(args: argparse.Namespace) -> dict:
    import torch

    from spiking_transformers.models.revsformer import RevSFormer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = RevSFormer(
        num_classes=10, img_size=32, embed_dim=args.dim, depth=args.depth, num_heads=4, T=args.T,
        reversible=args.reversible,
    ).to(device).train()  # fmt: skip
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()

    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return dict(
        depth=args.depth, reversible=args.reversible, peak_step_mb=peak / 2**20, saved_mb=saved[0] / 2**20,
        step_s=statistics.median(times), device=args.device,
    )  # fmt: skip


def _plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for rev, style in ((True, "o-"), (False, "s--")):
        sub = sorted((r for r in rows if r["reversible"] == rev), key=lambda r: r["depth"])
        d = [r["depth"] for r in sub]
        label = "reversible backward" if rev else "plain autograd"
        axes[0].plot(d, [r["peak_step_mb"] for r in sub], style, label=label)
        axes[1].plot(d, [r["saved_mb"] for r in sub], style, label=label)
        axes[2].plot(d, [r["step_s"] for r in sub], style, label=label)
    for ax, ylabel in zip(axes, ("peak memory of a training step (MB)", "tensors saved for backward (MB)",
                                 "step time (s, median)")):  # fmt: skip
        ax.set_xlabel("depth (reversible blocks)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r["depth"] for r in rows}))
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json")
    p.add_argument("--png")
    # child mode
    p.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    p.add_argument("--reversible", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.depth is not None:
        args.reversible = bool(args.reversible)
        print(json.dumps(_cell(args)))
        return

    rows = []
    load = os.getloadavg()
    for depth in args.depths:
        for rev in (True, False):
            cmd = [sys.executable, __file__, "--depth", str(depth), "--reversible", str(int(rev)), "--dim",
                   str(args.dim), "--batch", str(args.batch), "--T", str(args.T), "--repeats", str(args.repeats),
                   "--threads", str(args.threads), "--device", args.device]  # fmt: skip
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"depth {depth:3d} {'reversible' if rev else 'plain     '}: peak {r['peak_step_mb']:8.1f} MB, "
                  f"saved {r['saved_mb']:8.1f} MB, step {r['step_s']:6.2f} s", flush=True)  # fmt: skip
    load_end = os.getloadavg()
    setting = (f"RevSFormer, width {args.dim} per half, 4 heads, CIFAR 32x32 (64 tokens), T={args.T}, batch "
               f"{args.batch}, float32, {args.device}, {args.threads} thread(s)")  # fmt: skip
    print(f"\n{setting}; 1-min load average {load[0]:.1f} at start, {load_end[0]:.1f} at end\n")
    print("| depth | backward | peak step memory (MB) | saved for backward (MB) | step time (s) |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['depth']} | {'reversible' if r['reversible'] else 'plain autograd'} | {r['peak_step_mb']:.1f} | "
              f"{r['saved_mb']:.1f} | {r['step_s']:.2f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(setting=setting, load_start=load, load_end=load_end, rows=rows), f, indent=1)
    if args.png:
        _plot(rows, args.png, setting)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
