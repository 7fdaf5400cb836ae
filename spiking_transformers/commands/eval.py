"""``spiking-transformers eval PATH``: top-1 / top-5 accuracy and firing rate of a trained model.

PATH is anything :func:`spiking_transformers.loading.load_any_checkpoint` reads: a run folder of ``train`` (its data
set is the default), a checkpoint folder, a model folder of ``convert`` / ``save_pretrained`` or a weights file
(then ``--data`` names the data set). ``--recalibrate-bn N`` re-estimates BatchNorm's running statistics from N
training batches before evaluating (what a short run needs; see the README, "One epoch scores at chance").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..analysis.plots import plot_confusion  # drawn there with the other figures; kept importable here
from ._common import add_loading_arguments, load_from_args

NAME = "eval"
HELP = "evaluate a run folder, checkpoint folder or weights file: top-1/top-5 accuracy and mean firing rate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH",
                   help="run folder of `train`, checkpoint folder (RUN/checkpoints/best), model folder of `convert`, "
                        "or a weights file")
    add_loading_arguments(p)
    p.add_argument("--data", help="data set (default: the run's; required for model folders and weights files)")
    p.add_argument("--data-dir", help="folder with the data set's files (default: the run's)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights")
    p.add_argument("--per-class", action="store_true", help="print the accuracy of every class")
    p.add_argument("--confusion", metavar="PNG", help="write the confusion matrix as a PNG (needs matplotlib)")
    p.add_argument("--layers", action="store_true", help="print the firing rate of every neuron module")
    p.add_argument("--json", dest="as_json", metavar="PATH", help="also write the results as JSON ('-': stdout)")
    p.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                   help="first re-estimate BatchNorm running statistics from N training batches (0: off)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default min(2, cpu count))")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from ..data import time_major_collate
    from ..training.run import build_datasets
    from ..runtime import tune_cpu_allocator
    from ..training.trainer import configure_threads, evaluate

    tune_cpu_allocator()  # keep large freed blocks for reuse: ~20 % faster steps (runtime.py)
    configure_threads(args.threads)
    if args.recalibrate_bn < 0:
        raise ValueError(f"--recalibrate-bn must be >= 0 batches, got {args.recalibrate_bn}")
    loaded = load_from_args(args.path, args, ema=args.ema)
    model, weights = loaded.model, loaded.weights
    for note in loaded.notes:
        print(note)
    config = _data_config(loaded, args)
    _check_fits(model, config, loaded.name)
    if args.split == "train":
        # evaluate the training images as they are: no random augmentation policy
        dataset, _ = build_datasets(config.replace(augment={}), train=True, test=False)
    else:
        _, dataset = build_datasets(config, train=False, test=True)
    if args.recalibrate_bn:
        from ..training.bn_stats import recalibrate_bn

        calib, _ = build_datasets(config.replace(augment={}), train=True, test=False)
        calib_loader = DataLoader(calib, batch_size=args.batch_size, shuffle=True, collate_fn=time_major_collate,
                                  generator=torch.Generator().manual_seed(0))
        n = recalibrate_bn(model, calib_loader, batches=args.recalibrate_bn)
        print(f"BatchNorm running statistics re-estimated from {n} training samples")
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, collate_fn=time_major_collate)
    device = torch.device(args.device)
    want_conf = bool(args.per_class or args.confusion)
    res = evaluate(model.to(device), loader, device=device, num_classes=model.num_classes, confusion=want_conf)
    print(f"{loaded.name} ({weights}) on {config.data}/{args.split}, {res['n']} samples, T={model.T}: "
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
        text = json.dumps({"model": loaded.name, "data": config.data, "split": args.split, "weights": str(weights),
                           **res}, indent=1)
        if args.as_json == "-":
            print(text)
        else:
            Path(args.as_json).write_text(text + "\n")
    return 0


def _data_config(loaded: Any, args: argparse.Namespace) -> Any:
    """The configuration whose data set is evaluated: the run's (flags override), else one from ``--data``."""
    from ..training.config import TrainConfig

    changes = {k: v for k, v in (("data", args.data), ("data_dir", args.data_dir)) if v is not None}
    if loaded.train_config is not None:
        return loaded.train_config.replace(**changes)
    data = args.data or loaded.data
    if data is None:
        raise ValueError(f"{args.path}: this {loaded.kind_text} records no data set (a run folder, or a model folder "
                         "converted from one, does): pass --data NAME (and --data-dir DIR for your own files)")
    model = loaded.model
    data_args: dict[str, Any] = {}
    size = getattr(model, "img_size", None)
    if isinstance(size, int):
        data_args["img_size"] = size
    return TrainConfig(model=str(loaded.spec.get("model") or "spikformer_4_384_cifar10"), data=data,
                       data_dir=args.data_dir, data_args=data_args, T=int(model.T))


def _check_fits(model: Any, config: Any, name: str) -> None:
    """Refuse a data set whose channels or classes the model cannot take, before reading it."""
    from ..data import dataset_info

    try:
        info = dataset_info(config.data)
    except KeyError as exc:
        raise ValueError(str(exc).strip("'\"")) from None
    chans = model.expected_in_chans() if hasattr(model, "expected_in_chans") else None
    if chans is not None and chans != info.in_chans:
        raise ValueError(f"{name} takes {chans}-channel input but data set {info.name!r} has {info.in_chans} "
                         f"channel(s); evaluate it on a {chans}-channel data set")
    if info.num_classes and info.num_classes > int(model.num_classes):
        raise ValueError(f"{name} has {model.num_classes} classes but data set {info.name!r} has "
                         f"{info.num_classes}; evaluate it on the data set it was trained on")
