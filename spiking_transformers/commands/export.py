"""``spiking-transformers export``: ONNX (checked in onnxruntime) or NIR (where the graph is expressible)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "export"
HELP = "export a model to ONNX (checked by onnxruntime before writing) or a sub-module to NIR"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_loading_arguments

    p.add_argument("source", metavar="MODEL_OR_PATH",
                   help="registered variant (random weights), run folder, model folder, weights or official checkpoint")
    p.add_argument("--format", choices=("onnx", "nir"), default="onnx")
    p.add_argument("--out", required=True, type=Path, help="file to write (.onnx, or .nir for NIR)")
    add_loading_arguments(p)
    p.add_argument("--batch", type=int, default=2, help="batch of the example input (the ONNX batch axis is dynamic)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch's ONNX exporter (torchscript: fast; dynamo: torch.export + onnxscript)")
    p.add_argument("--no-check", action="store_true", help="write without running the file in onnxruntime")
    p.add_argument("--submodule", metavar="NAME", default=None,
                   help="NIR: export this sub-module (e.g. block.0.mlp); its input is recorded on the example")


def _build(args: argparse.Namespace):
    import spiking_transformers as st

    from ._common import load_from_args, parse_model_args

    if args.source in st.list_models():
        model = st.create_model(args.source, **parse_model_args(args.model_arg)).eval()
        return model, f"{args.source} (random initial weights)"
    if not Path(args.source).exists():
        close = ", ".join(st.list_models(f"*{args.source}*")[:5])
        hint = f"; registered variants like it: {close}" if close else ""
        raise ValueError(f"{args.source!r} is neither a registered model nor an existing path{hint}")
    loaded = load_from_args(args.source, args)
    return loaded.model.eval(), f"{loaded.name} from {loaded.weights}"


def _submodule_input(model, name: str, example):
    """The input ``model.get_submodule(name)`` receives when the model runs on ``example``."""
    import torch

    try:
        sub = model.get_submodule(name)
    except AttributeError:
        children = ", ".join(n for n, _ in model.named_children())
        raise ValueError(f"model has no sub-module {name!r}; top-level ones: {children}") from None
    seen = {}

    def grab(_mod, inputs):
        seen.setdefault("x", inputs[0])

    handle = sub.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(example)
    finally:
        handle.remove()
    if "x" not in seen:
        raise ValueError(f"sub-module {name!r} is not called in the model's forward")
    return sub, seen["x"]


def run(args: argparse.Namespace) -> int:
    from ..export.fold_bn import example_input

    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    model, what = _build(args)
    example = example_input(model, batch_size=args.batch)
    if args.format == "onnx":
        from ..export.onnx import export_onnx

        result = export_onnx(model, example, args.out, opset=args.opset, check=not args.no_check,
                             exporter=args.exporter)
        print(f"{what}: wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB), opset {result.opset}, "
              f"input {result.input_layout} {list(example.shape)} (batch dynamic), T = {result.T}, "
              f"{result.folded_bn} BatchNorm folded, {len(result.neurons)} neurons")
        for check in result.checks:
            print("  onnxruntime check:", check.line())
        return 0
    from ..export.nir import export_nir

    # NIR graphs are per time step: record them on time-major input
    if example.dim() == 4:
        example = example.unsqueeze(0).expand(int(model.T), *example.shape).contiguous()
    target, x = (_submodule_input(model, args.submodule, example) if args.submodule else (model, example))
    result = export_nir(target, x, args.out)
    print(f"{what}{' / ' + args.submodule if args.submodule else ''}: wrote {result.path} "
          f"({result.nodes} nodes, {result.edges} edges; run it over T = {result.T} steps)")
    return 0
