"""Import every model family file so that its variants register themselves.

Family files are discovered rather than listed, so that adding a family is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

from . import __path__ as _models_path

for _module in pkgutil.iter_modules(_models_path):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__package__}.{_module.name}")
