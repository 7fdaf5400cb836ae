"""Old module path, kept so that imports written against it keep working: the blocks now live by concern
(see :mod:`spiking_transformers.layers`). Import from ``spiking_transformers.layers`` instead."""

from . import *  # noqa: F401,F403
from . import __all__  # noqa: F401
