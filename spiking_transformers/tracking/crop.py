"""Template / search cropping of the SiamFC++ tracker that STNet uses.

A crop is a square window of side ``s`` frame pixels centred on the target, resampled bilinearly to ``out_size``
pixels; outside the frame it is filled with ``avg_chans`` (the per-channel mean of the frame). Upstream
(``videoanalyst/pipeline/utils/crop.py``) this is ``cv2.warpAffine`` with the inverse map
``src = M @ (x, y, 1)``, ``M = [[(x1 - x0)/(out - 1), 0, x0], [0, (y1 - y0)/(out - 1), y0]]`` where
``(x0, y0, x1, y1)`` is the window in the ``cxywh -> xyxy`` convention of :mod:`.boxes`; here it is a float
bilinear resampling of the same map (cv2 interpolates in 5-bit fixed point, so values may differ by one grey level).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["crop_scale", "get_subwindow", "get_crop"]


def crop_scale(target_sz: np.ndarray, z_size: int, context_amount: float = 0.5) -> float:
    """``z_size / sqrt((w + c(w+h)) (h + c(w+h)))``: crop pixels per frame pixel for a target of size ``(w, h)``."""
    w, h = float(target_sz[0]), float(target_sz[1])
    pad = context_amount * (w + h)
    return z_size / math.sqrt((w + pad) * (h + pad))


def get_subwindow(frames: torch.Tensor, pos: np.ndarray, out_size: int, window: float,
                  avg_chans: torch.Tensor) -> torch.Tensor:
    """Crop ``frames [N, C, H, W]`` around ``pos = (cx, cy)``: a ``window``-pixel square resampled to ``out_size``.

    Returns ``[N, C, out_size, out_size]`` (frame dtype float); outside the frame the value is ``avg_chans [C]``.
    """
    if frames.dim() != 4:
        raise ValueError(f"frames must be [N, C, H, W], got shape {tuple(frames.shape)}")
    if out_size < 2:
        raise ValueError(f"out_size must be >= 2, got {out_size}")
    N, C, H, W = frames.shape
    x0 = float(pos[0]) - (window - 1) / 2
    y0 = float(pos[1]) - (window - 1) / 2
    step = (window - 1) / (out_size - 1)  # (x1 - x0) / (out - 1) with x1 = x0 + window - 1
    r = torch.arange(out_size, dtype=torch.float64)
    xs = x0 + step * r
    ys = y0 + step * r
    # grid_sample with align_corners=True maps -1 / 1 to the centres of the first / last pixel.
    gx = 2 * xs / max(W - 1, 1) - 1
    gy = 2 * ys / max(H - 1, 1) - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # [out, out, 2] as (x, y)
    avg = avg_chans.to(torch.float64).view(1, C, 1, 1)
    img = frames.to(torch.float64) - avg  # constant border = avg: sample the difference with zero padding
    out = F.grid_sample(img, grid[None].expand(N, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return (out + avg).to(frames.dtype if frames.is_floating_point() else torch.float32)


def get_crop(frames: torch.Tensor, target_pos: np.ndarray, target_sz: np.ndarray, z_size: int,
             x_size: int | None = None, avg_chans: torch.Tensor | None = None,
             context_amount: float = 0.5) -> tuple[torch.Tensor, float]:
    """Template (``x_size=None``) or search crop, as upstream ``get_crop``.

    The window side is ``round(x_size / scale)`` frame pixels with ``scale = crop_scale(target_sz, z_size)``, so the
    target appears at the template's scale in both crops.

    Returns:
        ``(crop [N, C, out, out], scale)`` with ``out = x_size or z_size``.
    """
    scale = crop_scale(target_sz, z_size, context_amount)
    out = z_size if x_size is None else x_size
    if avg_chans is None:
        avg_chans = frames[-1].to(torch.float64).mean(dim=(1, 2))
    return get_subwindow(frames, target_pos, out, float(round(out / scale)), avg_chans), scale
