"""Data-parallel training through torchrun on CPU (gloo): 2 processes == 1 process with the same global batch.

With ``--sync-bn`` (BatchNorm statistics over the global batch) the 2-rank run must match the single-process run up
to float rounding of the all-reduced sums; the ranks' weights must be identical to each other.
"""

from __future__ import annotations

import json

import torch

from test_training_utils import TINY, load_weights, run_cli

ARGS = ["train", "--model", TINY, "--epochs", "1", "--batch-size", "64", "--lr", "5e-3", "--seed", "2",
        "--threads", "1", "--no-progress", "--no-tensorboard", "--sync-bn"]


def test_torchrun_two_processes_equal_single_process(tmp_path):
    ddp = run_cli(tmp_path, *ARGS, "--out", str(tmp_path / "ddp"), torchrun=2, timeout=180,
                  env={"ST_TEST_DUMP_WEIGHTS": str(tmp_path / "ranks")})
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    single = run_cli(tmp_path, *ARGS, "--out", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr[-4000:]

    r0, r1 = (load_weights(tmp_path / "ranks" / f"rank{r}.safetensors") for r in (0, 1))
    for k in r0:
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
    ref = load_weights(tmp_path / "single" / "model.safetensors")
    written = load_weights(tmp_path / "ddp" / "model.safetensors")
    worst = 0.0
    for k, v in ref.items():
        if v.is_floating_point():
            err = (written[k] - v).abs().max().item()
            worst = max(worst, err)
            assert torch.allclose(written[k], v, rtol=1e-4, atol=1e-5), (k, err)
    print(f"max |w_ddp - w_single| = {worst:.3g}")

    m_ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    m_single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert m_ddp["world_size"] == 2 and m_single["world_size"] == 1
    # Test metrics are all-reduced over the two shards: the whole test set is counted once.
    assert abs(m_ddp["test_top1"] - m_single["test_top1"]) < 1.0
    assert not (tmp_path / "ddp" / "checkpoints" / ".tmp-best-1").exists()
