"""Measure the performance table of docs/performance.md (issue 7): Spikformer-4-384 and SDT-2-512 on CIFAR, T=4.

Each configuration runs in a fresh process through ``spiking-transformers bench`` machinery (median of 5 steps
after one warm-up, float32, 2 threads, peak RSS of the child). Usage::

    python benchmarks/perf_table.py [--out benchmarks/results.json] [--repeats 5] [--only spikformer]

Prints a markdown table; writes every raw result to ``--out``.
"""

from __future__ import annotations

import argparse
import json

from spiking_transformers.commands.bench import machine_info, run_child

MODELS = ["spikformer_4_384_cifar10", "sdt_2_512_cifar10"]
# (label, mode, batch, backend, compact_saves, fold_bn, fuse_bn, tune_malloc): the plain reference first, then the
# default, then the fastest / leanest settings.
CONFIGS = [
    ("torch reference neurons, unfused BN, plain malloc", "train", 32, "torch", False, False, False, False),
    ("default (fused neurons)", "train", 32, "fused", False, False, True, True),
    ("cpp neurons", "train", 32, "cpp", False, False, True, True),
    ("leanest: cpp neurons + uint8 saves", "train", 32, "cpp", True, False, True, True),
    ("torch reference neurons, plain malloc", "eval", 64, "torch", False, False, True, False),
    ("default (fused neurons)", "eval", 64, "fused", False, False, True, True),
    ("best: cpp neurons + folded BN", "eval", 64, "cpp", False, True, True, True),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results.json")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="", help="substring filter on model names")
    p.add_argument("--mode", default="", help="only this mode (train or eval)")
    p.add_argument("--headline", action="store_true", help="leave out the default (fused) rows")
    args = p.parse_args()
    configs = [c for c in CONFIGS if not args.headline or c[3] != "fused"]
    results = []
    print("| model | configuration | mode | batch | median s | min-max s | samples/s | peak RSS GB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    # both models of a configuration, then the next
    for label, mode, batch, backend, compact, fold, fuse_bn, tune_malloc in configs:
        for model in MODELS:
            if args.only not in model or (args.mode and mode != args.mode):
                continue
            config = dict(model=model, mode=mode, batch_size=batch, T=4, threads=args.threads, backend=backend,
                          repeats=args.repeats, warmup=1, compact_saves=compact, fold_bn=fold, tiny=False,
                          fuse_bn=fuse_bn, tune_malloc=tune_malloc, model_args={})
            r = run_child(config)
            r["label"] = label
            results.append(r)
            print(f"| {model} | {label} | {mode} | {batch} | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f}"
                  f" | {r['throughput']:.1f} | {r['peak_rss_bytes'] / 1e9:.2f} |", flush=True)
            with open(args.out, "w") as f:
                json.dump(dict(machine=machine_info(), results=results), f, indent=1)


if __name__ == "__main__":
    main()
