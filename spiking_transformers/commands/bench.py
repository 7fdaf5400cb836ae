"""``spiking-transformers bench MODEL``: time a training step or an eval forward in a fresh process.

The measurement runs in a child Python process (so that peak memory, ``ru_maxrss``, belongs to this one
configuration and thread settings apply from the start): it builds the model, makes a random batch, runs
``--warmup`` untimed steps and ``--repeats`` timed ones, and reports the median, minimum and maximum step time,
throughput (samples per second at the median) and the child's peak resident memory.

A training step is ``zero_grad`` + forward + cross-entropy + backward + AdamW step, in ``train()`` mode; an eval
step is a forward in ``eval()`` mode under ``torch.inference_mode`` (no autograd bookkeeping).

Speed options: ``--backend`` picks the neuron back end (``set_backend``), ``--compact-saves`` stores
integer-valued layer inputs as uint8 for backward (training), ``--fold-bn`` folds BatchNorm into the preceding
conv/linear (eval), ``--best`` turns on all of them with the ``cpp`` back end (``fused`` where it cannot compile).
The child keeps large freed blocks in glibc's heap (:func:`~spiking_transformers.runtime.tune_cpu_allocator`, as
``train`` and ``eval`` do); ``--no-tune-malloc`` measures with the allocator as it comes ("plain_malloc").

This command only parses and prints; the measurement is :mod:`spiking_transformers.benchmark` (``benchmark.run``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..benchmark import format_table, machine_info, measure, run_child  # noqa: F401  (re-exported)
from ._common import parse_model_args

NAME = "bench"
HELP = "measure train-step / eval time, throughput and peak memory of a model in a fresh process"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name, or a model / run folder or weights file (see `convert`)")
    p.add_argument("--mode", choices=("train", "eval"), default="train", help="training step or eval forward")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    p.add_argument("--T", type=int, default=None, help="time steps (default: the model's)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads in the child (default 2)")
    p.add_argument("--backend", default=None,
                   help="neuron back end (torch = step-by-step reference, fused = the default, cpp = compiled), or "
                        "onnxruntime (eval: the exported ONNX file run by onnxruntime)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before timing (default 1)")
    p.add_argument("--compact-saves", action="store_true", help="save integer-valued layer inputs as uint8")
    p.add_argument("--no-fuse-bn", action="store_true",
                   help="train: keep BatchNorm and neuron apart (default: fused, only the BN input saved; bn_spike.py)")
    p.add_argument("--fold-bn", action="store_true", help="eval: fold BatchNorm into the preceding conv/linear")
    p.add_argument("--bf16", action="store_true",
                   help="run the step under torch.autocast(cpu, bfloat16); refused on a CPU without avx512_bf16/amx_bf16")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="train: memory mode, model.set_grad_checkpointing(True) (recompute each block in backward; "
                        "implies --no-tune-malloc)")
    p.add_argument("--best", action="store_true", help="cpp back end + every applicable option above")
    p.add_argument("--tiny", action="store_true", help="use the variant's tiny_overrides (a quick smoke run)")
    p.add_argument("--no-tune-malloc", action="store_true",
                   help="leave glibc's allocator as it is (default: keep large freed blocks for reuse, see runtime.py)")
    p.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE",
        help="constructor override, repeatable (value parsed as a Python literal, else a string)",
    )
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE", help="also write the result as JSON")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before the child is stopped")


#: ``--backend onnxruntime``: the eval step of the model exported by ``export_onnx`` (BatchNorm folded), run by
#: onnxruntime with the same threads; beside the neuron back ends of our eager model.
ONNXRUNTIME = "onnxruntime"


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The child's configuration (plain JSON) from parsed arguments."""
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise ValueError("need --batch-size >= 1, --repeats >= 1, --warmup >= 0, --threads >= 1")
    from ..neurons.kernels import available_backends
    from ..neurons.lif import DEFAULT_BACKEND

    if getattr(args, "bf16", False):
        from ..runtime import bf16_refusal

        reason = bf16_refusal()
        if reason is not None:
            raise ValueError(f"--bf16: {reason}")
    backend = args.backend or ("cpp" if args.best else DEFAULT_BACKEND)
    if backend == ONNXRUNTIME:
        if args.mode != "eval":
            raise ValueError("--backend onnxruntime measures inference: use it with --mode eval")
        from ..export.onnx import require_export_packages

        require_export_packages("onnx", "onnxruntime")
    elif backend not in available_backends():
        raise ValueError(f"--backend {backend!r}: unknown neuron back end; available: {', '.join(available_backends())}")
    if os.path.exists(args.model) and (args.tiny or args.model_arg):
        raise ValueError(f"{args.model}: --tiny and --model-arg apply to a registered model name, not to saved weights")
    return dict(
        model=args.model,
        mode=args.mode,
        batch_size=args.batch_size,
        T=args.T,
        threads=args.threads,
        backend=backend,
        repeats=args.repeats,
        warmup=args.warmup,
        compact_saves=bool(args.compact_saves or (args.best and args.mode == "train")),
        fold_bn=bool(args.fold_bn or (args.best and args.mode == "eval")),
        grad_checkpointing=bool(getattr(args, "grad_checkpointing", False)),
        bf16=bool(getattr(args, "bf16", False)),
        tiny=bool(args.tiny),
        # memory mode gives freed tensors back to the system (runtime.release_freed_memory), not kept for reuse
        tune_malloc=not (args.no_tune_malloc or getattr(args, "grad_checkpointing", False)),
        fuse_bn=not args.no_fuse_bn,
        model_args=parse_model_args(args.model_arg),
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from ..models import model_info

    if os.path.exists(config["model"]):
        from ..loading import load_any_checkpoint

        load_any_checkpoint(config["model"])  # fail fast, in this process, on unreadable weights
        config["model"] = os.path.abspath(config["model"])
    else:
        model_info(config["model"])  # fail fast, in this process, on an unknown name
    from .. import benchmark

    result = benchmark.run(config, timeout=args.timeout)
    result["machine"] = machine_info()
    print(format_table([result]))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=1)
    return 0


