"""Micro-benchmark of the LIF back ends and of the uint8 spike pack on one activation size.

    python benchmarks/neuron_micro.py [--shape 4 2048 1536] [--threads 2] [--repeats 7] [--surrogate sigmoid]

Prints, per back end, the median wall time and the median process CPU time of one call: forward + backward, and
forward without gradient (the inference path). CPU time is summed over threads, so on a shared machine it is the
steadier figure. Then the integrality check + uint8 pack of a spike tensor of that size
(``spike_ops.as_uint8_if_integral``: the compiled one-pass pack of the ``cpp`` extension, and the ATen cast /
compare path it replaces). Sizes default to Spikformer-4-384's MLP hidden layer (T=4, batch 32 x 64 tokens,
1536 channels). The ``cpp`` extension is built (or loaded from the cache) before timing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from spiking_transformers.neurons import BACKENDS
from spiking_transformers.neurons.kernels import cpp, spike_ops


def _time(f: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``f()`` after one untimed call."""
    f()
    wall, proc = [], []
    for _ in range(repeats):
        w0, p0 = time.perf_counter(), time.process_time()
        f()
        wall.append(time.perf_counter() - w0)
        proc.append(time.process_time() - p0)
    return statistics.median(wall), statistics.median(proc)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", type=int, nargs="+", default=[4, 2048, 1536])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--surrogate", default="sigmoid")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpp.load_extension()
    x = torch.randn(*args.shape) * 1.5
    g = torch.randn(*args.shape)
    print(f"shape {tuple(args.shape)}, {args.threads} threads, surrogate {args.surrogate}, median of {args.repeats}"
          " (wall ms / process CPU ms)")
    for name in sorted(BACKENDS):
        fn = BACKENDS[name]

        def train() -> None:
            xi = x.detach().requires_grad_(True)
            fn(xi, surrogate=args.surrogate).backward(g)

        def infer() -> None:
            with torch.no_grad():
                fn(x, surrogate=args.surrogate)

        for label, f in (("fwd+bwd", train), ("fwd no-grad", infer)):
            wall, proc = _time(f, args.repeats)
            print(f"{name:>6} {label:>12}: {wall * 1e3:8.1f} ms  {proc * 1e3:8.1f} ms CPU")

    spikes = (x > 0).float()

    def aten_pack() -> None:
        xu = spikes.to(torch.uint8)
        torch.equal(xu.to(spikes.dtype), spikes)

    packs = [("aten cast+compare", aten_pack)]
    if cpp.loaded_extension() is not None:
        packs.insert(0, ("cpp one pass", lambda: cpp.pack_uint8_if_integral(spikes)))
        packs.append(("cpp, real input", lambda: spike_ops.as_uint8_if_integral(x)))
    for label, f in packs:
        wall, proc = _time(f, args.repeats)
        print(f"uint8 pack {label:>18}: {wall * 1e3:8.1f} ms  {proc * 1e3:8.1f} ms CPU")


if __name__ == "__main__":
    main()
