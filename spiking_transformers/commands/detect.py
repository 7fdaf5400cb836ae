"""``spiking-transformers detect``: object detection on events with Spike-TransCNN (a reconstruction: no official code).

::

    spiking-transformers detect [--data synthetic|GEN1_FOLDER] [--size tiny|gen1] [--train-steps K] [--batch B]
                                [--train-samples N] [--val-samples M] [--png OUT.png] [--json]

Trains the detector (``--train-steps``; AdamW, FCOS-style focal + GIoU + centre-ness losses, random flips) and
evaluates it with COCO mAP computed by ``pycocotools`` (the optional extra ``detection``): prints mAP@[.5:.95] and
mAP@0.5 next to a trivial baseline (the training set's mean box for every class on every image) and the empty
prediction (mAP 0).

* ``--data synthetic`` (default): :class:`~spiking_transformers.detection.SyntheticEventDetection`, moving discs,
  squares and triangles on a 64 x 64 sensor seen by the simulated event camera, ``T = 4`` bins; training and
  validation samples from disjoint seeds. A folder is read in the Gen1 layout (``train/`` and ``val/`` with
  ``*_td.dat`` + ``*_bbox.npy``; 2 classes, ``T = 5`` bins of the 50 ms before each label).
* ``--size tiny`` (default) is a small instance of the architecture; ``gen1`` our Gen1 configuration (slow on CPU).
* ``--png``: up to 6 validation samples, each the last event bin (ON green, OFF red) with ground-truth boxes
  (white) and detections above ``--png-score`` (class colours, with scores; class-agnostic NMS for legibility, the
  metrics use every detection).
"""

from __future__ import annotations

import argparse
import json
import time

NAME = "detect"
HELP = "train / evaluate Spike-TransCNN event object detection and report COCO mAP (pycocotools)"

_COLOURS = ((255, 200, 0), (0, 160, 255), (255, 0, 255), (0, 255, 160), (255, 120, 0))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic", help="'synthetic' (default) or a Gen1-layout folder")
    p.add_argument("--size", choices=("tiny", "gen1"), default="tiny", help="network size (default tiny)")
    p.add_argument("--train-samples", type=int, default=512, help="synthetic training samples (default 512)")
    p.add_argument("--val-samples", type=int, default=64, help="synthetic validation samples (default 64)")
    p.add_argument("--train-steps", type=int, default=300, help="training steps (default 300; 0: evaluate only)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--lr", type=float, default=4e-3, help="peak AdamW learning rate (default 4e-3)")
    p.add_argument("--weights", default=None, help="state dict of the network to start from")
    p.add_argument("--save", default=None, help="write the (trained) network's state dict here")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the initialisation")
    p.add_argument("--png", default=None, help="write predicted vs ground-truth boxes on event frames here")
    p.add_argument("--png-score", type=float, default=0.3, help="lowest detection score drawn (default 0.3)")
    p.add_argument("--energy", action="store_true",
                   help="also report firing rate and energy (analysis.analyze) on 2 batches of validation frames")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def draw_detections(path: str, dataset, preds: list, class_names, n: int = 6, min_score: float = 0.3,
                    scale: int = 4) -> None:
    """PNG grid: the last event bin of each sample (ON green, OFF red), ground truth white, detections coloured by
    class with their scores (those above ``min_score`` after a class-agnostic NMS at IoU 0.5, so that each object
    shows its best class once)."""
    import numpy as np

    from ..detection import nms

    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise ImportError("--png needs pillow: pip install 'spiking-transformers[data]'") from None

    tiles = []
    for i in range(min(n, len(dataset))):
        frames, target = dataset[i]
        last = frames[-1].numpy()  # [2, H, W]
        H, W = last.shape[-2:]
        rgb = np.zeros((H, W, 3), np.float32)
        rgb[..., 1] = np.minimum(last[1], 3) / 3 * 255
        rgb[..., 0] = np.minimum(last[0], 3) / 3 * 255
        im = Image.fromarray(rgb.astype(np.uint8)).resize((W * scale, H * scale), Image.NEAREST)
        d = ImageDraw.Draw(im)
        for b in target["boxes"].tolist():
            d.rectangle([v * scale for v in b], outline=(255, 255, 255), width=1)
        p = preds[i]
        keep = nms(p["boxes"], p["scores"], 0.5)  # one label per object (the best class), for legibility
        for b, s, lab in zip(p["boxes"][keep].tolist(), p["scores"][keep].tolist(), p["labels"][keep].tolist()):
            if s < min_score:
                continue
            col = _COLOURS[lab % len(_COLOURS)]
            d.rectangle([v * scale for v in b], outline=col, width=2)
            d.text((b[0] * scale + 2, max(b[1] * scale - 11, 0)), f"{class_names[lab]} {s:.2f}", fill=col)
        tiles.append(im)
    cols = min(3, len(tiles))
    rows = -(-len(tiles) // cols)
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * (w + 4) - 4, rows * (h + 4) - 4), (60, 60, 60))
    for k, im in enumerate(tiles):
        sheet.paste(im, ((k % cols) * (w + 4), (k // cols) * (h + 4)))
    sheet.save(path)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..detection import (Gen1Detection, SyntheticDetectionConfig, SyntheticEventDetection, coco_map,
                             mean_box_baseline, predict, require_pycocotools, train_detector)
    from ..models.spike_transcnn import SPIKE_TRANSCNN_GEN1_KWARGS, SPIKE_TRANSCNN_TINY_KWARGS, SpikeTransCNN

    require_pycocotools()  # fail at once, in one line, when the optional extra is missing
    if args.train_steps < 0 or args.batch < 1:
        raise ValueError(f"--train-steps must be >= 0 and --batch >= 1, got {args.train_steps}, {args.batch}")
    kwargs = dict(SPIKE_TRANSCNN_TINY_KWARGS if args.size == "tiny" else SPIKE_TRANSCNN_GEN1_KWARGS)
    if args.data == "synthetic":
        if args.train_samples < 1 or args.val_samples < 1:
            raise ValueError("--train-samples and --val-samples must be >= 1")
        cfg = SyntheticDetectionConfig(T=kwargs["T"])
        train = SyntheticEventDetection(args.train_samples, cfg, seed=args.seed + 1_000_000)
        val = SyntheticEventDetection(args.val_samples, cfg, seed=args.seed)
        kwargs.update(img_size=cfg.size)
    else:
        train = Gen1Detection(args.data, "train", T=kwargs["T"])
        val = Gen1Detection(args.data, "val", T=kwargs["T"])
        kwargs.update(img_size=val.size)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"{args.data}: no labelled timestamps after the first {val.window_us} us in train/ or "
                             "val/")
    K = len(val.class_names)
    kwargs["num_classes"] = K
    torch.manual_seed(args.seed)
    model = SpikeTransCNN(**kwargs)
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    losses: list[float] = []
    t0 = time.perf_counter()
    if args.train_steps:
        log = None if args.as_json else (
            lambda s, l, p: print(f"step {s:5d}  loss {l:.4f}  (cls {p['cls']:.3f}  box {p['box']:.3f}  "
                                  f"ctr {p['ctr']:.3f})"))
        losses = train_detector(model, train, steps=args.train_steps, batch_size=args.batch, lr=args.lr,
                                seed=args.seed, log=log)
    train_s = time.perf_counter() - t0
    if args.save:
        torch.save(model.state_dict(), args.save)
    preds, gts = predict(model, val, batch_size=args.batch)
    size = tuple(val[0][0].shape[-2:])
    stats = coco_map(preds, gts, K, size)
    base = mean_box_baseline(train, val, K)
    none = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    empty = coco_map([none] * len(gts), gts, K, size)
    result = {
        "model": "spike_transcnn (reconstruction, no official code)", "data": args.data, "size": args.size,
        "train_steps": args.train_steps, "train_samples": len(train), "val_samples": len(val),
        "params": sum(p.numel() for p in model.parameters()), "train_seconds": round(train_s, 1),
        "map": stats["map"], "map50": stats["map50"], "map75": stats["map75"], "coco": stats,
        "baseline_mean_box": {"map": base["map"], "map50": base["map50"]},
        "baseline_empty": {"map": max(empty["map"], 0.0), "map50": max(empty["map50"], 0.0)},
        "metric": "COCO bbox mAP by pycocotools (IoU .50:.95; map50 at IoU .5)",
    }
    if losses:
        result["first_train_loss"], result["final_train_loss"] = losses[0], losses[-1]
    if args.energy:
        from ..analysis import analyze
        from ..detection import collate_detection

        loader = torch.utils.data.DataLoader(val, batch_size=args.batch, collate_fn=collate_detection)
        batches = [x for i, (x, _) in zip(range(2), loader)]
        rep = analyze(model, batches, name="spike_transcnn")
        result["energy"] = {"firing_rate": rep.totals["firing_rate"], "energy_uj": rep.totals["energy_pj"] / 1e6,
                            "energy_paper_uj": rep.totals["energy_paper_pj"] / 1e6,
                            "ann_energy_uj": rep.totals["energy_ann_pj"] / 1e6,
                            "input": "validation event frames", "per_sample": True}
    if args.png:
        draw_detections(args.png, val, preds, val.class_names, min_score=args.png_score)
        result["png"] = args.png
    if args.as_json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"Spike-TransCNN ({args.size}, reconstruction) on {args.data}: {len(val)} val samples, "
          f"{args.train_steps} steps in {train_s:.0f} s")
    print(f"mAP {100 * result['map']:.2f}  mAP50 {100 * result['map50']:.2f}  mAP75 {100 * result['map75']:.2f}")
    print(f"baselines: mean box mAP {100 * base['map']:.2f} / mAP50 {100 * base['map50']:.2f}; "
          f"no detections mAP 0.00 / mAP50 0.00")
    if args.energy:
        e = result["energy"]
        print(f"firing rate {e['firing_rate']:.4f}  energy {e['energy_uj']:.2f} uJ per sample (paper formula "
              f"{e['energy_paper_uj']:.2f} uJ; ANN equivalent {e['ann_energy_uj']:.2f} uJ)")
    if args.png:
        print(f"wrote {args.png}")
    return 0
