"""Unit tests of the training package: schedule, optimisers, losses, mixup, EMA, checkpoints, recipes, Trainer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from spiking_transformers.training import (
    CheckpointError,
    CheckpointManager,
    CosineSchedule,
    CPUSyncBatchNorm,
    Lamb,
    Mixup,
    ModelEMA,
    Trainer,
    TrainConfig,
    list_recipes,
    load_checkpoint,
    load_recipe,
    recipes_for_model,
    resolve_config,
    save_checkpoint,
    soft_cross_entropy,
    tet_loss,
)
from spiking_transformers.training.distributed import DistEnv, ResumableSampler
from spiking_transformers.training.optim import param_groups
from test_training_utils import TinySNN


def _data(n: int = 48, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float() * 0.5
    return TensorDataset(x, y)


def _config(**kw) -> TrainConfig:
    base = dict(model="test_tiny_snn", epochs=2, batch_size=8, lr=5e-3, warmup_epochs=0.5, progress=False,
                tensorboard=False, seed=3)
    return TrainConfig(**{**base, **kw})


def _trainer(tmp: Path | None, config: TrainConfig, **kw) -> Trainer:
    torch.manual_seed(config.seed)
    model = TinySNN(num_classes=4, T=2)
    return Trainer(model, config, _data(), _data(16, seed=1), out_dir=tmp, env=DistEnv(), **kw)


# ------------------------------------------------------------------------------------------------- schedule
def test_cosine_schedule_warmup_cosine_cooldown():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = CosineSchedule(opt, base_lr=1.0, min_lr=0.1, warmup_lr=0.0, warmup_steps=4, cosine_steps=14)
    lrs = [s.lr_at(i) for i in range(20)]
    assert lrs[0] == 0.0 and lrs[2] == pytest.approx(0.5) and lrs[4] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[4:14], lrs[5:15]))
    assert lrs[14:] == [0.1] * 6  # cool-down
    assert opt.param_groups[0]["lr"] == 0.0
    s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    s2 = CosineSchedule(opt, base_lr=1.0, min_lr=0.1, warmup_lr=0.0, warmup_steps=4, cosine_steps=14)
    s2.load_state_dict(s.state_dict())
    assert s2.lr == s.lr


# ---------------------------------------------------------------------------------------------- optimisers
def test_lamb_trust_ratio_and_groups():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    groups = param_groups(model, 0.05, exclude_1d=True)
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0
    opt = Lamb(groups, lr=0.1)
    w0 = model[0].weight.detach().clone()
    model(torch.randn(5, 4)).pow(2).sum().backward()
    opt.step()
    step = (model[0].weight - w0).norm()
    # trust-clipped: ||step|| <= lr * ||w||
    assert 0 < step <= 0.1 * w0.norm() + 1e-6


# -------------------------------------------------------------------------------------------------- losses
def test_tet_loss_formula():
    torch.manual_seed(0)
    out = torch.randn(3, 5, 4)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 0]), 4).float()
    lam = 0.2
    ref = (1 - lam) * sum(torch.nn.functional.cross_entropy(o, y.argmax(-1)) for o in out) / 3 + lam * (
        (out - 1.0) ** 2
    ).mean()
    assert torch.allclose(tet_loss(out, y, lam=lam, means=1.0), ref)
    assert torch.allclose(soft_cross_entropy(out[0], y), torch.nn.functional.cross_entropy(out[0], y.argmax(-1)))


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixup_targets_and_determinism(kind):
    x = torch.randn(6, 1, 8, 8)
    y = torch.arange(6) % 3

    def make(seed):
        return Mixup(mixup_alpha=1.0 if kind == "mixup" else 0.0, cutmix_alpha=1.0 if kind == "cutmix" else 0.0,
                     prob=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=3,
                     generator=torch.Generator().manual_seed(seed))

    xa, ta = make(1)(x, y)
    xb, tb = make(1)(x, y)
    assert torch.equal(xa, xb) and torch.equal(ta, tb)
    assert torch.allclose(ta.sum(-1), torch.ones(6))
    assert not torch.equal(xa, x)
    # event layout: batch on dim 1
    xe, te = make(2)(torch.randn(2, 6, 2, 8, 8), y, batch_dim=1)
    assert xe.shape == (2, 6, 2, 8, 8) and te.shape == (6, 3)


def test_ema_update():
    model = nn.Linear(2, 2)
    ema = ModelEMA(model, 0.5)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, w0 + 1.0)


def test_cpu_sync_batchnorm_single_process_equals_batchnorm():
    bn = nn.BatchNorm2d(3)
    sbn = CPUSyncBatchNorm(3)
    x = torch.randn(4, 3, 2, 2)
    assert torch.allclose(bn(x), sbn(x))


def test_sampler_position_and_sharding():
    ds = _data(20)
    full = list(ResumableSampler(ds, seed=5))
    s = ResumableSampler(ds, seed=5)
    s.set_position(0, 2, 4)
    assert list(s) == full[8:]
    r0 = list(ResumableSampler(ds, num_replicas=2, rank=0, seed=5))
    r1 = list(ResumableSampler(ds, num_replicas=2, rank=1, seed=5))
    # first global batch of 8 == first local batches of 4 of both ranks
    assert sorted(full[:8]) == sorted(r0[:4] + r1[:4])


# -------------------------------------------------------------------------------------------- checkpoints
def _ckpt_files():
    return {"model": {"w": torch.arange(6.0).view(2, 3)}, "state": {"rng": torch.get_rng_state()}}


def test_checkpoint_roundtrip_and_corruption(tmp_path):
    path = save_checkpoint(tmp_path / "step-00000001", _ckpt_files(), {"epoch": 1})
    files, meta = load_checkpoint(path)
    assert torch.equal(files["model"]["w"], torch.arange(6.0).view(2, 3)) and meta["epoch"] == 1
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-7])  # truncate
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    (path / "state.json").write_text('{"epoch": ')
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(path)


def test_manager_keeps_last_and_best_and_falls_back(tmp_path, caplog):
    mgr = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        mgr.save(step, _ckpt_files(), {"step": step}, best=step == 2)
    assert [p.name for p in mgr.step_dirs()] == ["step-00000002", "step-00000003"]
    assert load_checkpoint(tmp_path / "checkpoints" / "best")[1]["step"] == 2
    newest = mgr.step_dirs()[-1] / "model.safetensors"
    newest.write_bytes(b"garbage")
    path, _, meta = mgr.load_latest()
    assert meta["step"] == 2 and "unusable" in caplog.text
    (mgr.step_dirs()[0] / "state.json").unlink()
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        mgr.load_latest()


# ------------------------------------------------------------------------------------------------- recipes
def test_recipes_load_and_override():
    assert "digits" in list_recipes()
    for name in list_recipes():
        TrainConfig.from_dict(load_recipe(name))  # every recipe is a valid config
    cfg = resolve_config("spikformer_cifar10", {"epochs": 3, "lr": None, "model_args": {"depth": 1}})
    assert cfg.epochs == 3 and cfg.lr == 5e-4 and cfg.model_args["depth"] == 1 and cfg.recipe == "spikformer_cifar10"
    with pytest.raises(ValueError, match="unknown"):
        resolve_config(None, {"epochz": 3})


def test_every_registered_paper_variant_has_a_recipe():
    from spiking_transformers.models import list_models

    missing = [m for m in list_models(task="classification") if not m.startswith("test_") and not recipes_for_model(m)]
    assert not missing, f"variants without a recipe: {missing}"


# ------------------------------------------------------------------------------------------------- trainer
def test_trainer_learns_and_writes_records(tmp_path):
    cfg = _config(epochs=3, ema_decay=0.9, save_every_steps=4)
    metrics = _trainer(tmp_path, cfg).fit()
    assert metrics["test_top1"] > 40 and 0 < metrics["firing_rate"] < 1
    for f in ("config.json", "metrics.csv", "metrics.json", "model.safetensors", "model_ema.safetensors"):
        assert (tmp_path / f).is_file(), f
    assert TrainConfig.from_json(tmp_path / "config.json") == cfg
    assert len((tmp_path / "metrics.csv").read_text().strip().splitlines()) == 1 + 3
    assert (tmp_path / "checkpoints" / "best" / "state.json").is_file()


def test_in_process_resume_is_exact(tmp_path):
    """Interrupt after a mid-epoch checkpoint (with later, lost steps), resume, compare with an uninterrupted run."""
    cfg = _config(epochs=2, save_every_steps=2, mixup=0.8, cutmix=1.0, label_smoothing=0.1, ema_decay=0.8,
                  grad_accum=2, batch_size=4)
    ref = _trainer(tmp_path / "ref", cfg)
    ref.fit()

    class Crash(Exception):
        pass

    def crash(tr):
        if tr.global_step == 9:  # epoch 2 (6 steps per epoch), last checkpoint at step 8
            raise Crash

    with pytest.raises(Crash):
        _trainer(tmp_path / "run", cfg, callbacks=[crash]).fit()
    resumed = _trainer(tmp_path / "run", cfg)
    resumed.fit(resume=True)
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    for k, v in ref.ema.state_dict().items():
        assert torch.equal(v, resumed.ema.state_dict()[k]), k
    assert ref.log.history[-1]["train_loss"] == resumed.log.history[-1]["train_loss"]


def test_tet_amp_and_distillation_hook(tmp_path):
    calls = []

    def hook(model, inputs, outputs, targets, loss):
        calls.append(outputs.shape)
        return loss + 0.0 * outputs.sum()

    cfg = _config(epochs=1, tet=True, amp="bf16", clip_grad=1.0, opt="sgd", lr=0.05)
    metrics = _trainer(None, cfg, distill=hook).fit()
    assert calls and calls[0] == (2, 8, 4)  # per-step logits [T, B, K]
    assert math.isfinite(metrics["test_loss"])
