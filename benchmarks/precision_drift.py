"""Numerical drift of each compute path against a float64 reference: spikes that differ, and logit drift.

A float32 spiking network is not "float64 with rounding noise": a membrane that lands on the other side of a
threshold flips a spike, and the flip travels downstream. This script states how large that effect is for every
neuron back end of ours (``torch``: the step-by-step reference; ``fused``: the default; ``cpp``: compiled, where it
builds) on random weights whose BatchNorm statistics are re-estimated so that the neurons fire as in training
(:func:`~spiking_transformers.training.bn_stats.recalibrate_bn` on random batches; the untouched statistics of a
fresh model leave most neurons silent, which would hide the effect).

Reference: float64, ``torch`` back end, eval mode. Each path runs a deep copy of the same model (same weights and
statistics) on the same input, in eval mode without gradient; float64 rows check that the back end itself is exact.
Spike comparisons come from :mod:`spiking_transformers.analysis.precision` (element by element, every neuron, every
time step; "flipped" = 1 - agreement).

    python benchmarks/precision_drift.py --models spikformer_4_384_cifar10 sdt_2_512_cifar10 --batch-size 8
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from spiking_transformers.analysis.precision import _compare, _run
from spiking_transformers.models import create_model
from spiking_transformers.neurons.kernels import available_backends, set_backend
from spiking_transformers.training.bn_stats import recalibrate_bn

BACKENDS = ("torch", "fused", "cpp")


def firing_model(name: str, *, seed: int, calib_batches: int, batch_size: int) -> torch.nn.Module:
    """A registered model with random weights and BatchNorm statistics of random input (neurons fire)."""
    torch.manual_seed(seed)
    model = create_model(name).double()
    g = torch.Generator().manual_seed(seed + 1)
    size = model.img_size if hasattr(model, "img_size") else (32, 32)
    batches = [(torch.rand(batch_size, 3, *size, generator=g, dtype=torch.float64), None) for _ in range(calib_batches)]
    recalibrate_bn(model, batches)
    return model.eval()


def drift(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    model = firing_model(name, seed=args.seed, calib_batches=args.calib_batches, batch_size=args.batch_size)
    size = model.img_size
    x = torch.rand(args.batch_size, 3, *size, generator=torch.Generator().manual_seed(args.seed + 7), dtype=torch.float64)
    ref_model = copy.deepcopy(model)
    set_backend(ref_model, "torch")
    ref_out, ref_rec = _run(ref_model, x, torch.float64, "cast", "forward")
    rows = []
    for backend in args.backends:
        if backend not in available_backends():
            rows.append(dict(model=name, path=backend, error=f"back end {backend!r} is not available here"))
            continue
        m = copy.deepcopy(model)
        try:
            set_backend(m, backend)
        except Exception as exc:  # e.g. the cpp extension does not compile on this machine
            rows.append(dict(model=name, path=backend, error=f"{type(exc).__name__}: {exc}"))
            continue
        for dtype_name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
            out, rec = _run(m, x, dtype, "cast", "forward")
            r = _compare(f"{backend}/{dtype_name}", dtype_name, "cast", out, rec, ref_out, ref_rec)
            total = sum(n.elements for n in r.neurons.values())
            rows.append(dict(
                model=name, path=backend, dtype=dtype_name, elements=total,
                flipped_fraction=1.0 - r.spike_agreement,
                flipped_per_million=(1.0 - r.spike_agreement) * 1e6,
                active_flipped_fraction=1.0 - r.active_spike_agreement,
                ref_spikes=sum(n.ref_spikes for n in r.neurons.values()),
                spike_count_rel_diff=r.spike_count_rel_diff,
                logit_max_abs_err=r.logit_max_abs_err, logit_rel_err=r.logit_rel_err,
                ref_logit_max_abs=float(ref_out.abs().max()),
                top1_agreement=r.top1_agreement, first_divergent=r.first_divergent,
            ))
            print(f"{name} {backend}/{dtype_name}: {rows[-1]['flipped_per_million']:.1f} flips per million, "
                  f"logit max abs err {r.logit_max_abs_err:.2e}", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | path | dtype | neuron outputs | spikes flipped (per million) | among active | total spikes diff "
        "| logit max abs err (max abs logit) | logit rel err | top-1 agreement | first divergent neuron |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['path']} | - | not run: {r['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['path']} | {r['dtype']} | {r['elements']:,} | {r['flipped_per_million']:.1f} | "
            f"{r['active_flipped_fraction']:.3%} | {r['spike_count_rel_diff']:.3%} | "
            f"{r['logit_max_abs_err']:.2e} ({r['ref_logit_max_abs']:.2f}) | {r['logit_rel_err']:.2e} | "
            f"{r['top1_agreement']:.0%} | {r['first_divergent'] or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["spikformer_4_384_cifar10", "sdt_2_512_cifar10"])
    p.add_argument("--backends", nargs="+", default=list(BACKENDS))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--calib-batches", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [r for name in args.models for r in drift(name, args)]
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, torch=torch.__version__, threads=args.threads,
                                                   batch_size=args.batch_size, seed=args.seed,
                                                   load_average=os.getloadavg()), indent=1))


if __name__ == "__main__":
    main()
