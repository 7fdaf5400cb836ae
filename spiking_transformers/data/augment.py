"""The official image augmentation policies (timm-style) on tensors, and the pipelines a recipe's ``augment`` builds.

The published recipes train with timm's data pipeline: a random resized crop, a horizontal flip, RandAugment
(``rand-m9-n1-mstd0.4-inc1`` and the like) or colour jitter, normalisation, then random erasing; evaluation resizes
to ``floor(img_size / crop_pct)`` and takes the centre crop. This module reproduces those semantics on float tensors
``[C, H, W]`` with values in [0, 1] (torch only; no torchvision, no PIL), with any number of channels:

* **RandAugment** (:class:`RandAugment`, :func:`parse_rand_augment`): timm's op set (:data:`RAND_OPS`, and
  :data:`RAND_OPS_INCREASING` with ``inc1``), each op applied with probability 0.5, ``n`` ops drawn with replacement
  per image, magnitude ``m`` on timm's 0..10 scale, optionally jittered per op by a normal of std ``mstd`` (uniform
  on ``[0, m]`` when ``mstd`` > 100) and clipped to ``[0, 10]`` (``[0, mmax]`` with ``mmax``). Level-to-argument
  mappings (timm's, for ``m`` on 0..10): rotate ``m/10 * 30`` degrees, shear ``m/10 * 0.3``, translate
  ``m/10 * 0.45`` of the size (each with a random sign); enhance factors ``m/10 * 1.8 + 0.1`` (increasing variants:
  ``1 +- m/10 * 0.9``, at least 0.1); posterize ``int(m/10 * 4)`` bits kept (increasing: ``4 -`` that); solarize
  threshold ``int(m/10 * 256)`` on the 8-bit scale (increasing: ``256 -`` that); solarize-add ``int(m/10 * 110)``
  added below 128. Geometric ops fill uncovered pixels with the data set's mean (timm's ``img_mean``) and
  interpolate bilinearly or bicubically (drawn per op unless the recipe fixes ``interpolation``).
* **Pixel semantics** follow Pillow's 8-bit operations, on floats: ``posterize``, ``solarize``, ``solarize_add``
  and ``equalize`` quantise to 256 levels to decide (equalize outputs 8-bit levels, like Pillow's look-up table);
  ``auto_contrast`` stretches each channel to [0, 1]; enhance ops blend with Pillow's degenerate images (black for
  brightness, the mean grey level for contrast, the grey image for colour, a 3x3 smoothed image with the border
  kept for sharpness) and clip to [0, 1]. Geometry uses Pillow's convention (pixel ``i`` covers ``[i, i + 1)``;
  positive rotation angles turn the image counter-clockwise; shears are about the top-left corner, as in timm;
  bicubic warps use Pillow's a = -1 cubic kernel). Every op agrees with Pillow to one 8-bit level (tested).
* **Channels**: grey levels use ITU-R 601 weights (0.299, 0.587, 0.114) for 3 channels. With any other channel count
  (1-channel digits, 2-channel event frames) colour saturation ("Color") and hue are no-ops, and contrast blends with
  the mean over all channels. Every other op works per channel.
* :class:`ColorJitter` (torchvision's semantics: brightness, contrast, saturation factors uniform in
  ``[max(0, 1 - v), 1 + v]``, hue shift in ``[-h, h]``, applied in a random order) and :class:`RandomErasing`
  (timm's: probability ``p``, area fraction uniform in ``[0.02, 1/3]``, aspect ratio log-uniform in
  ``[0.3, 1/0.3]``, 10 tries, modes ``const`` / ``rand`` / ``pixel``).

Randomness: every transform takes an optional ``torch.Generator`` and otherwise draws from torch's global generator
(never Python's ``random`` or numpy), so ``torch.manual_seed`` fixes it and the trainer's checkpoints, which store
torch's RNG state, resume a run bit for bit (with ``num_workers=0``).

Where our reading differs from or extends timm (documented choices): a malformed policy string raises
``ValueError`` naming the bad token (timm asserts, and silently skips a token without digits); ``inc0`` means
"off" (timm turns the increasing set on for any ``inc`` value); a key given twice is an error; the newer-timm
``t`` token (custom op sets) is not supported. Colour jitter is *not* applied when a RandAugment policy is set,
as in timm (several SDT recipes record ``color_jitter`` next to RandAugment: it had no effect there); set
``force_color_jitter: true`` to apply both (jitter after RandAugment, as newer timm does when forced).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from .transforms import (
    CenterCrop,
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
    ResizeShorter,
    _check_interpolation,
    _pick_interpolation,
    _rand,
    _randint,
    _uniform,
)

__all__ = [
    # functional ops on [..., C, H, W] floats in [0, 1]
    "grayscale", "affine", "rotate", "shear_x", "shear_y", "translate_x", "translate_y", "invert", "posterize",
    "solarize", "solarize_add", "auto_contrast", "equalize", "adjust_brightness", "adjust_contrast",
    "adjust_saturation", "adjust_sharpness", "adjust_hue",
    # RandAugment
    "RAND_OPS", "RAND_OPS_INCREASING", "RandAugmentConfig", "parse_rand_augment", "AugmentOp", "RandAugment",
    # other random transforms
    "ColorJitter", "RandomErasing",
    # recipe policies
    "AugmentPolicy", "validate_augment", "build_train_transform", "build_eval_transform", "eval_scale_size",
]

log = logging.getLogger(__name__)

Fill = float | Sequence[float]


# ----------------------------------------------------------------------------------------------------------------------
# Functional ops. Inputs are float [..., C, H, W] in [0, 1]; leading dimensions are independent images for the
# statistics (contrast mean, histograms), the same geometry for all.
# ----------------------------------------------------------------------------------------------------------------------

def _u8(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit level (0..255, as floats) a Pillow image would hold for ``x``."""
    return (x * 255.0).round().clamp(0.0, 255.0)


def _in_unit_range(x: torch.Tensor) -> bool:
    return x.numel() > 0 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Grey levels ``[..., 1, H, W]`` of an RGB ``[..., 3, H, W]`` (ITU-R 601: 0.299 R + 0.587 G + 0.114 B)."""
    if x.shape[-3] != 3:
        raise ValueError(f"grayscale needs 3 channels, got {x.shape[-3]}")
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: float) -> torch.Tensor:
    # Pillow's ImageEnhance: factor 0 gives the degenerate image, 1 the original; clipped like 8-bit pixels.
    return (degenerate + factor * (x - degenerate)).clamp(0.0, 1.0)


def affine(x: torch.Tensor, matrix: Sequence[float], *, fill: Fill = 0.5,
           interpolation: str = "bilinear") -> torch.Tensor:
    """Inverse affine warp in Pillow's convention.

    The output point ``(u, v)`` (continuous coordinates, pixel ``i`` covering ``[i, i + 1)``, origin at the top-left
    corner) takes the input at ``(a u + b v + c, d u + e v + f)`` for ``matrix = (a, b, c, d, e, f)``. Output pixels
    whose source lies outside the image get ``fill`` (one value, or one per channel).

    Args:
        x: ``[..., C, H, W]``.
        matrix: the six coefficients above.
        fill: value of uncovered pixels.
        interpolation: ``"nearest"``, ``"bilinear"`` or ``"bicubic"`` (bicubic output is clamped to [0, 1] for
            inputs in [0, 1]).

    Returns:
        ``[..., C, H, W]``.
    """
    if interpolation not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"affine: interpolation must be nearest, bilinear or bicubic, got {interpolation!r}")
    h, w = x.shape[-2:]
    a, b, c, d, e, f = (float(m) for m in matrix)
    # Coordinates in float64 so that exact cases (90 degree turns, whole-pixel shifts) land on pixel centres.
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    xi, yi = a * u + b * v + c, d * u + e * v + f
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    grid = torch.stack((2.0 * xi / w - 1.0, 2.0 * yi / h - 1.0), dim=-1).to(x.dtype)  # [H, W, 2], align_corners=False
    y = x.reshape(-1, *x.shape[-3:])
    if interpolation == "bicubic":
        out = _bicubic_sample(y, xi, yi)
    else:
        # Border padding: pixels just inside the edge interpolate with their own values, not with zeros; pixels
        # outside are replaced by `fill` below, which is Pillow's behaviour.
        out = F.grid_sample(y, grid.unsqueeze(0).expand(y.shape[0], -1, -1, -1), mode=interpolation,
                            padding_mode="border", align_corners=False)
    if interpolation == "bicubic" and _in_unit_range(x):
        out = out.clamp(0.0, 1.0)
    fill_t = torch.as_tensor(fill, dtype=x.dtype).reshape(-1, 1, 1)
    out = torch.where(inside.to(out.device), out, fill_t)
    return out.reshape(x.shape)


def _cubic_weights(d: torch.Tensor) -> torch.Tensor:
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractional positions ``d``: ``[..., 4]``.

    Pillow's geometric transforms use the cubic convolution kernel with a = -1 (its resize uses a = -0.5, torch's
    grid_sample a = -0.75), so affine warps get their own sampler to match Pillow.
    """
    def near(t: torch.Tensor) -> torch.Tensor:  # |t| <= 1
        return t ** 3 - 2 * t ** 2 + 1

    def far(t: torch.Tensor) -> torch.Tensor:  # 1 < |t| < 2
        return -t ** 3 + 5 * t ** 2 - 8 * t + 4

    return torch.stack((far(1 + d), near(d), near(1 - d), far(2 - d)), dim=-1)


def _bicubic_sample(y: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
    """Sample ``y`` ``[N, C, H, W]`` at continuous points ``(xi, yi)`` ``[Ho, Wo]`` (float64), edge-clamped taps."""
    h, w = y.shape[-2:]
    ix, iy = xi - 0.5, yi - 0.5  # pixel-centre coordinates
    x0, y0 = torch.floor(ix), torch.floor(iy)
    wx, wy = _cubic_weights(ix - x0), _cubic_weights(iy - y0)  # [Ho, Wo, 4]
    taps = torch.arange(-1, 3, dtype=torch.int64)
    xs = (x0.to(torch.int64).unsqueeze(-1) + taps).clamp(0, w - 1)  # [Ho, Wo, 4]
    ys = (y0.to(torch.int64).unsqueeze(-1) + taps).clamp(0, h - 1)
    idx = ys.unsqueeze(-1) * w + xs.unsqueeze(-2)  # [Ho, Wo, 4 (y), 4 (x)]
    weights = (wy.unsqueeze(-1) * wx.unsqueeze(-2)).to(y.dtype)
    vals = y.reshape(*y.shape[:2], h * w)[..., idx]  # [N, C, Ho, Wo, 4, 4]
    return (vals * weights).sum(dim=(-2, -1))


def rotate(x: torch.Tensor, degrees: float, *, fill: Fill = 0.5, interpolation: str = "bilinear") -> torch.Tensor:
    """Rotate ``degrees`` counter-clockwise about the image centre (Pillow's ``Image.rotate``), same size."""
    h, w = x.shape[-2:]
    cx, cy = w / 2.0, h / 2.0
    t = math.radians(degrees)
    # Rounded to 15 digits as Pillow does, so that multiples of 90 degrees are exact permutations.
    cos, sin = round(math.cos(t), 15), round(math.sin(t), 15)
    matrix = (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
    return affine(x, matrix, fill=fill, interpolation=interpolation)


def shear_x(x: torch.Tensor, factor: float, *, fill: Fill = 0.5, interpolation: str = "bilinear") -> torch.Tensor:
    """Horizontal shear about the top-left corner: output ``(u, v)`` takes input ``(u + factor v, v)``."""
    return affine(x, (1.0, factor, 0.0, 0.0, 1.0, 0.0), fill=fill, interpolation=interpolation)


def shear_y(x: torch.Tensor, factor: float, *, fill: Fill = 0.5, interpolation: str = "bilinear") -> torch.Tensor:
    """Vertical shear about the top-left corner: output ``(u, v)`` takes input ``(u, v + factor u)``."""
    return affine(x, (1.0, 0.0, 0.0, factor, 1.0, 0.0), fill=fill, interpolation=interpolation)


def translate_x(x: torch.Tensor, pixels: float, *, fill: Fill = 0.5,
                interpolation: str = "bilinear") -> torch.Tensor:
    """Output ``(u, v)`` takes input ``(u + pixels, v)``: positive ``pixels`` moves the content left."""
    return affine(x, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill=fill, interpolation=interpolation)


def translate_y(x: torch.Tensor, pixels: float, *, fill: Fill = 0.5,
                interpolation: str = "bilinear") -> torch.Tensor:
    """Output ``(u, v)`` takes input ``(u, v + pixels)``: positive ``pixels`` moves the content up."""
    return affine(x, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill=fill, interpolation=interpolation)


def invert(x: torch.Tensor) -> torch.Tensor:
    """``1 - x``."""
    return 1.0 - x


def posterize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the ``bits`` most significant bits of each 8-bit level (0 bits: black; 8 or more: unchanged)."""
    bits = int(bits)
    if bits >= 8:
        return x
    step = 2.0 ** (8 - max(bits, 0))
    return torch.div(_u8(x), step, rounding_mode="floor") * step / 255.0


def solarize(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert the pixels whose 8-bit level is ``>= threshold`` (0..256; 256 changes nothing, 0 inverts all)."""
    return torch.where(_u8(x) >= threshold, 1.0 - x, x)


def solarize_add(x: torch.Tensor, add: float, threshold: float = 128) -> torch.Tensor:
    """Add ``add / 255`` (clipped at 1) to the pixels whose 8-bit level is ``< threshold``."""
    return torch.where(_u8(x) < threshold, (x + add / 255.0).clamp(max=1.0), x)


def auto_contrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel linearly so its minimum becomes 0 and maximum 1 (flat channels are left alone)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per channel with Pillow's 8-bit look-up rule.

    With ``h`` the 256-bin histogram of a channel and ``step = (N - count of the highest level present) // 255``,
    level ``i`` maps to ``min(255, (step // 2 + sum(h[:i])) // step)``; a channel with ``step == 0`` (fewer than
    about 256 pixels outside its top level, or a single level) is unchanged.
    """
    h, w = x.shape[-2:]
    levels = _u8(x).to(torch.int64).reshape(-1, h * w)  # one row per (image, channel)
    hist = torch.zeros(levels.shape[0], 256, dtype=torch.int64).scatter_add_(1, levels, torch.ones_like(levels))
    top = 255 - (hist > 0).flip(1).to(torch.int64).argmax(1, keepdim=True)  # highest level present
    step = (levels.shape[1] - hist.gather(1, top)) // 255  # [R, 1]
    below = hist.cumsum(1) - hist  # pixels strictly below each level
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp(max=255)
    out = lut.gather(1, levels).to(x.dtype) / 255.0
    out = torch.where(step > 0, out, x.reshape(-1, h * w))
    return out.reshape(x.shape)


def adjust_brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black: ``clip(x * factor)``."""
    return _blend(torch.zeros_like(x), x, factor)


def adjust_contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's mean grey level (mean over all channels when there are not 3)."""
    ref = grayscale(x) if x.shape[-3] == 3 else x
    return _blend(ref.mean(dim=(-3, -2, -1), keepdim=True), x, factor)


def adjust_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the grey image (Pillow's "Color" enhance); a no-op unless there are 3 channels."""
    if x.shape[-3] != 3:
        return x
    return _blend(grayscale(x), x, factor)


def adjust_sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with a 3x3 smoothed copy (kernel ``[[1,1,1],[1,5,1],[1,1,1]] / 13``; border pixels unsmoothed)."""
    h, w = x.shape[-2:]
    if h < 3 or w < 3:
        return x  # no interior: the degenerate image equals the input
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=x.dtype) / 13.0
    y = x.reshape(-1, 1, h, w)
    degenerate = y.clone()
    degenerate[..., 1:-1, 1:-1] = F.conv2d(y, k.view(1, 1, 3, 3))
    return _blend(degenerate.reshape(x.shape), x, factor)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-3)
    maxc, minc = x.amax(-3), x.amin(-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack((hue, s, maxc), -3)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = [torch.zeros_like(v) for _ in range(3)]
    for k, triple in enumerate(choices):
        sel = i == k
        out = [torch.where(sel, c, o) for c, o in zip(triple, out)]
    return torch.stack(out, -3)


def adjust_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (in ``[-0.5, 0.5]``); a no-op unless there are 3 channels."""
    if x.shape[-3] != 3 or shift == 0:
        return x
    hsv = _rgb_to_hsv(x.clamp(0.0, 1.0))
    hsv = torch.stack(((hsv[..., 0, :, :] + shift) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]), -3)
    return _hsv_to_rgb(hsv)


# ----------------------------------------------------------------------------------------------------------------------
# RandAugment
# ----------------------------------------------------------------------------------------------------------------------

#: timm's RandAugment op set (``rand-...`` without ``inc``), in timm's order.
RAND_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
            "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
#: The set with ``inc1``: posterize, solarize and the enhance ops get stronger as the magnitude grows.
RAND_OPS_INCREASING = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
                       "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                       "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
# timm's experimental op-choice weights (``w0``), by base op name; normalised over the ops in use.
_CHOICE_WEIGHTS_0 = {"Rotate": 0.3, "ShearX": 0.2, "ShearY": 0.2, "TranslateXRel": 0.1, "TranslateYRel": 0.1,
                     "Color": 0.025, "Sharpness": 0.025, "AutoContrast": 0.025, "Solarize": 0.005,
                     "SolarizeAdd": 0.005, "Contrast": 0.005, "Brightness": 0.005, "Equalize": 0.005,
                     "Posterize": 0.0, "Invert": 0.0}
_LEVEL_DENOM = 10.0  # magnitudes are on timm's 0..10 scale
_GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}


def _negate(v: float, generator: torch.Generator | None) -> float:
    return -v if _rand(generator) > 0.5 else v


def _enhance(m: float, _g: torch.Generator | None) -> float:
    return m / _LEVEL_DENOM * 1.8 + 0.1


def _enhance_increasing(m: float, g: torch.Generator | None) -> float:
    return max(0.1, 1.0 + _negate(m / _LEVEL_DENOM * 0.9, g))


def _posterize_bits(m: float, _g: torch.Generator | None) -> int:
    return int(m / _LEVEL_DENOM * 4)


def _solarize_threshold(m: float, _g: torch.Generator | None) -> int:
    return min(256, int(m / _LEVEL_DENOM * 256))


# Level (magnitude, generator) -> the op's argument; None: the op takes no argument.
_LEVEL_TO_ARG: dict[str, Callable[[float, torch.Generator | None], float] | None] = {
    "AutoContrast": None, "Equalize": None, "Invert": None,
    "Rotate": lambda m, g: _negate(m / _LEVEL_DENOM * 30.0, g),
    "Posterize": _posterize_bits,
    "PosterizeIncreasing": lambda m, g: 4 - _posterize_bits(m, g),
    "Solarize": _solarize_threshold,
    "SolarizeIncreasing": lambda m, g: 256 - _solarize_threshold(m, g),
    "SolarizeAdd": lambda m, g: min(128, int(m / _LEVEL_DENOM * 110)),
    "Color": _enhance, "Contrast": _enhance, "Brightness": _enhance, "Sharpness": _enhance,
    "ColorIncreasing": _enhance_increasing, "ContrastIncreasing": _enhance_increasing,
    "BrightnessIncreasing": _enhance_increasing, "SharpnessIncreasing": _enhance_increasing,
    "ShearX": lambda m, g: _negate(m / _LEVEL_DENOM * 0.3, g),
    "ShearY": lambda m, g: _negate(m / _LEVEL_DENOM * 0.3, g),
    "TranslateXRel": lambda m, g: _negate(m / _LEVEL_DENOM * 0.45, g),
    "TranslateYRel": lambda m, g: _negate(m / _LEVEL_DENOM * 0.45, g),
}


def _apply_op(name: str, x: torch.Tensor, arg: float | None, fill: Fill, interpolation: str) -> torch.Tensor:
    base = name.removesuffix("Increasing")
    geo = {"fill": fill, "interpolation": interpolation}
    if base == "AutoContrast":
        return auto_contrast(x)
    if base == "Equalize":
        return equalize(x)
    if base == "Invert":
        return invert(x)
    if base == "Rotate":
        return rotate(x, arg, **geo)
    if base == "Posterize":
        return posterize(x, int(arg))
    if base == "Solarize":
        return solarize(x, arg)
    if base == "SolarizeAdd":
        return solarize_add(x, arg)
    if base == "Color":
        return adjust_saturation(x, arg)
    if base == "Contrast":
        return adjust_contrast(x, arg)
    if base == "Brightness":
        return adjust_brightness(x, arg)
    if base == "Sharpness":
        return adjust_sharpness(x, arg)
    if base == "ShearX":
        return shear_x(x, arg, **geo)
    if base == "ShearY":
        return shear_y(x, arg, **geo)
    if base == "TranslateXRel":
        return translate_x(x, arg * x.shape[-1], **geo)  # a fraction of the width, as timm
    if base == "TranslateYRel":
        return translate_y(x, arg * x.shape[-2], **geo)
    raise ValueError(f"unknown RandAugment op {name!r}")


@dataclass(frozen=True)
class RandAugmentConfig:
    """A parsed ``rand-...`` policy (see :func:`parse_rand_augment`).

    Attributes:
        magnitude: ``m`` (timm's 0..10 scale; default 10).
        num_layers: ``n``, ops per image (default 2).
        magnitude_std: ``mstd``; ``inf`` for uniform sampling on ``[0, m]`` (default 0: fixed magnitude).
        magnitude_max: ``mmax``, upper clip of the magnitude (default ``None``: 10).
        increasing: ``inc1``: use :data:`RAND_OPS_INCREASING`.
        prob: ``p``, probability that each drawn op is applied (default 0.5).
        weight_idx: ``w0``: timm's op-choice weights (ops then drawn without replacement); ``None``: uniform.
    """

    magnitude: float = 10.0
    num_layers: int = 2
    magnitude_std: float = 0.0
    magnitude_max: float | None = None
    increasing: bool = False
    prob: float = 0.5
    weight_idx: int | None = None

    @property
    def ops(self) -> tuple[str, ...]:
        return RAND_OPS_INCREASING if self.increasing else RAND_OPS

    def weights(self) -> torch.Tensor | None:
        """Op-choice probabilities (``w0``) over :attr:`ops`, or ``None`` for a uniform choice."""
        if self.weight_idx is None:
            return None
        w = torch.tensor([_CHOICE_WEIGHTS_0[op.removesuffix("Increasing")] for op in self.ops], dtype=torch.float64)
        return w / w.sum()


_RA_TOKEN = re.compile(r"^([a-z]+)(.*)$")
_RA_KEYS = {"m": "magnitude", "n": "ops per image", "mstd": "magnitude std", "mmax": "magnitude clip",
            "inc": "increasing op set (0/1)", "p": "op probability", "w": "op-choice weights (w0)"}


def parse_rand_augment(policy: str) -> RandAugmentConfig:
    """Parse timm's RandAugment string, e.g. ``"rand-m9-n1-mstd0.4-inc1"``.

    Tokens are separated by ``-``; the first is ``rand``; then, in any order: ``m<float>`` magnitude (0..10 scale),
    ``n<int>`` ops per image, ``mstd<float>`` magnitude noise (> 100: uniform on ``[0, m]``), ``mmax<float>``
    magnitude clip, ``inc<0|1>`` increasing op set, ``p<float>`` op probability, ``w0`` timm's op-choice weights.

    Raises:
        ValueError: naming the malformed token (unknown key, missing or bad value, repeated key).
    """
    if not isinstance(policy, str):
        raise ValueError(f"RandAugment policy must be a string like 'rand-m9-n2-mstd0.5', got {policy!r}")
    tokens = policy.strip().split("-")
    if tokens[0] != "rand":
        raise ValueError(f"RandAugment policy {policy!r}: bad token {tokens[0]!r}: the policy must start with "
                         f"'rand' (e.g. 'rand-m9-n2-mstd0.5-inc1')")
    values: dict[str, Any] = {}
    for tok in tokens[1:]:
        match = _RA_TOKEN.match(tok)
        key, val = (match.group(1), match.group(2)) if match else (tok, "")

        def bad(why: str, tok: str = tok) -> ValueError:
            return ValueError(f"RandAugment policy {policy!r}: bad token {tok!r}: {why}")

        if key == "t":
            raise bad("custom op sets ('t...', newer timm) are not supported")
        if key not in _RA_KEYS:
            known = ", ".join(f"{k} ({v})" for k, v in _RA_KEYS.items())
            raise bad(f"unknown key {key!r}; known keys: {known}" if key else "empty or not '<key><number>'")
        if key in values:
            raise bad(f"{key!r} is given twice")
        if val == "":
            raise bad(f"{key!r} needs a number (e.g. '{key}1')")
        rule = {"n": "a non-negative integer", "inc": "0 or 1", "w": "0 (the only weight set)",
                "p": "a number in [0, 1]", "mmax": "a positive number"}.get(key, "a non-negative number")
        try:
            num: float = int(val) if key in ("n", "inc", "w") else float(val)
        except ValueError:
            raise bad(f"{key!r} must be {rule}, got {val!r}") from None
        ok = math.isfinite(num) and num >= 0
        if key == "inc":
            ok = num in (0, 1)
        elif key == "w":
            ok = num == 0
        elif key == "p":
            ok = ok and num <= 1
        elif key == "mmax":
            ok = ok and num > 0
        if not ok:
            raise bad(f"{key!r} must be {rule}, got {val!r}")
        values[key] = num
    mstd = float(values.get("mstd", 0.0))
    cfg = RandAugmentConfig(
        magnitude=float(values.get("m", _LEVEL_DENOM)), num_layers=int(values.get("n", 2)),
        magnitude_std=math.inf if mstd > 100 else mstd, magnitude_max=values.get("mmax"),
        increasing=bool(values.get("inc", 0)), prob=float(values.get("p", 0.5)), weight_idx=values.get("w"))
    if cfg.weight_idx is not None:
        nonzero = int((cfg.weights() > 0).sum())
        if cfg.num_layers > nonzero:
            raise ValueError(f"RandAugment policy {policy!r}: bad token 'n{cfg.num_layers}': w0 draws ops without "
                             f"replacement and gives only {nonzero} ops a non-zero weight")
    return cfg


class AugmentOp:
    """One RandAugment op: applied with probability ``prob``, at a (possibly jittered) magnitude.

    Args:
        name: an op of :data:`RAND_OPS` or :data:`RAND_OPS_INCREASING`.
        prob: probability of applying the op on a call.
        magnitude: mean magnitude (0..10 scale).
        magnitude_std: per-call normal jitter of the magnitude (``inf``: uniform on ``[0, magnitude]``).
        magnitude_max: upper clip of the magnitude (``None``: 10).
        fill: value (or per-channel values) of pixels uncovered by geometric ops.
        interpolation: ``"bilinear"``, ``"bicubic"``, ``"nearest"`` or ``"random"`` (bilinear or bicubic per call).
        generator: random source (default: torch's global generator).
    """

    def __init__(self, name: str, *, prob: float = 0.5, magnitude: float = 10.0, magnitude_std: float = 0.0,
                 magnitude_max: float | None = None, fill: Fill = 0.5, interpolation: str = "random",
                 generator: torch.Generator | None = None) -> None:
        if name not in _LEVEL_TO_ARG:
            raise ValueError(f"unknown RandAugment op {name!r}; known: {', '.join(_LEVEL_TO_ARG)}")
        self.name, self.prob, self.magnitude = name, float(prob), float(magnitude)
        self.magnitude_std, self.magnitude_max = float(magnitude_std), magnitude_max
        self.fill = tuple(float(f) for f in fill) if isinstance(fill, Sequence) else float(fill)
        self.interpolation = _check_interpolation(interpolation)
        self.generator = generator

    def level(self) -> float:
        """Draw this call's magnitude: jittered, then clipped to ``[0, magnitude_max or 10]``."""
        m = self.magnitude
        if self.magnitude_std == math.inf:
            m = _uniform(0.0, m, self.generator)
        elif self.magnitude_std > 0:
            m = m + self.magnitude_std * float(torch.randn((), generator=self.generator))
        return max(0.0, min(m, self.magnitude_max or _LEVEL_DENOM))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.prob < 1.0 and _rand(self.generator) > self.prob:
            return x
        level_fn = _LEVEL_TO_ARG[self.name]
        arg = level_fn(self.level(), self.generator) if level_fn is not None else None
        interp = _pick_interpolation(self.interpolation, self.generator) if self.name in _GEOMETRIC else "bilinear"
        return _apply_op(self.name, x, arg, self.fill, interp)

    def __repr__(self) -> str:
        return f"AugmentOp({self.name}, p={self.prob}, m={self.magnitude:g}, mstd={self.magnitude_std:g})"


class RandAugment:
    """timm's RandAugment from its policy string: ``n`` ops drawn per image, each applied with probability ``p``.

    Ops are drawn uniformly with replacement (or, with ``w0``, by timm's weights without replacement).

    Args:
        policy: a string such as ``"rand-m9-n1-mstd0.4-inc1"`` (:func:`parse_rand_augment`) or a parsed config.
        fill: value (or per-channel values, in [0, 1] pixel units) of pixels uncovered by geometric ops; the
            pipelines pass the data set's mean, as timm passes ``img_mean``.
        interpolation: for geometric ops; ``"random"`` (timm's default) draws bilinear or bicubic per op.
        generator: random source (default: torch's global generator).

    Input and output: float ``[C, H, W]`` (or ``[..., C, H, W]``) in [0, 1].
    """

    def __init__(self, policy: str | RandAugmentConfig, *, fill: Fill = 0.5, interpolation: str = "random",
                 generator: torch.Generator | None = None) -> None:
        self.policy = policy if isinstance(policy, str) else None
        self.config = parse_rand_augment(policy) if isinstance(policy, str) else policy
        c = self.config
        self.generator = generator
        self.ops = [AugmentOp(name, prob=c.prob, magnitude=c.magnitude, magnitude_std=c.magnitude_std,
                              magnitude_max=c.magnitude_max, fill=fill, interpolation=interpolation,
                              generator=generator) for name in c.ops]
        self.weights = c.weights()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = self.config.num_layers
        if n == 0:
            return x
        if self.weights is None:
            idx = torch.randint(len(self.ops), (n,), generator=self.generator)
        else:
            idx = torch.multinomial(self.weights, n, replacement=False, generator=self.generator)
        for i in idx.tolist():
            x = self.ops[i](x)
        return x

    def __repr__(self) -> str:
        c = self.config
        name = f"{self.policy!r}: " if self.policy else ""
        return (f"RandAugment({name}n={c.num_layers}, m={c.magnitude:g}, mstd={c.magnitude_std:g}, "
                f"{'increasing' if c.increasing else 'standard'} ops, p={c.prob:g}"
                f"{', w0' if c.weight_idx is not None else ''})")


# ----------------------------------------------------------------------------------------------------------------------
# Colour jitter and random erasing
# ----------------------------------------------------------------------------------------------------------------------

class ColorJitter:
    """Random brightness, contrast, saturation and hue, in a random order (torchvision's semantics).

    Factors are drawn uniformly from ``[max(0, 1 - v), 1 + v]`` for brightness, contrast and saturation, the hue
    shift from ``[-hue, hue]`` (turns). Saturation and hue are no-ops unless the image has 3 channels; contrast
    uses the mean over all channels then (see the module docstring).

    Args:
        brightness, contrast, saturation: jitter strengths (0: off).
        hue: hue jitter in ``[0, 0.5]`` (0: off).
        generator: random source (default: torch's global generator).
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0, *,
                 generator: torch.Generator | None = None) -> None:
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if v < 0:
                raise ValueError(f"ColorJitter: {name} must be >= 0, got {v}")
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = (float(brightness), float(contrast),
                                                                     float(saturation), float(hue))
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for k in torch.randperm(4, generator=self.generator).tolist():
            if k == 0 and self.brightness > 0:
                x = adjust_brightness(x, _uniform(max(0.0, 1 - self.brightness), 1 + self.brightness, self.generator))
            elif k == 1 and self.contrast > 0:
                x = adjust_contrast(x, _uniform(max(0.0, 1 - self.contrast), 1 + self.contrast, self.generator))
            elif k == 2 and self.saturation > 0:
                x = adjust_saturation(x, _uniform(max(0.0, 1 - self.saturation), 1 + self.saturation,
                                                  self.generator))
            elif k == 3 and self.hue > 0:
                x = adjust_hue(x, _uniform(-self.hue, self.hue, self.generator))
        return x

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness:g}, contrast={self.contrast:g}, "
                f"saturation={self.saturation:g}, hue={self.hue:g})")


class RandomErasing:
    """timm's random erasing: with probability ``p``, replace 1 (up to ``max_count``) random rectangles.

    Each rectangle: up to 10 tries draw an area ``uniform(scale) * H * W / count`` and an aspect ratio log-uniform in
    ``ratio``, ``h = round(sqrt(area * ratio))``, ``w = round(sqrt(area / ratio))``; the first with ``h < H`` and
    ``w < W`` is placed uniformly at random. Fill values are defined in the *normalised* space, as timm erases after
    normalisation: ``const`` 0, ``rand`` one normal value per channel, ``pixel`` one normal value per pixel and
    channel. Placed before normalisation (our data sets normalise last), pass the data set's ``mean`` and ``std``:
    the fill becomes ``mean + std * value``, which normalises to exactly timm's fill.

    Args:
        p: probability of erasing anything.
        scale: range of the erased area per rectangle, as a fraction of the image (divided by the count).
        ratio: range of the aspect ratio (height / width).
        mode: ``"const"``, ``"rand"`` or ``"pixel"``.
        max_count: largest number of rectangles (``> 1``: the count is drawn uniformly in ``[1, max_count]``).
        mean, std: per-channel normalisation of the data (defaults 0 and 1: the input is already normalised).
        generator: random source (default: torch's global generator).

    Input and output: ``[C, H, W]`` (leading dimensions share the rectangle).
    """

    def __init__(self, p: float = 0.5, *, scale: Sequence[float] = (0.02, 1 / 3),
                 ratio: Sequence[float] = (0.3, 1 / 0.3), mode: str = "const", max_count: int = 1, mean: Fill = 0.0, std: Fill = 1.0,
                 generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        if mode not in ("const", "rand", "pixel"):
            raise ValueError(f"RandomErasing: mode must be 'const', 'rand' or 'pixel', got {mode!r}")
        if max_count < 1:
            raise ValueError(f"RandomErasing: max_count must be >= 1, got {max_count}")
        self.p, self.mode, self.max_count = float(p), mode, int(max_count)
        self.scale = (float(scale[0]), float(scale[1]))
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if _rand(self.generator) >= self.p:
            return x
        c, h, w = x.shape[-3:]
        area = h * w
        count = self.max_count if self.max_count == 1 else _randint(1, self.max_count, self.generator)
        x = x.clone()
        for _ in range(count):
            for _attempt in range(10):
                target = _uniform(*self.scale, self.generator) * area / count
                aspect = math.exp(_uniform(*self.log_ratio, self.generator))
                eh = int(round(math.sqrt(target * aspect)))
                ew = int(round(math.sqrt(target / aspect)))
                if ew < w and eh < h:
                    top, left = _randint(0, h - eh, self.generator), _randint(0, w - ew, self.generator)
                    x[..., top:top + eh, left:left + ew] = self._fill(c, eh, ew, x.dtype)
                    break
        return x

    def _fill(self, c: int, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        if self.mode == "pixel":
            z = torch.randn((c, h, w), generator=self.generator)
        elif self.mode == "rand":
            z = torch.randn((c, 1, 1), generator=self.generator)
        else:
            z = torch.zeros((c, 1, 1))
        return (self.mean + self.std * z).to(dtype)

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p:g}, mode={self.mode!r}, max_count={self.max_count})"


# ----------------------------------------------------------------------------------------------------------------------
# Recipe policies: TrainConfig.augment -> train / eval pipelines
# ----------------------------------------------------------------------------------------------------------------------

# Keys of event-data recipes: recorded there; event data sets apply their own standard augmentation.
_EVENT_ONLY_KEYS = ("snn_augment_wide",)


@dataclass(frozen=True)
class AugmentPolicy:
    """The ``augment`` section of a recipe, with timm's ``train.py`` defaults for the keys a recipe leaves out.

    Training pipeline (timm's order): random resized crop to ``img_size`` (``crop_scale``, ``crop_ratio``,
    ``interpolation``) -> horizontal flip (``hflip``) -> vertical flip (``vflip``) -> RandAugment (``randaugment``)
    or else colour jitter (``color_jitter``; both with ``force_color_jitter``) -> [normalisation, by the data set]
    -> random erasing (``random_erasing`` probability, ``erasing_mode``, ``erasing_count``).

    Evaluation: resize the shorter side to ``eval_resize`` (or ``floor(img_size / crop_pct)``) with
    ``eval_interpolation``, then the centre ``img_size`` crop; nothing when that size equals ``img_size``. Where a
    recipe gives no ``crop_pct`` we take 1.0 (no crop); timm itself would fall back to the model's default
    (often 0.875), so recipes state it where the source does.

    Attributes:
        randaugment: RandAugment policy string (``None``: off).
        hflip, vflip: flip probabilities (timm defaults 0.5 and 0).
        crop_scale, crop_ratio: random resized crop area and aspect ranges (timm defaults (0.08, 1) and (3/4, 4/3)).
        interpolation: crop and RandAugment interpolation (``"random"``, timm's training default, draws bilinear or
            bicubic per call).
        color_jitter: one strength for brightness, contrast and saturation, or 3 or 4 values (with hue).
        force_color_jitter: apply colour jitter even with RandAugment.
        random_erasing: erasing probability (0: off); erasing_mode ``"pixel"`` (timm train.py's default), ``"rand"``
            or ``"const"``; erasing_count: largest number of rectangles.
        crop_pct, eval_resize, eval_interpolation: evaluation resize (see above; eval interpolation default bicubic).
    """

    randaugment: str | None = None
    hflip: float = 0.5
    vflip: float = 0.0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "random"
    color_jitter: float | tuple[float, ...] | None = None
    force_color_jitter: bool = False
    random_erasing: float = 0.0
    erasing_mode: str = "pixel"
    erasing_count: int = 1
    crop_pct: float | None = None
    eval_resize: int | None = None
    eval_interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("hflip", "vflip", "random_erasing"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {v}")
            fix(name, v)
        for name in ("crop_scale", "crop_ratio"):
            v = getattr(self, name)
            if not isinstance(v, Sequence) or len(v) != 2 or not 0 < float(v[0]) <= float(v[1]):
                raise ValueError(f"augment.{name} must be [lo, hi] with 0 < lo <= hi, got {v!r}")
            fix(name, (float(v[0]), float(v[1])))
        try:
            _check_interpolation(self.interpolation)
            if _check_interpolation(self.eval_interpolation) == "random":
                raise ValueError("'random' is for training only")
        except ValueError as exc:
            raise ValueError(f"augment interpolation: {exc}") from None
        if self.randaugment is not None:
            parse_rand_augment(self.randaugment)
        cj = self.color_jitter
        if cj is not None:
            vals = (float(cj),) * 3 if isinstance(cj, (int, float)) else tuple(float(v) for v in cj)
            if len(vals) not in (3, 4) or min(vals) < 0:
                raise ValueError(f"augment.color_jitter must be one number >= 0 or 3 / 4 of them, got {cj!r}")
            fix("color_jitter", float(cj) if isinstance(cj, (int, float)) else vals)
        if self.erasing_mode not in ("const", "rand", "pixel"):
            raise ValueError(f"augment.erasing_mode must be 'const', 'rand' or 'pixel', got {self.erasing_mode!r}")
        if int(self.erasing_count) < 1:
            raise ValueError(f"augment.erasing_count must be >= 1, got {self.erasing_count}")
        if self.crop_pct is not None and not 0.0 < float(self.crop_pct) <= 1.0:
            raise ValueError(f"augment.crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.eval_resize is not None and int(self.eval_resize) < 1:
            raise ValueError(f"augment.eval_resize must be >= 1, got {self.eval_resize}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AugmentPolicy":
        """From a recipe's ``augment`` mapping; ``None`` values mean "default".

        Raises:
            ValueError: an unknown key, a bad value, or an event-data-only key (``snn_augment_wide``) set.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - set(_EVENT_ONLY_KEYS))
        if unknown:
            raise ValueError(f"unknown augment key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))} "
                             f"(and {', '.join(_EVENT_ONLY_KEYS)} for event data)")
        for k in _EVENT_ONLY_KEYS:
            if d.get(k):
                raise ValueError(f"augment.{k} is the official event-data policy, not implemented for images; "
                                 f"set it to null (--set 'augment={{{k}: null}}') to train on image data")
        return cls(**{k: v for k, v in d.items() if k in known and v is not None})


def validate_augment(d: Mapping[str, Any]) -> None:
    """Check a recipe's ``augment`` mapping (keys and values) without knowing the data kind; raises ``ValueError``."""
    AugmentPolicy.from_dict({k: v for k, v in d.items() if k not in _EVENT_ONLY_KEYS})


def _as_list(v: Any) -> list[float]:
    return [float(t) for t in (v.reshape(-1).tolist() if isinstance(v, torch.Tensor) else
                               (v if isinstance(v, Sequence) else [v]))]


def build_train_transform(policy: AugmentPolicy | Mapping[str, Any], *, img_size: int, mean: Fill, std: Fill,
                          generator: torch.Generator | None = None) -> Compose:
    """The training pipeline of ``policy`` (see :class:`AugmentPolicy`) for ``[C, H, W]`` images in [0, 1].

    Args:
        policy: a policy or a recipe's ``augment`` mapping.
        img_size: output height and width.
        mean, std: the data set's per-channel normalisation (RandAugment fill; erasing fill values).
        generator: random source for every step (default: torch's global generator).

    Returns:
        A :class:`~spiking_transformers.data.transforms.Compose`; its output still has to be normalised (the data
        sets do that), except that the erasing fill already accounts for it.
    """
    if not isinstance(policy, AugmentPolicy):
        policy = AugmentPolicy.from_dict(policy)
    mean_l, std_l = _as_list(mean), _as_list(std)
    g = {"generator": generator}
    ts: list[Callable[[torch.Tensor], torch.Tensor]] = [
        RandomResizedCrop(img_size, policy.crop_scale, policy.crop_ratio, policy.interpolation, **g)]
    if policy.hflip > 0:
        ts.append(RandomHorizontalFlip(policy.hflip, **g))
    if policy.vflip > 0:
        ts.append(RandomVerticalFlip(policy.vflip, **g))
    if policy.randaugment:
        fill = mean_l[0] if len(mean_l) == 1 else tuple(mean_l)
        ts.append(RandAugment(policy.randaugment, fill=fill, interpolation=policy.interpolation, **g))
    if policy.color_jitter is not None and (not policy.randaugment or policy.force_color_jitter):
        cj = policy.color_jitter
        vals = (cj, cj, cj) if isinstance(cj, float) else cj
        ts.append(ColorJitter(*vals, **g))
    if policy.random_erasing > 0:
        ts.append(RandomErasing(policy.random_erasing, mode=policy.erasing_mode, max_count=policy.erasing_count,
                                mean=mean_l, std=std_l, **g))
    return Compose(ts)


def eval_scale_size(policy: AugmentPolicy | Mapping[str, Any], img_size: int) -> int:
    """The shorter-side size the evaluation resize goes to: ``eval_resize``, else ``floor(img_size / crop_pct)``."""
    if not isinstance(policy, AugmentPolicy):
        policy = AugmentPolicy.from_dict(policy)
    if policy.eval_resize is not None:
        size = int(policy.eval_resize)
        if size < img_size:
            raise ValueError(f"augment.eval_resize {size} is smaller than img_size {img_size}")
        if size > 2 * img_size:
            log.warning("augment.eval_resize %d is over twice img_size %d: the centre crop keeps little of the "
                        "image (the recipe's value is for a larger img_size? set crop_pct instead)", size, img_size)
        return size
    return int(math.floor(img_size / float(policy.crop_pct or 1.0)))  # timm's scale_size


def build_eval_transform(policy: AugmentPolicy | Mapping[str, Any], *, img_size: int) -> Compose | None:
    """The evaluation resize + centre crop of ``policy``, or ``None`` when it would change nothing."""
    if not isinstance(policy, AugmentPolicy):
        policy = AugmentPolicy.from_dict(policy)
    size = eval_scale_size(policy, img_size)
    if size == img_size:
        return None
    return Compose([ResizeShorter(size, policy.eval_interpolation), CenterCrop(img_size)])
