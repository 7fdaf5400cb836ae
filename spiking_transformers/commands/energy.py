"""``spiking-transformers energy``: synaptic operations, firing rates, energy and the spike-driven audit.

    spiking-transformers energy MODEL [--checkpoint PATH] [--data NAME] [--batches N] [--json FILE] [--plot FILE]
    spiking-transformers energy --compare MODEL MODEL ... [--checkpoint PATH ...]
"""

from __future__ import annotations

import argparse
from typing import Any, Iterator

NAME = "energy"
HELP = "count synaptic operations (AC/MAC), firing rates and energy, and audit whether a model is spike-driven"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL", help="registered model name(s)")
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
    p.add_argument("--bn-batch-stats", action="store_true",
                   help="normalise BatchNorm with batch statistics (useful for a model as initialised)")
    p.add_argument("--binary-expansion", action="store_true",
                   help="analyse multi-level models in their binary form (each integer k as k spikes over D steps)")
    p.add_argument("--memory", action="store_true", help="also estimate memory-access energy (reported apart)")
    p.add_argument("--all-neurons", action="store_true", help="print the firing rate of every neuron module")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a PNG figure")


def _build(name: str, args: argparse.Namespace, checkpoint: str | None, data_info: Any) -> tuple[Any, list[str]]:
    from ..models import create_model, model_info

    info = model_info(name)
    overrides: dict[str, Any] = dict(info.tiny_overrides) if args.tiny else {}
    if args.T is not None:
        overrides["T"] = args.T
    if args.img_size is not None:
        overrides["img_size"] = args.img_size
    if data_info is not None:
        overrides["in_chans"] = data_info.in_chans
        if data_info.num_classes:
            overrides["num_classes"] = data_info.num_classes
    model = create_model(name, **overrides)
    notes = []
    if args.tiny:
        notes.append(f"tiny configuration: {info.tiny_overrides}")
    if checkpoint is None:
        notes.append("no checkpoint: the model is analysed AS INITIALISED (random weights); "
                     "firing rates and energy of a trained model differ")
    else:
        _load(model, checkpoint, info.official_family)
        notes.append(f"weights: {checkpoint}")
    return model, notes


def _load(model: Any, path: str, official_family: str | None) -> None:
    from ..models import load_official_checkpoint, load_official_state_dict

    state = load_official_checkpoint(path)  # weights-only read, unwrapped
    own = model.state_dict()
    if set(state) == set(own):
        model.load_state_dict(state, strict=True)
        return
    if official_family is None:
        missing = sorted(set(own) - set(state))[:5]
        raise ValueError(f"{path}: keys do not match the model (missing e.g. {missing}) and the variant has no "
                         "official converter")
    model.official_family = official_family
    load_official_state_dict(model, state)


def _input_shape(model: Any, name: str, args: argparse.Namespace) -> tuple[str, int, int]:
    from ..models import model_info

    info = model_info(name)
    tiny = info.tiny_overrides if args.tiny else {}
    img = args.img_size or tiny.get("img_size", info.img_size)
    chans = tiny.get("in_chans", info.in_chans)
    return getattr(model, "input_kind", info.input_kind), int(chans), int(img)


def _batches(model: Any, name: str, args: argparse.Namespace, dataset: Any) -> Iterator[Any]:
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
    kind, chans, img = _input_shape(model, name, args)
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.batches):
        if kind == "events":
            yield (torch.rand(model.T, args.batch_size, chans, img, img, generator=gen) < 0.1).float()
        else:
            yield torch.randn(args.batch_size, chans, img, img, generator=gen)


def _dataset(args: argparse.Namespace, name: str) -> Any:
    if not args.data:
        return None
    from ..data import dataset_info, get_dataset
    from ..models import model_info

    info = model_info(name)
    tiny = info.tiny_overrides if args.tiny else {}
    img = args.img_size or tiny.get("img_size", info.img_size)
    options: dict[str, Any] = {"img_size": img}
    if dataset_info(args.data).input_kind == "events":
        options["T"] = args.T or tiny.get("T", info.default_T)
    return get_dataset(args.data, args.split, root=args.data_dir, **options)


def _analyse(name: str, args: argparse.Namespace, checkpoint: str | None) -> Any:
    import contextlib

    import torch

    from ..analysis import analyze

    torch.manual_seed(args.seed)
    dataset = _dataset(args, name)
    model, notes = _build(name, args, checkpoint, dataset.info if dataset is not None else None)
    if dataset is not None:
        notes.append(f"data: {args.data} ({args.split}), {args.batches} batch(es) of {args.batch_size}")
    else:
        kind, chans, img = _input_shape(model, name, args)
        what = "Bernoulli(0.1) event frames" if kind == "events" else "standard-normal images"
        notes.append(f"data: RANDOM inputs ({what}, {chans}x{img}x{img}; pass --data NAME for real data)")
    if args.bn_batch_stats:
        notes.append("BatchNorm uses batch statistics (--bn-batch-stats)")
    expand: Any = contextlib.nullcontext()
    if args.binary_expansion:
        from ..export.binary_expansion import binary_expanded

        expand = binary_expanded(model)
        notes.append("binary expansion: every multi-level neuron emits its integer as binary spikes over D steps")
    with expand:
        report = analyze(model, _batches(model, name, args, dataset), name=name, batch_stats=args.bn_batch_stats,
                         memory=args.memory)
    if checkpoint is None and not args.bn_batch_stats and report.totals["firing_rate"] < 1e-2:
        notes.append(f"mean firing rate {report.totals['firing_rate']:.4f}: an initialised model's BatchNorm running "
                     "statistics silence most neurons; --bn-batch-stats normalises with batch statistics instead")
    report.notes[:0] = notes
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
