"""The `train` and `eval` commands end to end (in-process, tiny settings), and the argument plumbing."""

from __future__ import annotations

import json

import pytest

from spiking_transformers.cli import build_parser, main
from spiking_transformers.commands.train import config_from_args
from test_training_utils import TINY, register_tiny


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _args(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_no_arguments_uses_the_digits_recipe():
    cfg = config_from_args(_args())
    assert cfg.recipe == "digits" and cfg.data == "digits" and cfg.out.startswith("runs/")
    from spiking_transformers.models import list_models

    assert cfg.model in list_models()  # the default trains a registered spiking transformer


def test_flags_override_recipe_and_model_args():
    cfg = config_from_args(_args("--recipe", "spikformer_cifar10", "--epochs", "2", "--model-arg", "depth=1",
                                 "--model-arg", "embed_dim=32", "--set", "ema_decay=0.5", "--no-progress", "--T", "2"))
    assert (cfg.epochs, cfg.T, cfg.ema_decay, cfg.progress, cfg.lr) == (2, 2, 0.5, False, 5e-4)
    assert cfg.model_args == {"depth": 1, "embed_dim": 32}


def test_real_registered_model_builds_for_digits():
    from spiking_transformers.training.run import build_model

    model = build_model(config_from_args(_args()))
    assert model.num_classes == 10 and model.T == 4


def test_train_then_eval_cli(tmp_path, capsys):
    register_tiny()
    out = tmp_path / "run"
    rc = main(["train", "--model", TINY, "--epochs", "2", "--batch-size", "64", "--lr", "5e-3", "--threads", "1",
               "--no-progress", "--no-tensorboard", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "mean firing rate" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_top1"] > 30  # chance is 10 %
    for f in ("config.json", "metrics.csv", "model.safetensors", "curves.png"):
        assert (out / f).is_file(), f

    rc = main(["eval", str(out), "--per-class", "--confusion", str(tmp_path / "conf.png"), "--json",
               str(tmp_path / "eval.json"), "--threads", "1"])
    assert rc == 0
    res = json.loads((tmp_path / "eval.json").read_text())
    assert res["top1"] == pytest.approx(metrics["test_top1"]) and len(res["per_class_top1"]) == 10
    assert (tmp_path / "conf.png").is_file()
    for path in (out / "checkpoints" / "best", out / "model.safetensors"):
        assert main(["eval", str(path), "--threads", "1"]) == 0
        assert f"top-1 {metrics['test_top1']:.2f}%" in capsys.readouterr().out


def test_eval_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_list_recipes(capsys):
    assert main(["train", "--list-recipes"]) == 0
    assert "spikformer_cifar10" in capsys.readouterr().out
