"""Speed ratio of two configurations measured under the same (possibly shared, noisy) machine load.

Both models are built in one process with the same weights; their steps alternate (A, B, A, B, ...), so a load
change hits both alike. Prints the median step time of each and the median of the per-pair ratios. Peak memory is
not meaningful here (both models live in one process): use ``spiking-transformers bench`` for that.

    python benchmarks/interleaved_ratio.py sdt_2_512_cifar10 --mode train --batch-size 32 --pairs 5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from spiking_transformers.models import create_model
from spiking_transformers.neurons.kernels import set_backend
from spiking_transformers.neurons.kernels.spike_ops import compact_spike_saves


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--mode", choices=("train", "eval"), default="train")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--best-backend", default="cpp")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ref = create_model(a.model, T=4)
    best = copy.deepcopy(ref)
    set_backend(best, a.best_backend)
    x = torch.rand(a.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (a.batch_size,))
    if a.mode == "train":
        compact_spike_saves(best)
        steps = []
        for m in (ref, best):
            opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

            def step(m=m, opt=opt) -> None:
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(m(x), y).backward()
                opt.step()

            steps.append(step)
    else:
        from spiking_transformers.export.fold_bn import fold_bn

        ref.eval()
        best = fold_bn(best.eval(), x[:1])

        def make(m):
            def step() -> None:
                with torch.inference_mode():
                    m(x)

            return step

        steps = [make(ref), make(best)]
    for s in steps:  # warm-up
        s()
    ta, tb = [], []
    for _ in range(a.pairs):
        for s, ts in zip(steps, (ta, tb)):
            t0 = time.perf_counter()
            s()
            ts.append(time.perf_counter() - t0)
    ratios = [u / v for u, v in zip(ta, tb)]
    print(f"{a.model} {a.mode} batch {a.batch_size}: torch median {statistics.median(ta):.2f} s, "
          f"{a.best_backend}+best median {statistics.median(tb):.2f} s, speed-up x{statistics.median(ratios):.2f} "
          f"(per-pair ratios {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
