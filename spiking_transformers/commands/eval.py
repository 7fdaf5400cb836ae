"""``spiking-transformers eval RUN_DIR_OR_CHECKPOINT``: top-1 / top-5 accuracy and firing rate of a trained model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "eval"
HELP = "evaluate a run folder, checkpoint folder or weights file: top-1/top-5 accuracy and mean firing rate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT",
                   help="run folder of `train`, a checkpoint folder (RUN/checkpoints/best), or a .safetensors file")
    p.add_argument("--data", help="data set (default: the run's)")
    p.add_argument("--data-dir", help="folder with the data set's files (default: the run's)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights")
    p.add_argument("--per-class", action="store_true", help="print the accuracy of every class")
    p.add_argument("--confusion", metavar="PNG", help="write the confusion matrix as a PNG (needs matplotlib)")
    p.add_argument("--layers", action="store_true", help="print the firing rate of every neuron module")
    p.add_argument("--json", dest="as_json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default min(2, cpu count))")
    p.add_argument("--device", default="cpu")


def plot_confusion(conf: list[list[int]], classes: list[str], path: str | Path) -> Path | None:
    """Row-normalised confusion matrix as a PNG; ``None`` (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no confusion-matrix plot (pip install matplotlib)")
        return None
    import numpy as np

    m = np.asarray(conf, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), classes, rotation=90)
        ax.set_yticks(range(k), classes)
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ..data import time_major_collate
    from ..training.run import build_datasets, load_run
    from ..runtime import tune_cpu_allocator
    from ..training.trainer import configure_threads, evaluate

    tune_cpu_allocator()  # keep large freed blocks for reuse: ~20 % faster steps (runtime.py)
    configure_threads(args.threads)
    config, model, weights = load_run(args.path, ema=args.ema)
    changes = {k: v for k, v in (("data", args.data), ("data_dir", args.data_dir)) if v is not None}
    config = config.replace(**changes)
    if args.split == "train":
        # evaluate the training images as they are: no random augmentation policy
        dataset, _ = build_datasets(config.replace(augment={}), train=True, test=False)
    else:
        _, dataset = build_datasets(config, train=False, test=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, collate_fn=time_major_collate)
    device = torch.device(args.device)
    want_conf = bool(args.per_class or args.confusion)
    res = evaluate(model.to(device), loader, device=device, num_classes=model.num_classes, confusion=want_conf)
    print(f"{config.model} ({weights}) on {config.data}/{args.split}, {res['n']} samples, T={model.T}: "
          f"top-1 {res['top1']:.2f}%, top-5 {res['top5']:.2f}%, mean firing rate {res['firing_rate']:.4f}")
    classes = [str(c) for c in getattr(dataset, "classes", None) or range(model.num_classes)]
    if want_conf:
        conf = res["confusion"]
        res["per_class_top1"] = {
            classes[i]: 100.0 * row[i] / max(sum(row), 1) for i, row in enumerate(conf) if i < len(classes)
        }
    if args.per_class:
        for name, acc in res["per_class_top1"].items():
            print(f"  {name:>16}: {acc:6.2f}%")
    if args.layers:
        for name, rate in res["layer_rates"].items():
            print(f"  {name:<48} {rate:.4f}")
    if args.confusion:
        out = plot_confusion(res["confusion"], classes, args.confusion)
        if out is not None:
            print(f"confusion matrix: {out}")
    if args.as_json:
        text = json.dumps({"model": config.model, "data": config.data, "split": args.split, "weights": str(weights),
                           **res}, indent=1)
        if args.as_json == "-":
            print(text)
        else:
            Path(args.as_json).write_text(text + "\n")
    return 0
