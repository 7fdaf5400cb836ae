"""Deployment forms: ONNX (checked in onnxruntime), NIR where expressible, the integer-to-binary expansion of
multi-level models, BatchNorm folding for inference. onnx, onnxruntime and nir are imported only when used."""

from .binary_expansion import ExpansionReport, SpikeTrain, binary_expanded, run_binary_expanded
from .nir import NirUnsupportedError, export_nir, to_nir
from .onnx import OnnxExportError, check_onnx, export_onnx

__all__ = ["ExpansionReport", "SpikeTrain", "binary_expanded", "run_binary_expanded", "export_onnx", "check_onnx",
           "OnnxExportError", "export_nir", "to_nir", "NirUnsupportedError"]
