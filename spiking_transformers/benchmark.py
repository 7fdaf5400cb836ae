"""Timing a training step or an eval forward of a model in a fresh process: the library behind ``bench``.

:func:`run` (also ``run_child``) starts a child Python process (so that peak memory, ``ru_maxrss``, belongs to this
one configuration and thread settings apply from the start) which calls :func:`measure`: build the model (a
registered name, or a path that :func:`spiking_transformers.loading.load_any_checkpoint` reads), make a random
batch, run ``warmup`` untimed steps and ``repeats`` timed ones, and report the median, minimum and maximum step
time, throughput and the child's peak resident memory. The configuration is a plain JSON dictionary (see
``commands/bench.py: config_from_args``). A failing child is one line: its own last line.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

__all__ = ["run", "run_child", "measure", "machine_info", "format_table"]

_MARK = "BENCH_RESULT "


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return dict(
        cpu=cpu, logical_cpus=os.cpu_count(), torch=torch.__version__, python=platform.python_version(),
        platform=platform.platform(), load_average=load,
    )


def run_child(config: dict[str, Any], timeout: float = 3600.0) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; returns its result dictionary."""
    env = dict(os.environ)
    threads = str(config["threads"])
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    proc = subprocess.run(
        [sys.executable, "-m", "spiking_transformers.benchmark", json.dumps(config)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    # The child's own last line (its exception) is the message; the child's traceback stays out of ours.
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
    raise RuntimeError(f"benchmark child failed (exit {proc.returncode}): {last}")


run = run_child  # ``bench.run(config)``: the name the commands use


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of results."""
    head = ["model", "mode", "batch", "T", "backend", "options", "threads", "median s", "min s", "max s",
            "samples/s", "peak RSS GB"]
    body = []
    for r in rows:
        opts = ",".join(k for k in ("compact_saves", "fold_bn", "grad_checkpointing", "bf16") if r.get(k))
        if r["mode"] == "train" and not r.get("fuse_bn", True):
            opts = ",".join(filter(None, [opts, "unfused_bn"]))
        if not r.get("malloc_tuned"):
            # memory mode returns freed tensors to the system (runtime.release_freed_memory): not glibc as it comes
            label = "returned_memory" if r.get("grad_checkpointing") else "plain_malloc"
            opts = ",".join(filter(None, [opts, label]))
        opts = opts or "-"
        body.append([
            r["model"], r["mode"], str(r["batch_size"]), str(r["T"]), r["backend"], opts, str(r["threads"]),
            f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['max_s']:.3f}", f"{r['throughput']:.1f}",
            f"{r['peak_rss_bytes'] / 1e9:.2f}",
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)



# ---------------------------------------------------------------------------------------------------------------------
# The child process


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _peak_rss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """Build, warm up and time the configured step in this process (the child side of :func:`run_child`)."""
    import torch

    from .models import create_model, model_info
    from .neurons.kernels import set_backend
    from .neurons.kernels.bn_spike import set_bn_fusion
    from .neurons.kernels.spike_ops import compact_spike_saves
    from .runtime import tune_cpu_allocator

    malloc_tuned = tune_cpu_allocator() if config.get("tune_malloc", True) else False
    if config.get("grad_checkpointing") and not malloc_tuned:
        from .runtime import release_freed_memory

        release_freed_memory()  # memory mode: freed tensors go back to the system (runtime.py)
    torch.set_num_threads(int(config["threads"]))
    torch.manual_seed(0)
    if os.path.exists(config["model"]):  # a model folder, run folder or weights file
        from .loading import load_any_checkpoint

        model = load_any_checkpoint(config["model"]).model
        if config["T"] is not None:
            model.set_T(int(config["T"]))
        info = None
    else:
        info = model_info(config["model"])
        kwargs = dict(info.tiny_overrides) if config["tiny"] else {}
        if config["T"] is not None:
            kwargs["T"] = int(config["T"])
        kwargs.update(config["model_args"])
        model = create_model(config["model"], **kwargs)
    onnx_session = config["backend"] == "onnxruntime"
    n_switched = 0 if onnx_session else set_backend(model, config["backend"])
    set_bn_fusion(model, bool(config.get("fuse_bn", True)))
    T = int(model.T)
    B = int(config["batch_size"])
    size = getattr(model, "img_size", None) or (info.img_size if info is not None else 224)
    h, w = (size, size) if isinstance(size, int) else size
    first_conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    in_chans = first_conv.in_channels if first_conv is not None else (info.in_chans if info is not None else 3)
    shape = (B, in_chans, h, w) if model.input_kind == "image" else (T, B, in_chans, h, w)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(shape, generator=g)
    num_classes = max(int(model.num_classes), 1)
    y = torch.randint(0, num_classes, (B,), generator=g)

    if config["mode"] == "train":
        if config["compact_saves"]:
            compact_spike_saves(model)
        if config.get("grad_checkpointing"):
            if not hasattr(model, "set_grad_checkpointing"):
                raise ValueError(f"--grad-checkpointing: {type(model).__name__} has no set_grad_checkpointing")
            model.set_grad_checkpointing(True)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    else:
        model.eval()
        if config["fold_bn"]:
            from .export.fold_bn import fold_bn

            model = fold_bn(model, x[:1] if model.input_kind == "image" else x[:, :1])

        def step() -> None:
            with torch.inference_mode():
                model(x)

        if onnx_session:
            import tempfile

            from .export.onnx import _session, export_onnx

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                export_onnx(model, x[:2] if model.input_kind == "image" else x[:, :2], path, check=False)
                session = _session(path, threads=int(config["threads"]))  # the file is read; it may go now
            feed = {"input": x.numpy()}

            def step() -> None:
                session.run(None, feed)

    if config.get("bf16"):  # refused before this point on a CPU without native bfloat16 (runtime.bf16_refusal)
        from .runtime import bf16_autocast

        plain_step = step

        def step() -> None:
            with bf16_autocast():
                plain_step()

    rss_before = _peak_rss_bytes()
    for _ in range(int(config["warmup"])):
        step()
    times = []
    for _ in range(int(config["repeats"])):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = _median(times)
    return dict(
        config,
        T=T,
        neurons_switched=n_switched,
        malloc_tuned=malloc_tuned,
        times_s=times,
        median_s=med,
        min_s=min(times),
        max_s=max(times),
        throughput=B / med,
        peak_rss_bytes=_peak_rss_bytes(),
        peak_rss_before_steps_bytes=rss_before,
        params=sum(p.numel() for p in model.parameters()),
    )


def _child_main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    result = measure(config)
    print(_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
