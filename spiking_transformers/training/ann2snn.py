"""ANN-to-SNN conversion pipeline of MST (Masked Spiking Transformer), small enough for the bundled digits.

The steps of the paper, in order:

1. train the QCFS ANN (an MST in ``mode="ann"``: every activation a quantisation-clip-floor-shift function with a
   learnable clip);
2. convert it to the SNN (:func:`~spiking_transformers.models.mst.convert_to_snn`: each QCFS site becomes a soft-reset
   IF neuron whose threshold is the clip);
3. evaluate the SNN's accuracy against the simulation length: the official ``snn_validate`` scores the running sum of
   the per-step logits after every step, so one run at the longest length gives every shorter one (the network is
   causal in time: step ``t`` depends only on steps ``<= t``);
4. evaluate accuracy and measured synaptic operations against the Random Spike Masking ratio: the same converted
   network with Q, K and the attention-score spikes dropped at rate ``r``. The operations come from
   :func:`spiking_transformers.analysis.analyze`, which counts each accumulate where a spike is consumed.

Our reading: the paper trains a separate ANN at each masking ratio; by default the sweep masks the one trained model
at inference (``retrain_masked=True`` trains one ANN per ratio, with the masks active in training, as the paper does).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..analysis.plots import plot_ann2snn  # the figure lives with the others; kept importable here

__all__ = ["Ann2SnnConfig", "run_ann2snn", "train_qcfs_ann", "snn_accuracy_per_step", "masking_sweep",
           "format_tables", "plot_ann2snn"]


@dataclass
class Ann2SnnConfig:
    """Settings of :func:`run_ann2snn` (defaults: a 2-stage Swin MST on 16x16 digits; measured on one core: about
    75 CPU-seconds of training and 200 of evaluation, most of it the masking sweep at T=32).

    Attributes:
        img_size, patch_size, embed_dim, depths, num_heads, window_size: the MST architecture.
        levels: QCFS quantisation levels ``L`` (official 16; fewer levels convert better at short simulations).
        threshold: initial clip ``up`` of every site (official 2.0).
        epochs, lr, weight_decay, batch_size: ANN training (AdamW, cosine schedule).
        sim_lens: simulation lengths whose accuracy is reported.
        mask_ratios: RSM ratios of the sweep; mask_sim_len: the simulation length used for it.
        sop_samples: test images over which the synaptic operations are measured.
        retrain_masked: train one ANN per masking ratio (masks active in training) instead of masking one model.
        train_limit, test_limit: use only the first samples (smoke tests); ``None`` uses all.
        seed: seed of initialisation, data order and masks.
    """

    img_size: int = 16
    patch_size: int = 2
    embed_dim: int = 32
    depths: tuple[int, ...] = (2, 2)
    num_heads: tuple[int, ...] = (2, 4)
    window_size: int = 4
    levels: int = 8
    threshold: float = 2.0
    epochs: int = 10
    lr: float = 3e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    sim_lens: tuple[int, ...] = (4, 8, 16, 32)
    mask_ratios: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    mask_sim_len: int = 32
    sop_samples: int = 32
    retrain_masked: bool = False
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sim_lens or min(self.sim_lens) < 1:
            raise ValueError(f"sim_lens must be positive integers, got {self.sim_lens}")
        if any(not 0.0 <= r < 1.0 for r in self.mask_ratios):
            raise ValueError(f"mask_ratios must lie in [0, 1), got {self.mask_ratios}")
        if self.mask_sim_len < 1 or self.epochs < 0 or self.sop_samples < 1:
            raise ValueError("mask_sim_len and sop_samples must be >= 1 and epochs >= 0")


def _digits(cfg: Ann2SnnConfig) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    from ..data import get_dataset

    out = []
    for split, limit in (("train", cfg.train_limit), ("test", cfg.test_limit)):
        ds = get_dataset("digits", split=split, img_size=cfg.img_size)
        n = len(ds) if limit is None else min(limit, len(ds))
        xs, ys = zip(*(ds[i] for i in range(n)))
        out.append((torch.stack(xs).float(), torch.as_tensor(ys, dtype=torch.long)))
    return out[0], out[1]


def _build(cfg: Ann2SnnConfig, masking_ratio: float) -> nn.Module:
    from ..models.mst import MaskedSpikingTransformer

    return MaskedSpikingTransformer(
        img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=1, num_classes=10, embed_dim=cfg.embed_dim,
        depths=cfg.depths, num_heads=cfg.num_heads, window_size=cfg.window_size, drop_path_rate=0.0,
        masking_ratio=masking_ratio, levels=cfg.levels, threshold=cfg.threshold, mode="ann",
        T=max(max(cfg.sim_lens), cfg.mask_sim_len),
    )


def _batches(x: Tensor, y: Tensor, size: int, shuffle: bool, g: torch.Generator | None = None):
    order = torch.randperm(len(x), generator=g) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), size):
        idx = order[i:i + size]
        yield x[idx], y[idx]


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    model.eval()
    correct = sum(int((model(xb).argmax(-1) == yb).sum()) for xb, yb in _batches(x, y, batch_size, False))
    return correct / max(1, len(x))


def train_qcfs_ann(model: nn.Module, x: Tensor, y: Tensor, cfg: Ann2SnnConfig,
                   progress: Callable[[str], None] | None = None) -> list[float]:
    """Train an MST in ANN (QCFS) mode with AdamW and a cosine schedule; returns the mean loss of each epoch.

    Args:
        model: MST with ``mode == "ann"``.
        x: images ``[N, C, H, W]``; y: labels ``[N]``.
    """
    if getattr(model, "mode", None) != "ann":
        raise ValueError("train_qcfs_ann needs an MST in mode='ann' (the QCFS network); convert after training")
    g = torch.Generator().manual_seed(cfg.seed)
    # no weight decay on the clips, norms and biases (1-D parameters), as the official regular_set separates them
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    steps = max(1, cfg.epochs * math.ceil(len(x) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses = []
    for epoch in range(cfg.epochs):
        model.train()
        total, n = 0.0, 0
        for xb, yb in _batches(x, y, cfg.batch_size, True, g):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
            n += len(xb)
        losses.append(total / max(1, n))
        if progress:
            progress(f"epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1]:.4f}")
    return losses


@torch.no_grad()
def snn_accuracy_per_step(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 128) -> list[float]:
    """Accuracy of the running sum of per-step logits after each step ``1..T`` (the official ``snn_validate``).

    Args:
        model: a converted MST (``mode == "snn"``); its ``T`` is the longest simulation.
    Returns:
        ``T`` accuracies; entry ``t - 1`` is the accuracy at simulation length ``t``.
    """
    model.eval()
    correct = None
    for xb, yb in _batches(x, y, batch_size, False):
        steps = model.forward_timesteps(xb)  # [T, B, K]
        hits = (steps.cumsum(0).argmax(-1) == yb).sum(1)  # [T]
        correct = hits if correct is None else correct + hits
    return [float(c) / max(1, len(x)) for c in correct] if correct is not None else []


def masking_sweep(build_snn: Callable[[float], nn.Module], x: Tensor, y: Tensor, ratios: tuple[float, ...],
                  sop_samples: int, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> list[dict[str, float]]:
    """Accuracy and measured synaptic operations of the converted SNN at each masking ratio.

    Args:
        build_snn: ratio -> converted MST with that masking ratio.
        x, y: test images and labels; the operations are measured on the first ``sop_samples``.
    Returns:
        one row per ratio: ``mask_ratio``, ``accuracy``, ``acs``, ``macs``, ``energy_pj`` (per sample),
        ``firing_rate`` and ``energy_saving`` (relative to the first ratio).
    """
    from ..analysis import analyze

    rows: list[dict[str, float]] = []
    for r in ratios:
        torch.manual_seed(seed)
        model = build_snn(r)
        acc = snn_accuracy_per_step(model, x, y)[-1]
        torch.manual_seed(seed)
        report = analyze(model, list(torch.split(x[:sop_samples], 32)))
        t = report.totals
        rows.append(dict(mask_ratio=float(r), accuracy=acc, acs=t["acs"], macs=t["macs"], energy_pj=t["energy_pj"],
                         firing_rate=t["firing_rate"]))
        if progress:
            progress(f"mask {r:.2f}: accuracy {acc:.4f}, {t['acs']:.4g} ACs and {t['macs']:.4g} MACs per sample")
    base = rows[0]["energy_pj"] if rows else 0.0
    for row in rows:
        row["energy_saving"] = 1.0 - row["energy_pj"] / base if base else 0.0
        row["acs_saving"] = 1.0 - row["acs"] / rows[0]["acs"] if rows[0]["acs"] else 0.0
    return rows


def run_ann2snn(cfg: Ann2SnnConfig | None = None, out_dir: str | Path | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the QCFS ANN on the digits, convert it, and measure accuracy against simulation length and masking.

    Args:
        cfg: settings (default :class:`Ann2SnnConfig`).
        out_dir: where to write ``ann2snn.json``, ``ann2snn.png`` and the trained ANN's state dict ``qcfs_ann.pt``
            (nothing written if ``None``).
        progress: called with one line per step (e.g. ``print``).
    Returns:
        ``config``, ``ann_accuracy``, ``snn_accuracy`` (``{str(T): acc}``), ``snn_accuracy_per_step``,
        ``masking`` (rows of :func:`masking_sweep`), ``train_seconds`` / ``eval_seconds`` (wall) and
        ``train_cpu_seconds`` / ``eval_cpu_seconds`` (CPU time of this process).
    """
    from ..models.mst import convert_to_snn

    cfg = cfg or Ann2SnnConfig()
    say = progress or (lambda s: None)
    torch.manual_seed(cfg.seed)
    (xtr, ytr), (xte, yte) = _digits(cfg)
    say(f"digits {cfg.img_size}x{cfg.img_size}: {len(xtr)} train / {len(xte)} test images")
    t0, c0 = time.perf_counter(), time.process_time()
    ann = _build(cfg, 0.0)
    losses = train_qcfs_ann(ann, xtr, ytr, cfg, say)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    ann_acc = _accuracy(ann, xte, yte)
    say(f"QCFS ANN (L={cfg.levels}): test accuracy {ann_acc:.4f} ({train_s:.0f} s)")

    t1, c1 = time.perf_counter(), time.process_time()
    t_max = max(cfg.sim_lens)
    snn = convert_to_snn(_copy(ann, cfg), t_max)
    per_step = snn_accuracy_per_step(snn, xte, yte)
    snn_acc = {str(T): per_step[T - 1] for T in sorted(cfg.sim_lens)}
    say("SNN accuracy: " + ", ".join(f"T={k}: {v:.4f}" for k, v in snn_acc.items()))

    trained = {0.0: ann}

    def build_snn(r: float) -> nn.Module:
        if cfg.retrain_masked and r not in trained:
            torch.manual_seed(cfg.seed)
            m = _build(cfg, r)
            train_qcfs_ann(m, xtr, ytr, cfg, say)
            trained[r] = m
        base = trained[r] if cfg.retrain_masked else ann
        model = convert_to_snn(_copy(base, cfg), cfg.mask_sim_len)
        model.set_masking_ratio(r)
        return model

    masking = masking_sweep(build_snn, xte, yte, tuple(cfg.mask_ratios), cfg.sop_samples, cfg.seed, say)
    eval_s, eval_cpu = time.perf_counter() - t1, time.process_time() - c1
    result: dict[str, Any] = dict(
        config=_jsonable(asdict(cfg)),
        model=dict(family="mst", params_ann=sum(p.numel() for p in ann.parameters())),
        ann_accuracy=ann_acc,
        train_losses=losses,
        snn_accuracy=snn_acc,
        snn_accuracy_per_step=per_step,
        masking=masking,
        train_seconds=train_s,
        eval_seconds=eval_s,
        train_cpu_seconds=train_cpu,
        eval_cpu_seconds=eval_cpu,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ann2snn.json").write_text(json.dumps(result, indent=1))
        torch.save(ann.state_dict(), out / "qcfs_ann.pt")  # the trained ANN (official key names), to re-convert
        plot_ann2snn(result, out / "ann2snn.png")
    return result


def _copy(model: nn.Module, cfg: Ann2SnnConfig) -> nn.Module:
    clone = _build(cfg, getattr(model, "masking_ratio", 0.0))
    clone.load_state_dict(model.state_dict())
    return clone


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def format_tables(result: dict[str, Any]) -> str:
    """The two result tables as text: accuracy against simulation length, and against the masking ratio."""
    lines = [f"QCFS ANN (L={result['config']['levels']}) test accuracy: {100 * result['ann_accuracy']:.2f} %"
             f"  (training {result['train_cpu_seconds']:.0f} CPU-s, evaluation {result['eval_cpu_seconds']:.0f} CPU-s)",
             "",
             f"{'sim_len':>8} {'SNN acc %':>10}"]
    lines += [f"{T:>8} {100 * acc:>10.2f}" for T, acc in result["snn_accuracy"].items()]
    T = result["config"]["mask_sim_len"]
    lines += ["", f"masking sweep at sim_len {T} (operations per sample; saving vs. mask 0)",
              f"{'mask %':>7} {'acc %':>7} {'ACs':>12} {'MACs':>12} {'energy uJ':>10} {'AC saving':>10}"]
    for r in result["masking"]:
        lines.append(f"{100 * r['mask_ratio']:>7.0f} {100 * r['accuracy']:>7.2f} {r['acs']:>12.4g} {r['macs']:>12.4g} "
                     f"{r['energy_pj'] / 1e6:>10.4f} {100 * r['acs_saving']:>9.1f}%")
    return "\n".join(lines)
