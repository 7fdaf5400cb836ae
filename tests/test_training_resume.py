"""Crash safety: a training run SIGKILLed mid-epoch resumes to exactly the weights of an uninterrupted run.

Also checks the fallback: the newest checkpoint is truncated before resuming, so the resume must report it and
continue from the one before (still ending bit-identical).
"""

from __future__ import annotations

import csv
import signal

import torch

from test_training_utils import TINY, load_weights, run_cli

# digits: 1438 training samples / batch 64 -> 22 optimiser steps in the one epoch.
ARGS = ["train", "--model", TINY, "--epochs", "1", "--batch-size", "64", "--lr", "5e-3", "--seed", "1",
        "--threads", "1", "--no-progress", "--no-tensorboard", "--mixup", "0.5", "--label-smoothing", "0.1",
        "--ema-decay", "0.9", "--save-every-steps", "5", "--keep-last", "2"]
KILL_AT = 18  # mid-epoch; checkpoints at steps 5, 10, 15 (keep-last 2: 10 and 15 remain)


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in csv.DictReader(f)]


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    ref = run_cli(tmp_path, *ARGS, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "run"
    killed = run_cli(tmp_path, *ARGS, "--out", str(run), env={"ST_TEST_KILL_AT_STEP": str(KILL_AT)})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    steps = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
    assert steps == ["step-00000010", "step-00000015"], steps
    assert not (run / "model.safetensors").exists()

    # Corrupt the newest checkpoint: resume must say so and fall back to step 10.
    newest = run / "checkpoints" / "step-00000015" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    resumed = run_cli(tmp_path, "train", "--resume", str(run), "--threads", "1", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step-00000015 is unusable" in resumed.stderr and "corrupt or truncated" in resumed.stderr
    assert "resumed from" in resumed.stderr and "step 10" in resumed.stderr

    for name in ("model.safetensors", "model_ema.safetensors"):
        a, b = load_weights(tmp_path / "ref" / name), load_weights(run / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"
    assert _rows(tmp_path / "ref" / "metrics.csv") == _rows(run / "metrics.csv")
