"""Small tensor transforms for image (and event-frame) samples, with no torchvision dependency.

Every transform is a callable on a float tensor whose last three dimensions are ``[C, H, W]``: an image sample
``[C, H, W]`` or an event-frame sample ``[T, C, H, W]``. Random transforms draw from the ``generator`` they were
given, or else from torch's global generator, so ``torch.manual_seed`` and DataLoader worker seeding make them
reproducible (and the trainer's checkpoints, which hold torch's global RNG state, resume them exactly). They apply
the *same* crop or flip to every time step of an event sample (a sample is one recording, moved as a whole).

Geometry and resizing follow Pillow's conventions, as the official (timm / torchvision on PIL images) pipelines do:
pixel ``i`` covers the continuous interval ``[i, i + 1)``; shrinking with ``bilinear`` or ``bicubic`` is antialiased.
The image-level policies built from these (RandAugment, erasing, colour jitter) live in
:mod:`spiking_transformers.data.augment`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "Compose", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRoll", "Normalize", "Resize",
    "ResizeShorter", "CenterCrop", "RandomResizedCrop", "resize", "INTERPOLATIONS",
]

#: Interpolation names accepted by the resizing transforms ("random": bilinear or bicubic, drawn per call, as in
#: timm's training default).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "random")


# ----------------------------------------------------------------------------------------------------------------------
# Random draws: one place, so that every transform takes an optional torch.Generator and falls back to torch's global
# generator (never Python's or numpy's, so one saved RNG state covers them).
# ----------------------------------------------------------------------------------------------------------------------

def _rand(generator: torch.Generator | None = None) -> float:
    """One float in ``[0, 1)`` (float32 draw: the same stream the transforms always used)."""
    return float(torch.rand((), generator=generator))


def _uniform(lo: float, hi: float, generator: torch.Generator | None = None) -> float:
    return lo + (hi - lo) * _rand(generator)


def _randint(lo: int, hi: int, generator: torch.Generator | None = None) -> int:
    """One integer in ``[lo, hi]`` (both ends included)."""
    return int(torch.randint(lo, hi + 1, (), generator=generator))


def _check_interpolation(name: str) -> str:
    if name not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {name!r}")
    return name


def _pick_interpolation(name: str, generator: torch.Generator | None = None) -> str:
    if name == "random":
        return "bilinear" if _rand(generator) < 0.5 else "bicubic"
    return name


def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize the last two dimensions of ``[..., C, H, W]`` to ``size = (h, w)``.

    Shrinking is antialiased and bicubic uses Pillow's kernel, so results match Pillow's ``resize`` to about one
    8-bit level. Bicubic can overshoot; when the input lies in [0, 1] (an image) the output is clamped to [0, 1], as
    8-bit Pillow images are. ``nearest`` takes the pixel whose centre is nearest (Pillow's rule).
    """
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    if interpolation not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"resize: interpolation must be nearest, bilinear or bicubic, got {interpolation!r}")
    lead = x.shape[:-3]
    y = x.reshape(-1, *x.shape[-3:])  # [N, C, H, W] for interpolate
    if interpolation == "nearest":
        y = F.interpolate(y, size=(h, w), mode="nearest-exact")
    else:
        # torch's antialiased kernels are Pillow's (bicubic a = -0.5), also when enlarging; its plain bicubic is not
        # (a = -0.75). Bilinear enlarging is the same either way and keeps the historical non-antialiased path.
        antialias = interpolation == "bicubic" or x.shape[-1] > w or x.shape[-2] > h
        y = F.interpolate(y, size=(h, w), mode=interpolation, align_corners=False, antialias=antialias)
        if interpolation == "bicubic" and x.numel() and float(x.min()) >= 0.0 and float(x.max()) <= 1.0:
            y = y.clamp(0.0, 1.0)
    return y.reshape(*lead, *y.shape[-3:])


class Compose:
    """Apply transforms in order.

    Args:
        transforms: callables ``Tensor -> Tensor``.
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomCrop:
    """Pad by ``padding`` pixels on every side (with ``fill``), then crop a random ``size`` x ``size`` window.

    This is the CIFAR recipe (32x32, padding 4). With ``size`` equal to the input size it is a random translation
    of up to ``padding`` pixels.

    Args:
        size: output height and width.
        padding: pixels of padding added on each side before cropping.
        fill: value of the padded pixels (0 = black for images in [0, 1]; 0 = no events for frames).
        generator: random source (default: torch's global generator).
    """

    def __init__(self, size: int, padding: int = 0, fill: float = 0.0, *,
                 generator: torch.Generator | None = None) -> None:
        if size < 1 or padding < 0:
            raise ValueError(f"RandomCrop needs size >= 1 and padding >= 0, got size={size}, padding={padding}")
        self.size, self.padding, self.fill = int(size), int(padding), float(fill)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            x = F.pad(x, (self.padding,) * 4, value=self.fill)
        h, w = x.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"RandomCrop: input {h}x{w} (after padding) is smaller than the crop {self.size}")
        i = _randint(0, h - self.size, self.generator)
        j = _randint(0, w - self.size, self.generator)
        return x[..., i:i + self.size, j:j + self.size]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class _RandomFlip:
    """Mirror axis ``dim`` with probability ``p`` (subclasses fix the axis)."""

    dim: int

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        self.p = float(p)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if _rand(self.generator) < self.p:
            return x.flip(self.dim)
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror the width axis with probability ``p``.

    Args:
        p: flip probability.
        generator: random source (default: torch's global generator).
    """

    dim = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror the height axis with probability ``p``.

    Args:
        p: flip probability.
        generator: random source (default: torch's global generator).
    """

    dim = -2


class RandomRoll:
    """Cyclically shift the last two dimensions by random offsets in ``[-max_shift, max_shift]`` (each axis).

    The "roll" augmentation used for event frames (what leaves one border re-enters at the other, so no events are
    lost). Use :class:`RandomCrop` with ``padding`` for a translation that drops them instead.

    Args:
        max_shift: largest shift in pixels along height and width.
        generator: random source (default: torch's global generator).
    """

    def __init__(self, max_shift: int, *, generator: torch.Generator | None = None) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_shift == 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-self.max_shift, self.max_shift + 1, (2,), generator=self.generator))
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))

    def __repr__(self) -> str:
        return f"RandomRoll(max_shift={self.max_shift})"


class Normalize:
    """``(x - mean) / std`` per channel (channel axis -3).

    Args:
        mean: one value per channel (or one value for all).
        std: one value per channel (or one value for all); must be positive.
    """

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if (s <= 0).any():
            raise ValueError(f"Normalize: std must be positive, got {s.tolist()}")
        self.mean, self.std = m, s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1)  # broadcasts over [..., C, H, W]
        return (x - self.mean.to(x.dtype).view(shape)) / self.std.to(x.dtype).view(shape)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Resize:
    """Resize the last two dimensions to ``size`` x ``size`` (antialiased when shrinking).

    Args:
        size: output height and width.
        interpolation: ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``.
    """

    def __init__(self, size: int, interpolation: str = "bilinear") -> None:
        if size < 1:
            raise ValueError(f"Resize needs size >= 1, got {size}")
        if _check_interpolation(interpolation) == "random":
            raise ValueError("Resize: 'random' interpolation is for training crops only")
        self.size, self.interpolation = int(size), interpolation

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, (self.size, self.size), self.interpolation)

    def __repr__(self) -> str:
        extra = "" if self.interpolation == "bilinear" else f", interpolation={self.interpolation!r}"
        return f"Resize({self.size}{extra})"


class ResizeShorter:
    """Resize so that the shorter of height and width becomes ``size``, keeping the aspect ratio.

    The evaluation resize of timm / torchvision (``Resize(int)``): the longer side becomes
    ``int(size * long / short)``.

    Args:
        size: length of the shorter side after resizing.
        interpolation: ``"bilinear"``, ``"bicubic"`` (default, timm's evaluation default) or ``"nearest"``.
    """

    def __init__(self, size: int, interpolation: str = "bicubic") -> None:
        if size < 1:
            raise ValueError(f"ResizeShorter needs size >= 1, got {size}")
        if _check_interpolation(interpolation) == "random":
            raise ValueError("ResizeShorter: 'random' interpolation is for training crops only")
        self.size, self.interpolation = int(size), interpolation

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h <= w:
            out = (self.size, int(self.size * w / h))
        else:
            out = (int(self.size * h / w), self.size)
        return resize(x, out, self.interpolation)

    def __repr__(self) -> str:
        return f"ResizeShorter({self.size}, interpolation={self.interpolation!r})"


class CenterCrop:
    """Crop the central ``size`` x ``size`` window (top-left corner at ``round((H - size) / 2)``, as torchvision).

    Args:
        size: output height and width; the input must be at least this large.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"CenterCrop needs size >= 1, got {size}")
        self.size = int(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"CenterCrop: input {h}x{w} is smaller than the crop {self.size}")
        i, j = int(round((h - self.size) / 2.0)), int(round((w - self.size) / 2.0))
        return x[..., i:i + self.size, j:j + self.size]

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomResizedCrop:
    """Crop a random window of random area and aspect ratio, then resize it to ``size`` x ``size``.

    The Inception-style crop of timm's ``RandomResizedCropAndInterpolation`` (same as torchvision's): up to 10 tries
    draw an area fraction uniformly from ``scale`` and an aspect ratio (width / height) log-uniformly from ``ratio``;
    ``w = round(sqrt(area * ratio))``, ``h = round(sqrt(area / ratio))``; the first window that fits is placed
    uniformly at random. If none fits, the whole image is taken, trimmed to the nearest allowed aspect ratio and
    centred. With ``scale=(1, 1)`` (the Spikformer CIFAR recipe) this is almost always the whole image.

    Args:
        size: output height and width.
        scale: range of the window's area as a fraction of the image area.
        ratio: range of the window's aspect ratio (width / height).
        interpolation: resize method (``"random"``: bilinear or bicubic, drawn per call).
        generator: random source (default: torch's global generator).
    """

    def __init__(self, size: int, scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 interpolation: str = "bilinear", *, generator: torch.Generator | None = None) -> None:
        scale, ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)
        if size < 1:
            raise ValueError(f"RandomResizedCrop needs size >= 1, got {size}")
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomResizedCrop: scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop: ratio must be (lo, hi) with 0 < lo <= hi, got {ratio}")
        self.size, self.scale, self.ratio = int(size), scale, ratio
        self.interpolation = _check_interpolation(interpolation)
        self.generator = generator

    def window(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Draw ``(top, left, h, w)`` of the crop for an image of ``height`` x ``width``."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(*self.scale, self.generator)
            aspect = math.exp(_uniform(log_lo, log_hi, self.generator))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return _randint(0, height - h, self.generator), _randint(0, width - w, self.generator), h, w
        in_ratio = width / height  # fallback: central crop at the nearest allowed aspect ratio
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        i, j, h, w = self.window(*x.shape[-2:])
        mode = _pick_interpolation(self.interpolation, self.generator)
        return resize(x[..., i:i + h, j:j + w], (self.size, self.size), mode)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop({self.size}, scale={self.scale}, ratio=({self.ratio[0]:.4g}, {self.ratio[1]:.4g}),"
                f" interpolation={self.interpolation!r})")
