"""onnxruntime against our eager eval: the same model, the same batch, interleaved rounds, median seconds.

    python benchmarks/onnx_eval.py --model spikformer_4_384_cifar10 --batch 64 --threads 2 --rounds 5

BatchNorm running statistics are first set from one train-mode pass over random images (momentum 1), so that the
randomly initialised network fires as a trained one does (with the initial statistics most neurons stay silent and
every path looks cheap). Prints one line per path and the ratio onnxruntime / eager default; ``--json`` saves them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import spiking_transformers as st
from spiking_transformers.export.onnx import _session, check_onnx, export_onnx, prepare_for_export
from spiking_transformers.commands.bench import machine_info


def calibrate_bn(model: nn.Module, x: torch.Tensor) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spikformer_4_384_cifar10")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = st.create_model(args.model).eval()
    shape = (args.batch, model.in_chans if hasattr(model, "in_chans") else 3, 32, 32)
    x = torch.randn(shape)
    calibrate_bn(model, torch.randn(shape))
    folded, _ = prepare_for_export(model, x)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        t0 = time.perf_counter()
        export_onnx(model, x[:8], path, check=False)
        export_s = time.perf_counter() - t0
        check = check_onnx(path, model, x, label=f"batch {args.batch}", threads=args.threads)
        session = _session(path, threads=args.threads)
        feed = {"input": x.numpy()}
        paths = {
            "eager default": lambda: model(x),
            "eager, BN folded": lambda: folded(x),
            "onnxruntime": lambda: session.run(None, feed),
        }
        times: dict[str, list[float]] = {k: [] for k in paths}
        with torch.no_grad():
            for fn in paths.values():  # warm-up
                fn()
            for _ in range(args.rounds):
                for name, fn in paths.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps(machine_info()))
    print(f"{args.model}, eval batch {args.batch}, {args.threads} threads, median of {args.rounds} interleaved rounds")
    print(f"export: {export_s:.1f} s; check against the eager model: {check.line()}")
    for k, v in med.items():
        print(f"  {k:18s} {v:.3f} s   (all: {', '.join(f'{t:.2f}' for t in times[k])})")
    ratio = med["onnxruntime"] / med["eager default"]
    print(f"onnxruntime / eager default = {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(dict(model=args.model, batch=args.batch, threads=args.threads,
                                             machine=machine_info(),
                                             times=times, median=med, ratio=ratio, check=check.line()), indent=2))


if __name__ == "__main__":
    main()
