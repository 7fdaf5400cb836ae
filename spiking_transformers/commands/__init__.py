"""Sub-commands of the ``spiking-transformers`` CLI, one module each (see ``cli.py``)."""
