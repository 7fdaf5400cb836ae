#!/usr/bin/env bash
# The main job: install, then train a small spiking transformer on the bundled digits and print test accuracy and
# firing rate. The closing summary is read back from the run's own metrics.json (scripts/main_report.py), with the
# threads used and the machine's load, so that every figure quoted from this job comes from its output.
#
# Threads: 1 by default (MAIN_THREADS=N, or pass --threads N). Why: the run is small, so a second thread buys
# little on an idle machine (the 2-thread run is at best ~1.3x faster), while on a machine shared with one busy
# process OpenMP's spinning threads made the 2-thread default take 134-460 s instead of 21-22 s (issue 15). One
# thread also makes the result independent of the machine: the thread count changes float summation order, so
# 1 and 2 threads end at slightly different accuracies (each deterministic). With more cores and nothing else
# running, MAIN_THREADS=2 (or OMP_WAIT_POLICY=PASSIVE with 2 threads) is the faster choice.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

threads="${MAIN_THREADS:-1}"
out=""
prev=""
for a in "$@"; do  # the user's --threads / --out win over ours
    case "$prev" in --threads) threads="$a" ;; --out) out="$a" ;; esac
    case "$a" in --threads=*) threads="${a#--threads=}" ;; --out=*) out="${a#--out=}" ;; esac
    prev="$a"
done
extra=()
if [ -z "$out" ]; then
    out="runs/main-$(date +%Y%m%d-%H%M%S)"
    extra+=(--out "$out")
fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
export OMP_NUM_THREADS="$threads"
.venv/bin/spiking-transformers train --threads "$threads" "${extra[@]}" "$@"
exec .venv/bin/python scripts/main_report.py "$out" --threads "$threads" --load-before "$load_before"
