"""TensorBoard event files from a real (tiny) training run: every per-epoch metric is written as a scalar."""

from __future__ import annotations

import pytest
import torch

from spiking_transformers.cli import main

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_train_writes_tensorboard_scalars(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        argv = ["train", "--epochs", "1", "--model-arg", "depth=1", "--model-arg", "embed_dim=32", "--T", "2",
                "--threads", "1", "--no-progress", "--out", str(tmp_path / "run")]
        assert main(argv) == 0, capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
    events = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train_loss", "test_top1", "firing_rate", "lr"} <= scalars
    (test_top1,) = events.Scalars("test_top1")
    assert 0.0 <= test_top1.value <= 100.0 and test_top1.step == 1
