"""The speech training path (``spiking-transformers train --task speech``): spoken-digit classification with a
speech model (DyTr-SNN), a confusion matrix, and greedy CTC decoding with word error rate.

Kept apart from :class:`~spiking_transformers.training.trainer.Trainer`, whose data pipeline is built around images
(augmentation, mixup); this loop is the few lines the task needs: AdamW, a per-step cosine schedule, cross-entropy on
the time-averaged logits, test accuracy after every epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..analysis.plots import plot_confusion_counts as plot_confusion  # kept importable here

__all__ = ["train_speech", "confusion_matrix", "plot_confusion", "edit_distance", "word_error_rate",
           "ctc_greedy_decode", "run_speech", "tidigits_check"]

log = logging.getLogger(__name__)


def confusion_matrix(targets: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """``[K, K]`` counts: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return cm


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance between two token sequences (substitutions, insertions, deletions each cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_error_rate(refs: Sequence[Sequence[Any]], hyps: Sequence[Sequence[Any]]) -> float:
    """Corpus WER: total edit distance over total reference words (the definition jiwer uses)."""
    if len(refs) != len(hyps):
        raise ValueError(f"word_error_rate: {len(refs)} references but {len(hyps)} hypotheses")
    words = sum(len(r) for r in refs)
    if words == 0:
        raise ValueError("word_error_rate: the references hold no words")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / words


def ctc_greedy_decode(logits: Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path CTC decoding: arg-max per frame, merge repeats, drop blanks.

    Args:
        logits: ``[N, B, K]`` per-frame scores (frame-major, as ``nn.CTCLoss`` takes them).
    Returns:
        ``B`` label sequences (labels as indices of ``K``, the blank removed).
    """
    if logits.dim() != 3:
        raise ValueError(f"ctc_greedy_decode takes [frames, B, classes] logits, got shape {tuple(logits.shape)}")
    best = logits.argmax(-1).transpose(0, 1).tolist()  # [B, N]
    out = []
    for path in best:
        seq, last = [], None
        for k in path:
            if k != last and k != blank:
                seq.append(k)
            last = k
        out.append(seq)
    return out


@torch.no_grad()
def _evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, list[int], list[int]]:
    model.eval()
    ys, ps = [], []
    for x, y in loader:
        ps += model(x).argmax(-1).tolist()
        ys += y.tolist()
    return 100.0 * float(np.mean(np.asarray(ys) == np.asarray(ps))), ys, ps


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_speech(
    model: str = "dytr_snn_2_128_digits",
    *,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    out: str | Path | None = None,
    model_args: dict[str, Any] | None = None,
    data_args: dict[str, Any] | None = None,
    T: int | None = None,
    ctc_epochs: int = 0,
    max_train: int | None = None,
    tidigits_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on spoken digits; return (and write to ``out/metrics.json``) the metrics.

    Args:
        model: a registered speech model name.
        epochs: classification epochs (cosine schedule with a one-epoch warm-up).
        ctc_epochs: after classification, epochs of CTC fine-tuning on connected-digit sequences made by
            concatenating test-disjoint training utterances (0: off); greedy decoding, WER reported.
        max_train: use only the first ``max_train`` training utterances (quick runs and tests).
        tidigits_dir: a pocketsphinx-testdata ``tidigits`` folder; with ``ctc_epochs > 0`` the CTC model then also
            decodes its real connected-digit utterances (:func:`tidigits_check`, never trained on). The check needs
            per-utterance normalisation, so the data default becomes ``normalize="utterance"``.
        out: run folder for ``metrics.json``, ``confusion.png`` and ``model.pt`` (``None``: nothing written).

    Returns:
        ``test_top1`` (percent), ``best_top1``, ``confusion`` (list of rows), ``train_time_s``, ``firing_rate`` (mean
        over all neurons on a test batch), and ``ctc_wer`` when ``ctc_epochs > 0`` (plus ``tidigits_wer`` and the
        other ``tidigits_*`` entries with ``tidigits_dir``).
    """
    from ..analysis import analyze
    from ..data.speech import DIGIT_WORDS, SpokenDigits
    from ..models import create_model

    torch.manual_seed(seed)
    data_args = dict(data_args or {})
    check_tidigits = tidigits_dir is not None and ctc_epochs > 0
    if check_tidigits:
        data_args.setdefault("normalize", "utterance")
        if data_args["normalize"] != "utterance":
            raise ValueError("the TIDIGITS check needs normalize=utterance (per-utterance CMVN meets the Sphinx "
                             f"features), got normalize={data_args['normalize']!r}; or --set tidigits_dir=none")
    train_set, test_set = SpokenDigits("train", **data_args), SpokenDigits("test", **data_args)
    if max_train is not None:
        train_set.data, train_set.labels = train_set.data[:max_train], train_set.labels[:max_train]
        train_set.lengths = train_set.lengths[:max_train]
    frames, n_feats = train_set.data.shape[-2:]
    kwargs = {"num_classes": 10, "img_size": (int(frames), int(n_feats)), "in_chans": 1, **(model_args or {})}
    if T is not None:
        kwargs["T"] = T
    net = create_model(model, **kwargs)
    g = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=256)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, len(train_loader)))
    t0, best, history = time.time(), 0.0, []
    for epoch in range(epochs):
        net.train()
        correct = seen = 0
        for x, y in train_loader:
            logits = net(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.argmax(-1) == y).sum())
            seen += len(y)
        acc, ys, ps = _evaluate(net, test_loader)
        best = max(best, acc)
        history.append({"epoch": epoch + 1, "train_top1": 100.0 * correct / max(seen, 1), "test_top1": acc,
                        "loss": loss.item()})
        msg = (f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, train {history[-1]['train_top1']:.1f}%, "
               f"test {acc:.1f}% ({time.time() - t0:.0f} s)")
        if progress:
            print(msg, flush=True)
        else:
            log.info(msg)
    train_time = time.time() - t0
    if not history:
        acc, ys, ps = _evaluate(net, test_loader)
    cm = confusion_matrix(ys, ps, 10)
    report = analyze(net.eval(), [test_set.data[:32]])
    metrics: dict[str, Any] = {
        "model": model, "test_top1": acc, "best_top1": best, "epochs": epochs, "train_time_s": train_time,
        "n_train": len(train_set), "n_test": len(test_set), "confusion": cm.tolist(), "history": history,
        "firing_rate": float(report.totals["firing_rate"]), "energy_pj": float(report.totals["energy_pj"]),
        "normalize": data_args.get("normalize", "train"),
    }
    if ctc_epochs > 0:
        metrics.update(_ctc_finetune(net, train_set, test_set, ctc_epochs, batch_size, lr, seed, progress))
        if check_tidigits:
            metrics.update(tidigits_check(net, tidigits_dir, train_set.labels.tolist()))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        torch.save({"model": model, "model_args": kwargs, "state_dict": net.state_dict()}, out / "model.pt")
        try:
            plot_confusion(cm, out / "confusion.png", DIGIT_WORDS,
                           f"{model}\nspoken digits: test {acc:.1f}% of {len(test_set)} utterances")
        except ImportError as exc:
            log.warning("no confusion.png: %s", exc)
    return metrics


def _ctc_finetune(net: nn.Module, train_set, test_set, epochs: int, batch_size: int, lr: float, seed: int,
                  progress: bool) -> dict[str, Any]:
    """CTC on connected digits: a fresh 11-way head (blank 0, digit d -> d + 1) on the per-frame outputs; the
    model's input length grows to the concatenated sequences' frames (the model takes any frame count its convs
    divide; we rebuild nothing, the head is per frame)."""
    from ..data.speech import digit_sequences

    frames = 2 * train_set.frames
    # as many sequences as training utterances (each holds 2-4 of them), capped for time
    x_tr, y_tr = digit_sequences(train_set, min(2000, len(train_set)), frames=frames, seed=seed)
    x_te, y_te = digit_sequences(test_set, min(300, len(test_set)), frames=frames, seed=seed + 1)
    net.img_size = (frames, net.img_size[1])  # the front end and blocks are length-agnostic
    net.head = nn.Linear(net.num_features, 11)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(x_tr), generator=g).split(batch_size):
            logp = net.forward_frames(x_tr[idx]).log_softmax(-1)  # [N', B, 11]
            targets = [torch.tensor(y_tr[i]) + 1 for i in idx.tolist()]
            loss = ctc(logp, torch.cat(targets), torch.full((len(idx),), logp.shape[0], dtype=torch.long),
                       torch.tensor([len(t) for t in targets]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress:
            print(f"ctc epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", flush=True)
    net.eval()
    with torch.no_grad():
        hyps = [[k - 1 for k in seq] for seq in ctc_greedy_decode(net.forward_frames(x_te))]
    return {"ctc_wer": word_error_rate(y_te, hyps), "ctc_epochs": epochs, "ctc_test_sequences": len(y_te),
            "ctc_examples": [{"ref": r, "hyp": h} for r, h in list(zip(y_te, hyps))[:5]]}


@torch.no_grad()
def tidigits_check(net: nn.Module, folder: str | Path, train_labels: Sequence[int], examples: int = 6,
                   ) -> dict[str, Any]:
    """Greedy CTC decoding of the real TIDIGITS utterances of a pocketsphinx-testdata folder by a CTC-fine-tuned
    speech model (head: blank 0, digit d -> d + 1, per-frame input of per-utterance CMVN features).

    The Sphinx features (100 frames/s) are resampled to FSDD's frame rate and normalised per utterance
    (:func:`~spiking_transformers.data.speech.tidigits_maps`); nothing is fitted to them. Two trivial baselines are
    reported with the model's corpus WER: the empty hypothesis (WER 1) and the one-word hypothesis "the most frequent
    training digit" for every utterance.

    Returns:
        ``tidigits_wer``, ``tidigits_utterances``, ``tidigits_words``, ``tidigits_baseline_empty_wer``,
        ``tidigits_baseline_most_frequent_wer``, ``tidigits_examples`` (ref/hyp digit lists with utterance ids).
    """
    from ..data.speech import read_tidigits, tidigits_maps

    ids, feats, refs = read_tidigits(folder)
    x, _ = tidigits_maps(feats, net.img_size[0])
    saved = net.img_size
    net.img_size = (x.shape[-2], x.shape[-1])  # the model is length-agnostic; its size check follows the input
    try:
        net.eval()
        hyps = [[k - 1 for k in seq] for seq in ctc_greedy_decode(net.forward_frames(x))]
    finally:
        net.img_size = saved
    top = int(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=10).argmax())
    return {
        "tidigits_wer": word_error_rate(refs, hyps),
        "tidigits_utterances": len(refs),
        "tidigits_words": sum(len(r) for r in refs),
        "tidigits_baseline_empty_wer": word_error_rate(refs, [[] for _ in refs]),
        "tidigits_baseline_most_frequent_wer": word_error_rate(refs, [[top] for _ in refs]),
        "tidigits_examples": [{"utt": u, "ref": r, "hyp": h} for u, r, h in list(zip(ids, refs, hyps))[:examples]],
    }


def run_speech(args: Any) -> int:
    """``spiking-transformers train --task speech``: the flags of ``train`` that apply (``--model``, ``--epochs``,
    ``--batch-size``, ``--lr``, ``--weight-decay``, ``--seed``, ``--T``, ``--out``, ``--threads``, ``--model-arg``,
    ``--data-arg``), ``--recipe`` (e.g. ``dytr_snn_digits``: its model, model_args, T, epochs, batch_size, lr,
    weight_decay and seed, as defaults), plus ``--set ctc_epochs=N``, ``--set max_train=N`` and
    ``--set tidigits_dir=PATH`` (default: Debian's ``/usr/share/pocketsphinx/test/data/tidigits`` when installed;
    ``none`` turns the TIDIGITS check off; it runs only with ``ctc_epochs > 0``)."""
    from .trainer import configure_threads

    if args.threads is not None:
        configure_threads(args.threads, 1)
    extra = dict(args.set or [])
    unknown = set(extra) - {"ctc_epochs", "max_train", "tidigits_dir"}
    if unknown:
        raise ValueError(f"--task speech takes --set ctc_epochs=N, max_train=N and tidigits_dir=PATH only, got "
                         f"{sorted(unknown)}")
    from ..data.speech import default_tidigits_dir

    tidigits = extra.get("tidigits_dir", default_tidigits_dir())
    if tidigits is not None and str(tidigits).lower() in ("", "none", "off", "false"):
        tidigits = None
    fields = ("epochs", "batch_size", "lr", "weight_decay", "seed", "T")
    opts: dict[str, Any] = {}
    model, model_args = args.model, dict(args.model_arg or [])
    if args.recipe:  # a recipe's values are defaults; flags override them
        from .config import resolve_config

        cfg = resolve_config(args.recipe, {})
        opts = {k: getattr(cfg, k) for k in fields if getattr(cfg, k, None) is not None}
        model, model_args = model or cfg.model, {**(cfg.model_args or {}), **model_args}
    model = model or "dytr_snn_2_128_digits"
    opts.update({k: getattr(args, k) for k in fields if getattr(args, k) is not None})
    out = args.out or str(Path("runs") / f"{model}-spoken-digits-{time.strftime('%Y%m%d-%H%M%S')}")
    m = train_speech(model, out=out, model_args=model_args or None,
                     data_args=dict(args.data_arg or []) or None, progress=args.progress is not False,
                     ctc_epochs=int(extra.get("ctc_epochs", 0)),
                     max_train=int(extra["max_train"]) if "max_train" in extra else None,
                     tidigits_dir=tidigits, **opts)
    line = (f"test accuracy {m['test_top1']:.2f}% (best {m['best_top1']:.2f}%), mean firing rate "
            f"{m['firing_rate']:.4f}; training time {m['train_time_s']:.0f} s; run folder {out}")
    if "ctc_wer" in m:
        line += f"; CTC greedy WER {100 * m['ctc_wer']:.1f}% on {m['ctc_test_sequences']} digit sequences"
    if "tidigits_wer" in m:
        line += (f"; TIDIGITS WER {100 * m['tidigits_wer']:.1f}% on {m['tidigits_utterances']} real utterances "
                 f"(baselines: empty 100%, most frequent digit {100 * m['tidigits_baseline_most_frequent_wer']:.1f}%)")
    print(line)
    return 0
