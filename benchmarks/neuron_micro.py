"""Micro-benchmark of the LIF back ends on one activation size (forward + backward, and forward without grad).

    python benchmarks/neuron_micro.py [--shape 4 2048 1536] [--threads 2] [--repeats 7]

Prints the median time per call of each back end; sizes default to Spikformer-4-384's MLP hidden layer
(T=4, batch 32 x 64 tokens, 1536 channels).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spiking_transformers.neurons import BACKENDS


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", type=int, nargs="+", default=[4, 2048, 1536])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(*args.shape) * 1.5
    g = torch.randn(*args.shape)
    print(f"shape {tuple(args.shape)}, {args.threads} threads, median of {args.repeats}")
    for name in sorted(BACKENDS):
        fn = BACKENDS[name]

        def train() -> None:
            xi = x.detach().requires_grad_(True)
            fn(xi).backward(g)

        def infer() -> None:
            with torch.no_grad():
                fn(x)

        for label, f in (("fwd+bwd", train), ("fwd no-grad", infer)):
            f()
            ts = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            print(f"{name:>6} {label:>12}: {statistics.median(ts) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
