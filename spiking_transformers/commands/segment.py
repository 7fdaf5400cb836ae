"""``spiking-transformers segment``: semantic segmentation with Spike2Former (our spec reading, no official ref).

::

    spiking-transformers segment [--data synthetic|VOC2012_FOLDER] [--size tiny|ade20k] [--train-steps K]
                                 [--train-images N] [--val-images M] [--image-size S] [--shapes LIST]
                                 [--radius LO HI] [--loss set|pixel] [--png OUT.png] [--json]

Trains the network (``--train-steps``, AdamW with a cosine schedule, the Mask2Former Hungarian set loss of the paper:
class CE + focal + dice with deep supervision, :func:`~spiking_transformers.models.spike2former.set_criterion`;
``--loss pixel`` switches to per-pixel CE on the normalised semantic scores) and evaluates it: prints the mIoU and
per-class IoU next to the trivial prediction "everything is background".

* ``--data synthetic`` (default): :class:`~spiking_transformers.data.segmentation.SyntheticShapes` (4 classes:
  background, disc, square, triangle, random colours so only the shape tells the class), training and validation
  images from disjoint seeds; ``--shapes`` / ``--radius`` make an easier set (fewer classes, bigger shapes). A
  folder is read in the VOC2012 layout (``train`` / ``val`` lists; 21 classes).
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
    p.add_argument("--train-steps", type=int, default=1000, help="training steps (default 1000; 0: evaluate only)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate (default 5e-3, cosine decay)")
    p.add_argument("--shapes", default="disc,square,triangle",
                   help="synthetic shape classes, comma-separated subset of disc,square,triangle (default all three)")
    p.add_argument("--radius", type=float, nargs=2, default=(0.1, 0.25), metavar=("LO", "HI"),
                   help="synthetic shape radius range as a fraction of the image side (default 0.1 0.25)")
    p.add_argument("--weights", default=None, help="state dict of the network to start from")
    p.add_argument("--save", default=None, help="write the (trained) network's state dict here")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the initialisation")
    p.add_argument("--png", default=None, help="write a colour overlay of predictions here")
    p.add_argument("--loss", choices=("set", "pixel"), default="set",
                   help="'set' (default): Hungarian set loss with deep supervision; 'pixel': per-pixel CE")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def _overlay_png(path: str, model, dataset, n: int = 4, scale: int = 3) -> None:
    """Rows of image | ground-truth overlay | prediction overlay (VOC colours, 70 % opaque on non-background
    pixels), enlarged ``scale`` times, with a header and a colour legend of the classes."""
    import torch
    from PIL import Image, ImageDraw

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
                a = ((lab > 0) & (lab != 255)).float()[..., None] * 0.7
                return img * (1 - a) + col * a

            gap = torch.full((img.shape[0], 2, 3), 255.0)
            rows.append(torch.cat([img, gap, blend(y), gap, blend(pred)], 1))
            rows.append(torch.full((2, rows[-1].shape[1], 3), 255.0))
    arr = torch.cat(rows, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    im = Image.fromarray(arr)
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    names = list(getattr(dataset, "class_names", []))
    out = Image.new("RGB", (im.width, im.height + 36), "white")
    out.paste(im, (0, 18))
    draw = ImageDraw.Draw(out)
    w = im.width // 3
    for j, title in enumerate(("image", "ground truth", "prediction")):
        draw.text((j * w + 4, 3), title, fill="black")
    x0 = 4
    for k, name in enumerate(names[1:], 1):  # legend: the non-background classes
        col = tuple(int(v) for v in pal[k].tolist())
        draw.rectangle((x0, im.height + 22, x0 + 10, im.height + 32), fill=col)
        draw.text((x0 + 14, im.height + 21), name, fill="black")
        x0 += 14 + 7 * len(name) + 12
    out.save(path)


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
        opts = dict(shapes=tuple(v.strip() for v in args.shapes.split(",") if v.strip()), radius=tuple(args.radius))
        train = SyntheticShapes(args.train_images, S, seed=args.seed + 1_000_000, **opts)
        val = SyntheticShapes(args.val_images, S, seed=args.seed, **opts)
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
        from ..models.spike2former import semantic_loss

        losses = train_segmenter(model, train, steps=args.train_steps, batch_size=args.batch, lr=args.lr,
                                 seed=args.seed, log=log, loss_fn=semantic_loss if args.loss == "pixel" else None)
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
        "all_background_miou": mean_iou(bg_cm),
        "loss": {"set": "Hungarian set loss (CE + focal + dice, deep supervision)",
                 "pixel": "per-pixel CE on normalised semantic scores"}[args.loss],
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
