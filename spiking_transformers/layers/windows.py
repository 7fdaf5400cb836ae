"""Swin's shifted windows, shared by the two Swin-based families (MST's spiking Swin, STNet's Swin branch).

``[B, H, W, C]`` maps are cut into non-overlapping ``ws x ws`` windows; attention inside a window adds a learned
bias indexed by :func:`relative_position_index`, and a shifted block masks token pairs that come from different
regions of the cyclically shifted map (:func:`shifted_window_mask`). The arithmetic is the Swin Transformer's.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["window_partition", "window_reverse", "relative_position_index", "shifted_window_mask"]


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``[B, H, W, C]`` -> windows ``[B * nW, ws, ws, C]`` in row-major order (``H``, ``W`` multiples of ``ws``)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows: Tensor, ws: int, H: int, W: int) -> Tensor:
    """The inverse of :func:`window_partition`: ``[B * nW, ws, ws, C]`` -> ``[B, H, W, C]``."""
    B = windows.shape[0] // ((H // ws) * (W // ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


def relative_position_index(ws: int) -> Tensor:
    """``[ws*ws, ws*ws]`` int64: for tokens ``i``, ``j`` of a window (row-major), the row of the
    ``[(2 ws - 1)^2, heads]`` bias table that holds their relative offset ``(dy, dx)``."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)  # [2, N]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()  # [N, N, 2], offsets in (-ws, ws)
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def shifted_window_mask(H: int, W: int, ws: int, shift: int, device: torch.device | str | None = None) -> Tensor:
    """The attention mask of a block shifted by ``shift``: ``[nW, ws*ws, ws*ws]`` float32, ``-100`` between tokens
    of different regions of the shifted ``H x W`` map (multiples of ``ws``), else ``0``."""
    img = torch.zeros((1, H, W, 1), device=device)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, (hs, wsl) in enumerate((a, b) for a in cuts for b in cuts):
        img[:, hs, wsl, :] = i
    win = window_partition(img, ws).view(-1, ws * ws)
    mask = win.unsqueeze(1) - win.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
