"""Model families, one file each; variants register themselves at the bottom of their file."""

from ._base import SpikingModel
from ._official import (
    OfficialCheckpointError,
    OfficialFamily,
    convert_official_state_dict,
    from_official,
    get_official_family,
    load_official_checkpoint,
    load_official_state_dict,
    official_families,
    register_official_family,
)
from ._registry import ModelInfo, Paper, count_parameters, create_model, list_models, model_info, register_model

__all__ = [
    "SpikingModel",
    "ModelInfo",
    "Paper",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "count_parameters",
    "OfficialFamily",
    "OfficialCheckpointError",
    "register_official_family",
    "official_families",
    "get_official_family",
    "from_official",
    "convert_official_state_dict",
    "load_official_state_dict",
    "load_official_checkpoint",
]
