"""GPU training step of Spikformer-8-384 (ImageNet, 224 x 224) with each neuron back end: time and peak memory.

Issue 7, item 5. One process builds the model afresh for each back end (same seed, same weights, same batch), runs
warm-up steps (Triton compiles its kernels there), then times steps with CUDA synchronisation around each and reads
``torch.cuda.max_memory_allocated`` (reset before the warm-up, so it covers parameters, gradients, AdamW state and
the activations of a step). Official-style settings: T = 4, AdamW, bf16 autocast (forward and loss; backward
outside), batch 32. Prints one JSON line per configuration, then a short table on stderr::

    python benchmarks/gpu_train_step.py                       # cuda: torch, fused, triton
    python benchmarks/gpu_train_step.py --device cpu --tiny   # a tiny smoke run of the same code on the CPU

The first step's loss is printed too: with the same weights and batch every back end should give the same value
(identical spikes), which checks the back ends against each other on the real model. ``--budget-s`` caps the whole
run (the timed steps of a configuration are cut to fit; the default leaves an 8-minute H200 lease room to spare).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Any

import torch

from spiking_transformers.models import create_model, model_info
from spiking_transformers.neurons.kernels import available_backends, set_backend


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="spikformer_8_384", help="registry name (default: the ImageNet Spikformer-8-384)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--backends", default="torch,fused,triton", help="comma-separated neuron back ends")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 (cuda), 2 (--tiny)")
    p.add_argument("--T", type=int, default=None, help="time steps (default: the model's, 4)")
    p.add_argument("--amp", choices=("bf16", "none"), default=None, help="autocast dtype (default: bf16 on cuda)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration (fewer if --budget-s says so)")
    p.add_argument("--budget-s", type=float, default=360.0, help="wall-clock cap for the whole run, seconds")
    p.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick convolution algorithms by timing")
    p.add_argument("--tiny", action="store_true", help="the registry's tiny configuration (a smoke test)")
    p.add_argument("--micro", action="store_true",
                   help="first time the LIF back ends alone on one activation (--micro-shape), float32 and bf16")
    p.add_argument("--micro-shape", type=int, nargs="+", default=[4, 32 * 196, 1536],
                   help="default: Spikformer-8-384's MLP hidden layer at 224 (T=4, batch 32 x 196 tokens, 1536)")
    a = p.parse_args(argv)
    if a.batch_size is None:
        a.batch_size = 2 if a.tiny else 32
    if a.amp is None:
        a.amp = "bf16" if a.device == "cuda" else "none"
    return a


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(a: argparse.Namespace, backend: str, device: torch.device, deadline: float,
               n_left: int) -> dict[str, Any]:
    """Build, warm up and time one back end; returns the JSON record."""
    info = model_info(a.model)
    kwargs: dict[str, Any] = dict(info.tiny_overrides) if a.tiny else {}
    if a.T is not None:
        kwargs["T"] = a.T
    torch.manual_seed(0)
    model = create_model(a.model, **kwargs).to(device)
    switched = set_backend(model, backend)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    size = getattr(model, "img_size", info.img_size)
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(1)
    x = torch.rand(a.batch_size, info.in_chans, h, w, generator=g).to(device)
    y = torch.randint(0, max(int(model.num_classes), 1), (a.batch_size,), generator=g).to(device)
    amp = a.amp == "bf16"

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_start = time.perf_counter()
    first_loss = float(step())  # before any update: the same for every back end with identical spikes
    _sync(device)
    first_step_s = time.perf_counter() - t_start
    for _ in range(max(a.warmup - 1, 0)):
        step()
    _sync(device)
    warm_s = time.perf_counter() - t_start
    # Timed steps: as many as asked, fewer when this configuration's share of the remaining budget is smaller.
    per_step = max(warm_s / max(a.warmup, 1), 1e-6)
    share = max(deadline - time.perf_counter(), 0.0) / max(n_left, 1)
    n_steps = max(2, min(a.steps, int(share / per_step)))
    times = []
    for _ in range(n_steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rec: dict[str, Any] = dict(
        model=a.model, backend=backend, device=str(device), batch_size=a.batch_size, T=int(model.T), img_size=h,
        amp=a.amp, tiny=a.tiny, neurons_switched=switched, warmup=a.warmup, steps=n_steps,
        median_s=med, min_s=min(times), max_s=max(times), throughput_img_s=a.batch_size / med,
        first_step_s=first_step_s, first_loss=first_loss, times_s=times,
    )
    if device.type == "cuda":
        rec["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated(device))
        rec["peak_mem_gib"] = rec["peak_mem_bytes"] / 2**30
    del model, opt, x, y
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rec


def micro(a: argparse.Namespace, device: torch.device, backends: list[str]) -> list[dict[str, Any]]:
    """Median time of one LIF call per back end: forward + backward, and forward without grad (no model)."""
    from spiking_transformers.neurons.lif import BACKENDS

    shape = (2, 2, 64) if a.tiny else tuple(a.micro_shape)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        g = torch.Generator().manual_seed(2)
        x = (torch.randn(shape, generator=g) * 1.5).to(device=device, dtype=dtype)
        gy = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
        for name in backends:
            if name not in BACKENDS:
                continue
            fn = BACKENDS[name]

            def train(fn=fn) -> None:
                fn(x.detach().requires_grad_(True)).backward(gy)

            def infer(fn=fn) -> None:
                with torch.no_grad():
                    fn(x)

            rec: dict[str, Any] = dict(micro=True, backend=name, shape=list(shape), dtype=str(dtype).split(".")[-1])
            for label, f in (("train", train), ("infer", infer)):
                for _ in range(3):
                    f()
                times = []
                for _ in range(3 if a.tiny else 20):
                    _sync(device)
                    t0 = time.perf_counter()
                    f()
                    _sync(device)
                    times.append(time.perf_counter() - t0)
                rec[f"{label}_median_ms"] = 1e3 * statistics.median(times)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda was asked but torch sees no CUDA device "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
              "use --device cpu --tiny for a smoke run", file=sys.stderr)
        return 2
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = bool(a.cudnn_benchmark)
    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    deadline = time.perf_counter() + a.budget_s
    env: dict[str, Any] = dict(torch=torch.__version__)
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if a.micro:
        micro(a, device, backends)
    rows = []
    for i, backend in enumerate(backends):
        if backend not in available_backends():
            rec = dict(model=a.model, backend=backend, error=f"unknown back end; available: {available_backends()}")
        else:
            try:
                rec = run_config(a, backend, device, deadline, len(backends) - i)
            except torch.cuda.OutOfMemoryError as exc:  # a batch too large for this back end: say so, go on
                gc.collect()
                torch.cuda.empty_cache()
                rec = dict(model=a.model, backend=backend, batch_size=a.batch_size, error=f"out of memory: {exc}"[:300])
        rec.update(env)
        rows.append(rec)
        print(json.dumps(rec), flush=True)
    print(f"\n{'backend':8s} {'median s':>9s} {'img/s':>8s} {'peak GiB':>9s} {'first loss':>12s}", file=sys.stderr)
    for r in rows:
        if "error" in r:
            print(f"{r['backend']:8s} error: {r['error'][:100]}", file=sys.stderr)
            continue
        mem = f"{r['peak_mem_gib']:9.2f}" if "peak_mem_gib" in r else f"{'-':>9s}"
        print(f"{r['backend']:8s} {r['median_s']:9.4f} {r['throughput_img_s']:8.1f} {mem} {r['first_loss']:12.6f}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
