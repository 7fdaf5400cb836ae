#!/usr/bin/env bash
# Install, then run the whole default test suite (parity against ../shared/fixtures/official included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
