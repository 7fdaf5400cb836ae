"""Summarise a finished main-job run from its own files (metrics.json, config.json), for the README and notes.

    python scripts/main_report.py RUN_DIR [--threads N] [--load-before "L1 L5 L15"] [--json]

Prints one line with test accuracy, top-5, mean firing rate, training time, the threads used, the CPU and the
load average before and after the run; ``--json`` prints the same as JSON. Nothing here is typed by hand: a figure
quoted in the README should be this line's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summary(run: Path, threads: str | None, load_before: str | None) -> dict:
    metrics_path = run / "metrics.json"
    if not metrics_path.is_file():
        raise SystemExit(f"main_report: {metrics_path}: missing (did the run finish?)")
    m = json.loads(metrics_path.read_text())
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    try:
        load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load_after = "unknown"
    return {
        "run": str(run), "model": m.get("model"), "model_args": cfg.get("model_args"), "data": m.get("data"),
        "epochs": m.get("epochs"), "test_top1": m.get("test_top1"), "test_top5": m.get("test_top5"),
        "firing_rate": m.get("firing_rate"), "train_time_s": m.get("train_time_s"),
        "wall_time_s": m.get("wall_time_this_session_s"), "params": m.get("params"),
        "threads": threads or cfg.get("threads"), "cpu": _cpu(), "logical_cpus": os.cpu_count(),
        "load_before": load_before, "load_after": load_after,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--threads", default=None)
    p.add_argument("--load-before", default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    s = summary(a.run, a.threads, a.load_before)
    if a.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"main job ({s['run']}/metrics.json): test accuracy {s['test_top1']:.2f} % (top-5 {s['test_top5']:.2f} %), "
          f"mean firing rate {s['firing_rate']:.4f}, {s['train_time_s']:.0f} s of training "
          f"({s['wall_time_s']:.0f} s wall) with {s['threads']} thread(s) on {s['logical_cpus']} x {s['cpu']}; "
          f"load average before {s['load_before']}, after {s['load_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
