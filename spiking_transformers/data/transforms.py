"""Small tensor transforms for image (and event-frame) samples, with no torchvision dependency.

Every transform is a callable on a float tensor whose last three dimensions are ``[C, H, W]``: an image sample
``[C, H, W]`` or an event-frame sample ``[T, C, H, W]``. Random transforms draw from torch's global generator, so
``torch.manual_seed`` and DataLoader worker seeding make them reproducible, and they apply the *same* crop or flip to
every time step of an event sample (a sample is one recording, moved as a whole).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Compose", "RandomCrop", "RandomHorizontalFlip", "RandomRoll", "Normalize", "Resize"]


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
    """

    def __init__(self, size: int, padding: int = 0, fill: float = 0.0) -> None:
        if size < 1 or padding < 0:
            raise ValueError(f"RandomCrop needs size >= 1 and padding >= 0, got size={size}, padding={padding}")
        self.size, self.padding, self.fill = int(size), int(padding), float(fill)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            x = F.pad(x, (self.padding,) * 4, value=self.fill)
        h, w = x.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"RandomCrop: input {h}x{w} (after padding) is smaller than the crop {self.size}")
        i = int(torch.randint(0, h - self.size + 1, ()))
        j = int(torch.randint(0, w - self.size + 1, ()))
        return x[..., i:i + self.size, j:j + self.size]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the width axis with probability ``p``.

    Args:
        p: flip probability.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) < self.p:
            return x.flip(-1)
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRoll:
    """Cyclically shift the last two dimensions by random offsets in ``[-max_shift, max_shift]`` (each axis).

    The "roll" augmentation used for event frames (what leaves one border re-enters at the other, so no events are
    lost). Use :class:`RandomCrop` with ``padding`` for a translation that drops them instead.

    Args:
        max_shift: largest shift in pixels along height and width.
    """

    def __init__(self, max_shift: int) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_shift == 0:
            return x
        dy, dx = (int(v) for v in torch.randint(-self.max_shift, self.max_shift + 1, (2,)))
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
    """Resize the last two dimensions to ``size`` x ``size`` (bilinear, antialiased when shrinking).

    Args:
        size: output height and width.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"Resize needs size >= 1, got {size}")
        self.size = int(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        lead = x.shape[:-3]
        y = x.reshape(-1, *x.shape[-3:])  # [N, C, H, W] for interpolate
        shrink = x.shape[-1] > self.size or x.shape[-2] > self.size
        y = F.interpolate(y, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrink)
        return y.reshape(*lead, *y.shape[-3:])

    def __repr__(self) -> str:
        return f"Resize({self.size})"
