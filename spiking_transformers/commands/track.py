"""``spiking-transformers track``: single-object tracking on event data with STNet.

::

    spiking-transformers track [--data synthetic|FOLDER] [--sequences N] [--frames F] [--size tiny|fe240]
                               [--weights FILE] [--official] [--train-steps K] [--train-sequences M]
                               [--png OUT.png] [--json]

Runs :class:`~spiking_transformers.tracking.STNetTracker` over every sequence and prints the success AUC
(RSR), the precision at 20 px (RPR) and the mean IoU, next to the trivial baseline that keeps the first box.

* ``--data synthetic`` (default): the SYNTHETIC set of :mod:`spiking_transformers.tracking.synthetic` (a textured
  object moving over a textured, panning background, seen by a simulated event camera), ``--sequences`` sequences
  of ``--frames`` frames; a FOLDER is read in STNet's preprocessed FE108 layout
  (:mod:`spiking_transformers.tracking.folder`).
* ``--size tiny`` (default; crops 59 / 171) or ``fe240`` (the official network, crops 127 / 303).
* ``--weights FILE``: a state dict of our model, or with ``--official`` an official STNet state dict (e.g. the
  released ``fe240.pkl`` loaded with torch; ``--size fe240``). Without weights the network is randomly initialised:
  the numbers then only show that the pipeline runs, unless ``--train-steps`` trains it first with the SiamFC++
  losses on ``--train-sequences`` other synthetic sequences (seeds disjoint from the test set's).
* ``--png``: the first sequence's event frames (ON red, OFF blue) with the ground truth (green) and the tracked box
  (yellow), a strip of up to 8 frames.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "track"
HELP = "track an object through event frames with STNet and report success AUC / precision@20"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic", help="'synthetic' (default) or a folder in the FE108 layout")
    p.add_argument("--sequences", type=int, default=4, help="synthetic test sequences (default 4)")
    p.add_argument("--frames", type=int, default=12, help="frames per synthetic sequence (default 12)")
    p.add_argument("--size", choices=("tiny", "fe240"), default="tiny", help="network size (default tiny)")
    p.add_argument("--weights", default=None, help="state dict file of the network")
    p.add_argument("--official", action="store_true", help="--weights is an official STNet state dict")
    p.add_argument("--train-steps", type=int, default=0, help="SiamFC++ training steps before tracking (default 0)")
    p.add_argument("--train-sequences", type=int, default=16, help="synthetic training sequences (default 16)")
    p.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="training learning rate (Adam, default 1e-3)")
    p.add_argument("--save", default=None, help="write the (trained) network's state dict here")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic test set and the initialisation")
    p.add_argument("--png", default=None, help="write a strip of tracked frames of the first sequence")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def _model(args: argparse.Namespace):
    import torch

    from ..models import from_official, load_official_checkpoint, load_official_state_dict
    from ..models.stnet import CROP_SIZES, STNET_FE240_KWARGS, STNET_TINY_KWARGS, STNet
    from ..tracking import TrackerConfig

    torch.manual_seed(args.seed)
    z, x = CROP_SIZES[args.size]
    if args.official:
        if not args.weights:
            raise ValueError("--official needs --weights FILE (an official STNet state dict)")
        if args.size != "fe240":
            raise ValueError("--official weights are the FE240 network: use --size fe240")
        model = from_official("stnet", dict(SwinTransformer=dict(pretrain_img_size=280)))
        load_official_state_dict(model, load_official_checkpoint(args.weights))
    else:
        model = STNet(**(STNET_TINY_KWARGS if args.size == "tiny" else STNET_FE240_KWARGS))
        if args.weights:
            model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    return model, TrackerConfig(z_size=z, x_size=x)


def _png(path: str, seq, boxes) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    n = min(8, len(seq))
    tiles = []
    for f in np.linspace(0, len(seq) - 1, n).round().astype(int):
        on = seq.pos[f, :, 0].astype(np.float64).sum(0)
        off = seq.neg[f, :, 0].astype(np.float64).sum(0)
        rgb = np.stack([np.clip(on, 0, 255), np.zeros_like(on), np.clip(off, 0, 255)], -1).astype(np.uint8)
        img = Image.fromarray(rgb).resize((rgb.shape[1] * 3, rgb.shape[0] * 3), Image.NEAREST)
        draw = ImageDraw.Draw(img)
        for box, colour in ((seq.boxes[f], (0, 255, 0)), (boxes[f], (255, 255, 0))):
            x, y, w, h = (3 * v for v in box)
            draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
        draw.text((4, 4), f"frame {f}", fill=(255, 255, 255))
        tiles.append(img)
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (n - 1), tiles[0].height), (255, 255, 255))
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + 4
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    strip.save(path)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..tracking import (STNetTracker, SyntheticTrackingConfig, evaluate_tracking, make_tracking_sequences,
                            read_tracking_folder)
    from ..tracking.train import train_tracker

    if args.sequences < 1 or args.frames < 2:
        raise ValueError(f"--sequences must be >= 1 and --frames >= 2, got {args.sequences}, {args.frames}")
    model, cfg = _model(args)
    if args.data == "synthetic":
        data_name = "synthetic (simulated event camera)"
        seqs = make_tracking_sequences(args.sequences, SyntheticTrackingConfig(frames=args.frames, seed=args.seed))
    else:
        data_name = args.data
        seqs = read_tracking_folder(args.data)
    history = []
    if args.train_steps > 0:
        train = make_tracking_sequences(args.train_sequences,
                                        SyntheticTrackingConfig(frames=args.frames, seed=args.seed + 100_000))
        history = train_tracker(model, train, cfg, steps=args.train_steps, batch=args.batch, lr=args.lr,
                                seed=args.seed)
    if args.save:
        import torch

        torch.save(model.state_dict(), args.save)
    tracker = STNetTracker(model, cfg)
    preds = [tracker.track_sequence(list(s.pos), list(s.neg), s.boxes[0]) for s in seqs]
    gts = [s.boxes for s in seqs]
    scores = evaluate_tracking(preds, gts)
    stay = evaluate_tracking([np.repeat(g[:1], len(g), 0) for g in gts], gts)
    if args.png:
        _png(args.png, seqs[0], preds[0])
    result = {"data": data_name, "sequences": len(seqs), "size": args.size, "train_steps": args.train_steps,
              "stnet": scores.as_dict(), "hold_first_box": stay.as_dict()}
    if history:
        result["final_train_loss"] = history[-1]["loss"]
    if args.as_json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"data: {data_name}, {len(seqs)} sequences, {scores.frames} scored frames (first frames excluded)")
    print(f"network: STNet {args.size}" + (f", trained {args.train_steps} steps (final loss "
                                          f"{history[-1]['loss']:.3f})" if history else
                                          (", given weights" if args.weights else ", RANDOM weights")))
    print(f"{'tracker':<16}{'success AUC':>12}{'prec@20':>10}{'mean IoU':>10}")
    for name, s in (("STNet", scores), ("hold first box", stay)):
        print(f"{name:<16}{s.success_auc:>12.3f}{s.precision_20:>10.3f}{s.mean_iou:>10.3f}")
    if args.png:
        print(f"wrote {args.png}")
    return 0
