"""``spiking-transformers energy``: synaptic operations, firing rates, energy and the spike-driven audit.

    spiking-transformers energy MODEL [--checkpoint PATH] [--data NAME] [--batches N] [--json FILE] [--plot FILE]
    spiking-transformers energy RUN_DIR | MODEL_DIR | WEIGHTS_FILE [...]
    spiking-transformers energy --compare MODEL MODEL ... [--checkpoint PATH ...]

MODEL is a registered name (``--model-arg`` overrides its constructor, as ``train`` does) or a path that
:func:`spiking_transformers.loading.load_any_checkpoint` reads: a run folder of ``train`` (whose data set is then
the default ``--data``), a model folder of ``convert``, a checkpoint folder or a weights file.

BatchNorm: a model analysed without trained weights normalises with batch statistics (``--bn-stats auto``): the
running statistics of an initialised model (mean 0, variance 1) silence whole families, e.g. SDT at firing rate 0.
Trained weights use their running statistics, as in deployment. ``--bn-stats batch|running`` forces either.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterator

NAME = "energy"
HELP = "count synaptic operations (AC/MAC), firing rates and energy, and audit whether a model is spike-driven"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="registered model name(s), or run / model folders or weights files")
    p.add_argument("--compare", action="store_true", help="put several models side by side in one table")
    p.add_argument("--checkpoint", action="append", default=None, metavar="PATH",
                   help="weights (ours or the official format); with --compare, once per model in order")
    p.add_argument("--data", metavar="NAME", help="data set (see the data module); default: random inputs")
    p.add_argument("--data-dir", metavar="DIR", help="folder of the data set's files, where it needs one")
    p.add_argument("--split", default="test", choices=("train", "test"), help="data split (default: test)")
    p.add_argument("--batches", type=int, default=1, metavar="N", help="batches to analyse (default: 1)")
    p.add_argument("--batch-size", type=int, default=2, metavar="B", help="samples per batch (default: 2)")
    p.add_argument("--tiny", action="store_true", help="build the variant's small test configuration")
    p.add_argument("--T", type=int, default=None, help="time steps (default: the variant's)")
    p.add_argument("--img-size", type=int, default=None, help="input size (default: the variant's)")
    p.add_argument("--bn-stats", choices=("auto", "batch", "running"), default="auto",
                   help="BatchNorm statistics: batch for a model without trained weights, running otherwise (auto, "
                        "the default), or forced")
    p.add_argument("--bn-batch-stats", action="store_true", help="same as --bn-stats batch")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor override of a registered MODEL, repeatable (e.g. embed_dim=64, as in train)")
    p.add_argument("--binary-expansion", action="store_true",
                   help="analyse multi-level models in their binary form (each integer k as k spikes over D steps)")
    p.add_argument("--memory", action="store_true", help="also estimate memory-access energy (reported apart)")
    p.add_argument("--all-neurons", action="store_true", help="print the firing rate of every neuron module")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a PNG figure")


class _Subject:
    """One model to analyse: the model, its display name, where its weights came from, and its input."""

    def __init__(self, model: Any, name: str, trained: bool, notes: list[str], data: str | None = None,
                 data_dir: str | None = None) -> None:
        self.model, self.name, self.trained, self.notes = model, name, trained, notes
        self.data, self.data_dir = data, data_dir

    def input_shape(self) -> tuple[str, int, int | tuple[int, int]]:
        """``(input_kind, channels, image size)`` from the model itself."""
        m = self.model
        chans = m.expected_in_chans() if hasattr(m, "expected_in_chans") else None
        size = getattr(m, "img_size", None)
        return getattr(m, "input_kind", "image"), int(chans or 3), size if size is not None else 224


def _bundled(data: str | None) -> str | None:
    """A recorded data set that needs no folder of the user's files (else ``None``: random inputs, or --data)."""
    if not data:
        return None
    from ..data import dataset_info

    try:
        return None if dataset_info(data).needs_root else data
    except KeyError:
        return None


def _subject(item: str, args: argparse.Namespace, checkpoint: str | None) -> _Subject:
    """A registered name (built, with ``--checkpoint`` loaded) or a path (loaded as it is)."""
    import os

    from ._common import parse_model_args
    from ..loading import load_any_checkpoint
    from ..models import create_model, list_models, model_info

    model_args = parse_model_args(args.model_arg)
    if item not in list_models() and os.path.exists(item):
        if checkpoint is not None or args.tiny or model_args or args.img_size is not None:
            raise ValueError(f"{item}: a saved model brings its own weights and configuration; --checkpoint, "
                             "--tiny, --model-arg and --img-size apply to registered model names")
        loaded = load_any_checkpoint(item)
        notes = [*loaded.notes, f"weights: {loaded.weights} ({loaded.kind})"]
        if args.T is not None:
            loaded.model.set_T(args.T)
        cfg = loaded.train_config
        name = Path(item).name if loaded.kind == "run" else loaded.name
        data = cfg.data if cfg is not None else _bundled(loaded.data)
        return _Subject(loaded.model, name, True, notes, data, cfg.data_dir if cfg is not None else None)
    info = model_info(item)  # an unknown name: one line with "did you mean"
    overrides: dict[str, Any] = dict(info.tiny_overrides) if args.tiny else {}
    if args.T is not None:
        overrides["T"] = args.T
    if args.img_size is not None:
        overrides["img_size"] = args.img_size
    overrides.update(model_args)
    notes = []
    if args.tiny:
        notes.append(f"tiny configuration: {info.tiny_overrides}")
    if model_args:
        notes.append(f"constructor overrides: {model_args}")
    if checkpoint is None:
        model = create_model(item, **overrides)
        notes.append("no checkpoint: the model is analysed AS INITIALISED (random weights); "
                     "firing rates and energy of a trained model differ")
        return _Subject(model, item, False, notes)
    loaded = load_any_checkpoint(checkpoint, model=item, model_args=overrides)
    notes.append(f"weights: {checkpoint} ({loaded.kind})")
    cfg = loaded.train_config
    return _Subject(loaded.model, item, True, notes, cfg.data if cfg is not None else None,
                    cfg.data_dir if cfg is not None else None)


def _batches(subject: _Subject, args: argparse.Namespace, dataset: Any) -> Iterator[Any]:
    import torch

    if dataset is not None:
        from ..data import time_major_collate

        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                                             collate_fn=time_major_collate)
        for i, batch in enumerate(loader):
            if i >= args.batches:
                break
            yield batch[0]
        return
    gen = torch.Generator().manual_seed(args.seed)
    if hasattr(subject.model, "example_inputs"):  # several named inputs: the model knows their layout and sizes
        for _ in range(args.batches):
            yield subject.model.example_inputs(args.batch_size, generator=gen)
        return
    kind, chans, img = subject.input_shape()
    h, w = (img, img) if isinstance(img, int) else tuple(img)
    dtype = next(subject.model.parameters()).dtype
    for _ in range(args.batches):
        if kind == "events":
            yield (torch.rand(subject.model.T, args.batch_size, chans, h, w, generator=gen) < 0.1).to(dtype)
        else:
            yield torch.randn(args.batch_size, chans, h, w, generator=gen).to(dtype)


def _dataset(args: argparse.Namespace, subject: _Subject) -> Any:
    data = args.data or subject.data
    if not data:
        return None
    from ..training.config import TrainConfig
    from ..training.run import build_datasets

    model = subject.model
    size = getattr(model, "img_size", None)
    config = TrainConfig(data=data, data_dir=args.data_dir or (subject.data_dir if not args.data else None),
                         data_args={"img_size": size} if isinstance(size, int) else {}, T=int(model.T))
    if args.split == "train":
        dataset, _ = build_datasets(config.replace(augment={}), train=True, test=False)
    else:
        _, dataset = build_datasets(config, train=False, test=True)
    chans = subject.input_shape()[1]
    if dataset.info.in_chans != chans:
        raise ValueError(f"{subject.name} takes {chans}-channel input but data set {data!r} has "
                         f"{dataset.info.in_chans}; pick a data set of the model's input")
    return dataset


def _bn_batch_stats(args: argparse.Namespace, subject: _Subject) -> bool:
    mode = "batch" if args.bn_batch_stats else args.bn_stats
    return (not subject.trained) if mode == "auto" else mode == "batch"


def _analyse(item: str, args: argparse.Namespace, checkpoint: str | None) -> Any:
    import contextlib

    import torch

    from ..analysis import analyze

    torch.manual_seed(args.seed)
    subject = _subject(item, args, checkpoint)
    model, notes = subject.model, subject.notes
    dataset = _dataset(args, subject)
    if dataset is not None:
        notes.append(f"data: {args.data or subject.data} ({args.split}), {args.batches} batch(es) of "
                     f"{args.batch_size}")
    elif hasattr(model, "example_inputs"):
        notes.append(f"data: RANDOM inputs ({type(model).__name__}.example_inputs: "
                     f"{(model.example_inputs.__doc__ or '').strip().splitlines()[0]})")
    else:
        kind, chans, img = subject.input_shape()
        what = "Bernoulli(0.1) event frames" if kind == "events" else "standard-normal images"
        notes.append(f"data: RANDOM inputs ({what}, {chans}x{img}; pass --data NAME for real data)")
    batch_stats = _bn_batch_stats(args, subject)
    if batch_stats:
        why = "" if (args.bn_batch_stats or args.bn_stats == "batch") else (
            " (no trained weights: an initialised model's running statistics silence its neurons; "
            "--bn-stats running to keep them)")
        notes.append(f"BatchNorm uses batch statistics{why}")
    expand: Any = contextlib.nullcontext()
    if args.binary_expansion:
        from ..export.binary_expansion import binary_expanded

        expand = binary_expanded(model)
        notes.append("binary expansion: every multi-level neuron emits its integer as binary spikes over D steps")
    with expand:
        report = analyze(model, _batches(subject, args, dataset), name=subject.name, batch_stats=batch_stats,
                         memory=args.memory)
    if report.totals["firing_rate"] < 1e-2:
        hint = ("--bn-stats batch normalises with batch statistics" if not batch_stats
                else "the inputs may not suit the model (try --data)")
        notes.append(f"mean firing rate {report.totals['firing_rate']:.4f}: almost every neuron is silent; {hint}")
    report.notes[:0] = notes
    if args.compare:  # the comparison lists every model's notes together: say whose each is
        report.notes = [f"{subject.name}: {n}" for n in report.notes]
    return report


def run(args: argparse.Namespace) -> int:
    from ..analysis.report import format_comparison, format_report, plot_comparison, plot_report, write_json

    if args.batches < 1 or args.batch_size < 1:
        raise ValueError("--batches and --batch-size must be at least 1")
    checkpoints = args.checkpoint or []
    if not args.compare and len(args.models) != 1:
        raise ValueError("give one MODEL, or --compare with several")
    if len(checkpoints) > len(args.models):
        raise ValueError(f"{len(checkpoints)} checkpoints for {len(args.models)} model(s)")
    checkpoints = checkpoints + [None] * (len(args.models) - len(checkpoints))
    reports = [_analyse(name, args, ckpt) for name, ckpt in zip(args.models, checkpoints)]
    if args.compare:
        print(format_comparison(reports))
        for r in reports:
            print(f"{r.model}: {r.audit.explain(limit=4)}")
    else:
        print(format_report(reports[0], all_neurons=args.all_neurons))
    if args.json:
        write_json(args.json, reports if args.compare else reports[0])
        print(f"wrote {args.json}")
    if args.plot:
        if args.compare:
            plot_comparison(reports, args.plot)
        else:
            plot_report(reports[0], args.plot)
        print(f"wrote {args.plot}")
    return 0
