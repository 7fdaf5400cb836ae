"""spiking-transformers: published spiking transformers, faithful to their official code, in one library."""

from .models import (
    ModelInfo,
    OfficialCheckpointError,
    convert_official_state_dict,
    create_model,
    from_official,
    list_models,
    load_official_checkpoint,
    load_official_state_dict,
    model_info,
)
from .loading import LoadError, from_pretrained, load, load_any_checkpoint, save_pretrained
from .export.nir import export_nir
from .export.onnx import export_onnx

__version__ = "0.1.0"

__all__ = [
    "ModelInfo",
    "OfficialCheckpointError",
    "create_model",
    "list_models",
    "model_info",
    "from_official",
    "convert_official_state_dict",
    "load_official_state_dict",
    "load_official_checkpoint",
    "load",
    "load_any_checkpoint",
    "from_pretrained",
    "save_pretrained",
    "LoadError",
    "export_onnx",
    "export_nir",
    "__version__",
]
