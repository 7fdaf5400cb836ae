#!/usr/bin/env bash
# Install, then train a small spiking transformer on the bundled data set and print test accuracy and firing rate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/spiking-transformers train "$@"
