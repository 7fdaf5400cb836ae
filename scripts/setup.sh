#!/usr/bin/env bash
# Create .venv (once) and install the package with its test extras. torch is installed first and pinned through
# constraints.txt, so pip never resolves another torch version.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
# Optional cross-check of our synaptic-operation counts against SpikingJelly's counter (tests/test_analysis*.py).
# Its declared dependencies would pull another torch, so it is installed without them.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt --no-deps "spikingjelly==2.0.0" "loguru>=0.7"
