"""``spiking-transformers segment``: semantic segmentation with Spike2Former (our spec reading, no official ref).

::

    spiking-transformers segment [--data synthetic|VOC2012_FOLDER] [--size tiny|ade20k] [--train-steps K]
                                 [--train-images N] [--val-images M] [--image-size S] [--png OUT.png] [--json]

Trains the network (``--train-steps``, Adam, per-pixel cross-entropy on the normalised semantic scores: **not** the
paper's Hungarian mask-classification loss) and evaluates it: prints the mIoU and per-class IoU next to the trivial
prediction "everything is background".

* ``--data synthetic`` (default): :class:`~spiking_transformers.data.segmentation.SyntheticShapes` (4 classes:
  background, disc, square, triangle), training and validation images from disjoint seeds. A folder is read in the
  VOC2012 layout (``train`` / ``val`` lists; 21 classes).
* ``--size tiny`` (default) is a small instance of the architecture; ``ade20k`` the paper's configuration
  (slow on a CPU).
* ``--png``: up to 4 validation images, each as image | ground-truth overlay | prediction overlay (VOC colours).
"""

from __future__ import annotations

import argparse
import json

NAME = "segment"
HELP = "train / evaluate Spike2Former semantic segmentation and report mIoU"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthetic", help="'synthetic' (default) or a VOC2012 folder")
    p.add_argument("--size", choices=("tiny", "ade20k"), default="tiny", help="network size (default tiny)")
    p.add_argument("--image-size", type=int, default=64, help="image side, a multiple of 16 (default 64)")
    p.add_argument("--train-images", type=int, default=256, help="synthetic training images (default 256)")
    p.add_argument("--val-images", type=int, default=32, help="synthetic validation images (default 32)")
    p.add_argument("--train-steps", type=int, default=400, help="training steps (default 400; 0: evaluate only)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=float, default=6e-3, help="Adam learning rate (default 6e-3)")
    p.add_argument("--weights", default=None, help="state dict of the network to start from")
    p.add_argument("--save", default=None, help="write the (trained) network's state dict here")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the initialisation")
    p.add_argument("--png", default=None, help="write a colour overlay of predictions here")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def _overlay_png(path: str, model, dataset, n: int = 4) -> None:
    import torch
    from PIL import Image

    from ..data.segmentation import voc_palette

    pal = torch.tensor(voc_palette(256), dtype=torch.float32).view(256, 3)
    model.eval()
    rows = []
    with torch.no_grad():
        for i in range(min(n, len(dataset))):
            x, y = dataset[i]
            pred = model(x[None]).argmax(1)[0]
            img = x - x.amin()
            img = (img / img.amax().clamp_min(1e-6)).permute(1, 2, 0) * 255

            def blend(lab):
                col = pal[lab.clamp(0, 255)]
                a = ((lab > 0) & (lab != 255)).float()[..., None] * 0.6
                return img * (1 - a) + col * a

            rows.append(torch.cat([img, blend(y), blend(pred)], 1))
    arr = torch.cat(rows, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    im = Image.fromarray(arr)
    im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(path)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.segmentation import SyntheticShapes, VOCSegmentation
    from ..models.spike2former import SPIKE2FORMER_ADE20K_KWARGS, SPIKE2FORMER_TINY_KWARGS, Spike2Former
    from ..tasks.segmentation import evaluate_segmenter, iou_from_confusion, mean_iou, train_segmenter

    S = args.image_size
    if S < 16 or S % 16:
        raise ValueError(f"--image-size must be a positive multiple of 16, got {S}")
    if args.train_steps < 0 or args.batch < 1:
        raise ValueError(f"--train-steps must be >= 0 and --batch >= 1, got {args.train_steps}, {args.batch}")
    if args.data == "synthetic":
        train = SyntheticShapes(args.train_images, S, seed=args.seed + 1_000_000)
        val = SyntheticShapes(args.val_images, S, seed=args.seed)
    else:
        train = VOCSegmentation(args.data, "train", S)
        val = VOCSegmentation(args.data, "val", S)
    K = val.num_classes
    torch.manual_seed(args.seed)
    kwargs = SPIKE2FORMER_TINY_KWARGS if args.size == "tiny" else SPIKE2FORMER_ADE20K_KWARGS
    model = Spike2Former(**{**kwargs, "num_classes": K, "img_size": S})
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    losses = []
    if args.train_steps:
        log = None if args.as_json else (lambda s, l: print(f"step {s:5d}  loss {l:.4f}"))
        losses = train_segmenter(model, train, steps=args.train_steps, batch_size=args.batch, lr=args.lr,
                                 seed=args.seed, log=log)
    if args.save:
        torch.save(model.state_dict(), args.save)
    cm = evaluate_segmenter(model, val, K, batch_size=args.batch)
    ious = iou_from_confusion(cm)
    bg_cm = torch.zeros_like(cm)
    bg_cm[:, 0] = cm.sum(1)  # "everything is background"
    result = {
        "data": args.data, "size": args.size, "image_size": S, "train_steps": args.train_steps,
        "val_images": len(val), "miou": mean_iou(cm), "pixel_acc": float(cm.diag().sum() / cm.sum().clamp_min(1)),
        "per_class_iou": {n: (None if v != v else float(v)) for n, v in zip(val.class_names, ious.tolist())},
        "all_background_miou": mean_iou(bg_cm), "loss": "per-pixel CE on normalised semantic scores (no Hungarian)",
    }
    if losses:
        result["final_train_loss"] = losses[-1]
    if args.png:
        _overlay_png(args.png, model, val)
        result["png"] = args.png
    if args.as_json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"Spike2Former ({args.size}) on {args.data}: {len(val)} val images, {S}x{S}, {args.train_steps} steps")
    print(f"mIoU {100 * result['miou']:.2f}  pixel acc {100 * result['pixel_acc']:.2f}  "
          f"(all-background mIoU {100 * result['all_background_miou']:.2f})")
    for n, v in result["per_class_iou"].items():
        print(f"  {n:<14s} IoU {'n/a' if v is None else f'{100 * v:.2f}'}")
    if args.png:
        print(f"wrote {args.png}")
    return 0
