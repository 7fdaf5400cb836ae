"""Semantic-segmentation data: a synthetic shapes set and a reader for the PASCAL VOC 2012 folder layout.

Both yield ``(image [3, S, S] float32, labels [S, S] int64)`` pairs. Label 0 is the background and 255 is
"ignore" (the VOC object borders).

* :class:`SyntheticShapes`: random discs, squares and triangles (one class per shape kind) on a noisy background,
  each image drawn from its own seed (``seed + index``), so a set is reproducible and two seeds give disjoint sets.
* :class:`VOCSegmentation`: ``root/JPEGImages/<id>.jpg``, ``root/SegmentationClass/<id>.png`` (palette PNG whose
  indices are the class labels, 255 = ignore) and ``root/ImageSets/Segmentation/<split>.txt`` (one id per line).
  Images are resized (bilinear) and label maps resized (nearest) to ``size x size``; any malformed or missing file
  raises :class:`~spiking_transformers.data.errors.DataFormatError` with one line naming it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataFormatError

__all__ = ["SyntheticShapes", "VOCSegmentation", "VOC_CLASSES", "SHAPE_CLASSES", "voc_palette"]

SHAPE_CLASSES = ("background", "disc", "square", "triangle")
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def voc_palette(n: int = 256) -> list[int]:
    """The PASCAL VOC colour map (bit-interleaved), flat ``[r0, g0, b0, r1, ...]`` of ``3 n`` ints."""
    pal = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


class SyntheticShapes(Dataset):
    """Random shapes with per-pixel labels (classes :data:`SHAPE_CLASSES`, background 0).

    Args:
        n: number of images.
        size: image side S.
        seed: base seed; image ``i`` uses ``seed + i``.
        max_shapes: up to this many shapes per image (at least 1).
        radius: range ``(lo, hi)`` of the shape "radius" as a fraction of S (default ``(0.1, 0.25)``); the
            shape's bounding box is about twice that.
        shapes: the shape kinds drawn, a non-empty subset of ``("disc", "square", "triangle")`` in any order;
            class ``i + 1`` is ``shapes[i]`` (an easier set with fewer classes: e.g. ``("disc", "triangle")``).
    """

    num_classes = len(SHAPE_CLASSES)
    class_names = SHAPE_CLASSES

    def __init__(self, n: int = 64, size: int = 64, seed: int = 0, max_shapes: int = 3,
                 radius: tuple[float, float] = (0.1, 0.25), shapes: tuple[str, ...] = SHAPE_CLASSES[1:]) -> None:
        if n < 1 or size < 8 or max_shapes < 1:
            raise ValueError(f"need n >= 1, size >= 8, max_shapes >= 1; got n={n}, size={size}, "
                             f"max_shapes={max_shapes}")
        lo, hi = radius
        if not 0 < lo <= hi <= 0.5:
            raise ValueError(f"radius must be (lo, hi) with 0 < lo <= hi <= 0.5 (fractions of the side), got {radius}")
        self.n, self.size, self.seed, self.max_shapes = n, size, seed, max_shapes
        self.radius = (float(lo), float(hi))
        shapes = tuple(shapes)
        if not shapes or len(set(shapes)) != len(shapes) or not set(shapes) <= set(SHAPE_CLASSES[1:]):
            raise ValueError(f"shapes must be distinct names from {SHAPE_CLASSES[1:]}, got {shapes}")
        self.shapes = shapes
        self.class_names = ("background", *shapes)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} images")
        g = torch.Generator().manual_seed(self.seed + i)
        S = self.size
        yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32),
                                indexing="ij")
        labels = torch.zeros(S, S, dtype=torch.long)
        # background: a random colour with noise; shapes get their own random colours (so colour alone does not
        # give the class: the network must use shape)
        img = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.1 * torch.randn(3, S, S, generator=g)
        for _ in range(int(torch.randint(1, self.max_shapes + 1, (1,), generator=g))):
            label = int(torch.randint(1, len(self.shapes) + 1, (1,), generator=g))
            kind = SHAPE_CLASSES.index(self.shapes[label - 1])
            r = float(torch.empty(()).uniform_(S * self.radius[0], S * self.radius[1], generator=g))
            cx, cy = (float(v) for v in torch.empty(2).uniform_(r, S - r, generator=g))
            if kind == 1:
                m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            elif kind == 2:
                m = ((xx - cx).abs() <= r * 0.85) & ((yy - cy).abs() <= r * 0.85)
            else:  # upward triangle: below the apex, inside both slanted edges
                dy = yy - (cy - r)
                m = (dy >= 0) & (dy <= 2 * r) & ((xx - cx).abs() <= dy / math.sqrt(3))
            labels[m] = label
            colour = torch.rand(3, 1, 1, generator=g) * 0.6 + 0.4
            img = torch.where(m, colour + 0.05 * torch.randn(3, S, S, generator=g), img)
        return (img - 0.45) / 0.25, labels


class VOCSegmentation(Dataset):
    """PASCAL VOC 2012 semantic segmentation (21 classes, 255 = ignore) read from its folder layout.

    Args:
        root: the ``VOC2012`` folder (holding ``JPEGImages``, ``SegmentationClass``, ``ImageSets/Segmentation``).
        split: list name (``train``, ``val``, ...): ``ImageSets/Segmentation/<split>.txt``.
        size: output side S (images bilinear, labels nearest).

    Raises:
        DataFormatError: missing folder or list, an empty list, a missing / unreadable image or label file, a label
            PNG that is not a palette or grey image, an image and label of different sizes, or labels above 20 that
            are not 255.
    """

    num_classes = len(VOC_CLASSES)
    class_names = VOC_CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", size: int = 256) -> None:
        self.root = Path(root)
        self.size = size
        lst = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not lst.is_file():
            raise DataFormatError(lst, f"split list {split!r} not found",
                                  expected="a VOC2012 folder with ImageSets/Segmentation/<split>.txt")
        ids = []
        for n, line in enumerate(lst.read_text(errors="replace").splitlines(), 1):
            s = line.strip()
            if not s:
                continue
            if len(s.split()) != 1 or "/" in s:
                raise DataFormatError(lst, f"bad image id {s!r}", line=n, expected="one image id per line")
            ids.append(s)
        if not ids:
            raise DataFormatError(lst, "split list is empty", expected="one image id per line")
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        from PIL import Image, UnidentifiedImageError

        iid = self.ids[i]
        img_path = self.root / "JPEGImages" / f"{iid}.jpg"
        lab_path = self.root / "SegmentationClass" / f"{iid}.png"
        for p in (img_path, lab_path):
            if not p.is_file():
                raise DataFormatError(p, f"file of image id {iid!r} is missing")
        try:
            img = Image.open(img_path)
            img.load()
        except (UnidentifiedImageError, OSError) as e:
            raise DataFormatError(img_path, f"unreadable image ({type(e).__name__})", expected="a JPEG") from None
        try:
            lab = Image.open(lab_path)
            lab.load()
        except (UnidentifiedImageError, OSError) as e:
            raise DataFormatError(lab_path, f"unreadable label image ({type(e).__name__})",
                                  expected="a palette PNG") from None
        if lab.mode not in ("P", "L"):
            raise DataFormatError(lab_path, f"label image has mode {lab.mode}",
                                  expected="a palette ('P') or grey ('L') PNG of class indices")
        if lab.size != img.size:
            raise DataFormatError(lab_path, f"label size {lab.size} differs from image size {img.size}")
        S = self.size
        img = img.convert("RGB").resize((S, S), Image.BILINEAR)
        lab = lab.resize((S, S), Image.NEAREST)
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(S, S, 3).permute(2, 0, 1)
        y = torch.frombuffer(bytearray(lab.tobytes()), dtype=torch.uint8).view(S, S).long()
        bad = (y >= self.num_classes) & (y != 255)
        if bad.any():
            raise DataFormatError(lab_path, f"label value {int(y[bad][0])} is not a class",
                                  expected=f"0..{self.num_classes - 1} or 255")
        return (x.float() / 255 - _MEAN) / _STD, y
