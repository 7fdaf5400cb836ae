"""The STNet tracker (upstream ``videoanalyst/pipeline/tracker_impl/stnet_track.py``, ``STNetTracker``).

Per frame the tracker sees ``T_e = 5`` event frames of each polarity. It crops them around the previous target
state, runs the network (:class:`~spiking_transformers.models.stnet.STNet`), and post-processes as SiamFC++:

1. **score penalty** for a change of scale and aspect ratio: ``penalty = exp(-(r_c * s_c - 1) * penalty_k)`` where
   ``s_c`` / ``r_c`` are ``max(r, 1/r)`` of the ratio of the candidate's size ``sqrt((w+p)(h+p))``, ``p = (w+h)/2``,
   / aspect ratio to the previous target's (in crop pixels);
2. **cosine window**: ``pscore = penalty * score * (1 - window_influence) + hanning * window_influence``;
3. the best candidate moves the target centre to the candidate's (crop -> frame coordinates) and the size by the
   learning rate ``lr = penalty * score * test_lr``;
4. the state is clipped to the frame (centre in ``[0, W] x [0, H]``, size in ``[min_w, W] x [min_h, H]``).

The SNN state is carried from one frame to the next and reset at each template (as upstream).
Defaults are the official test hyper-parameters (``experiments/test/fe240/fe240.yaml``: test_lr 0.52,
window_influence 0.21, penalty_k 0.04, context 0.5, crops 127 / 303, stride 8, 3 head convs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..models.stnet import STNet
from .boxes import cxywh2xywh, xyxy2cxywh, xywh2cxywh
from .crop import get_crop

__all__ = ["TrackerConfig", "STNetTracker", "score_size_for"]


def score_size_for(z_size: int, x_size: int, total_stride: int = 8, num_conv3x3: int = 3) -> int:
    """Score-map side: ``(x_size - z_size) // stride + 1 - 2 * num_conv3x3`` (17 for 127 / 303)."""
    return (x_size - z_size) // total_stride + 1 - 2 * num_conv3x3


@dataclass
class TrackerConfig:
    """Hyper-parameters of the official STNet tracker."""

    z_size: int = 127
    x_size: int = 303
    total_stride: int = 8
    num_conv3x3: int = 3
    context_amount: float = 0.5
    test_lr: float = 0.52
    penalty_k: float = 0.04
    window_influence: float = 0.21
    windowing: str = "cosine"
    min_w: float = 10.0
    min_h: float = 10.0

    @property
    def score_size(self) -> int:
        return score_size_for(self.z_size, self.x_size, self.total_stride, self.num_conv3x3)


@dataclass
class _State:
    im_h: int = 0
    im_w: int = 0
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    sz: np.ndarray = field(default_factory=lambda: np.zeros(2))
    avg_chans: torch.Tensor | None = None
    kernels: tuple[torch.Tensor, torch.Tensor] | None = None
    snn_state: list[torch.Tensor] | None = None
    window: np.ndarray | None = None
    score: float = 0.0


class STNetTracker:
    """Track one object through event frames with an :class:`STNet` network.

    Example::

        tracker = STNetTracker(model, TrackerConfig())
        tracker.init(pos0, neg0, box0)            # pos0, neg0: [5, 3, H, W] event frames; box0: (x, y, w, h)
        box = tracker.update(pos1, neg1)          # next frame's (x, y, w, h)

    Args:
        model: the network (eval mode is set; its ``head`` must use ``config``'s score size and ``x_size``).
        config: tracker hyper-parameters.
    """

    def __init__(self, model: STNet, config: TrackerConfig | None = None) -> None:
        self.model = model.eval()
        self.cfg = config or TrackerConfig()
        if self.cfg.windowing not in ("cosine", "uniform"):
            raise ValueError(f"windowing must be 'cosine' or 'uniform', got {self.cfg.windowing!r}")
        head = model.head
        if head.score_size != self.cfg.score_size or head.x_size != self.cfg.x_size:
            raise ValueError(
                f"the model's head (score_size {head.score_size}, x_size {head.x_size}) does not fit crops "
                f"{self.cfg.z_size} / {self.cfg.x_size} (score size {self.cfg.score_size})"
            )
        self.state = _State()

    def _frames(self, pos: Any, neg: Any) -> tuple[torch.Tensor, torch.Tensor]:
        pos, neg = torch.as_tensor(np.asarray(pos)), torch.as_tensor(np.asarray(neg))
        if pos.dim() != 4 or pos.shape != neg.shape or pos.shape[1] != 3:
            raise ValueError(f"event frames must be [T_e, 3, H, W] per polarity, got {tuple(pos.shape)} and "
                             f"{tuple(neg.shape)}")
        dtype = next(self.model.parameters()).dtype
        return pos.to(dtype), neg.to(dtype)

    @torch.no_grad()
    def init(self, pos: Any, neg: Any, box_xywh: Any) -> None:
        """Start a sequence: event frames ``[T_e, 3, H, W]`` of each polarity and the target's ``(x, y, w, h)``."""
        pos, neg = self._frames(pos, neg)
        box = xywh2cxywh(np.asarray(box_xywh, np.float64).reshape(4))
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"the initial box must have a positive size, got {box_xywh}")
        s = self.state = _State(im_h=pos.shape[-2], im_w=pos.shape[-1], pos=box[:2].copy(), sz=box[2:].copy())
        s.avg_chans = pos[-1].to(torch.float64).mean(dim=(1, 2))
        cfg = self.cfg
        z_pos, _ = get_crop(pos, s.pos, s.sz, cfg.z_size, avg_chans=s.avg_chans, context_amount=cfg.context_amount)
        z_neg, _ = get_crop(neg, s.pos, s.sz, cfg.z_size, avg_chans=s.avg_chans, context_amount=cfg.context_amount)
        s.kernels = self.model.template(z_pos[:, None], z_neg[:, None])
        s.snn_state = None  # the search SNN starts at rest
        n = cfg.score_size
        s.window = (np.outer(np.hanning(n), np.hanning(n)).reshape(-1) if cfg.windowing == "cosine"
                    else np.ones(n * n))

    @torch.no_grad()
    def update(self, pos: Any, neg: Any) -> np.ndarray:
        """Track into the next frame; returns the target's ``(x, y, w, h)``."""
        s, cfg = self.state, self.cfg
        if s.kernels is None:
            raise RuntimeError("call init() with the first frame before update()")
        pos, neg = self._frames(pos, neg)
        x_pos, scale = get_crop(pos, s.pos, s.sz, cfg.z_size, cfg.x_size, s.avg_chans, cfg.context_amount)
        x_neg, _ = get_crop(neg, s.pos, s.sz, cfg.z_size, cfg.x_size, s.avg_chans, cfg.context_amount)
        score, box, _cls, _ctr, s.snn_state = self.model.track(x_pos[:, None], x_neg[:, None], s.snn_state, s.kernels)
        score = score[0, :, 0].double().numpy()
        box_wh = xyxy2cxywh(box[0].double().numpy())
        best, penalty = self.postprocess_score(score, box_wh, s.sz, scale)
        new_pos, new_sz = self.postprocess_box(best, score, box_wh, s.pos, s.sz, scale, penalty)
        s.pos, s.sz = self.restrict_box(new_pos, new_sz)
        s.score = float(score[best])
        return cxywh2xywh(np.concatenate([s.pos, s.sz]))

    def postprocess_score(self, score: np.ndarray, box_wh: np.ndarray, target_sz: np.ndarray,
                          scale: float) -> tuple[int, np.ndarray]:
        """Scale/ratio penalty and cosine window (upstream ``_postprocess_score``): ``score [HW]``, candidate boxes
        ``box_wh [HW, 4]`` (cxywh in the crop) -> index of the best candidate and the penalty ``[HW]``."""
        def change(r: np.ndarray) -> np.ndarray:
            return np.maximum(r, 1.0 / r)

        def size(w: np.ndarray, h: np.ndarray) -> np.ndarray:
            pad = (w + h) * 0.5
            return np.sqrt((w + pad) * (h + pad))

        sz_crop = target_sz * scale
        s_c = change(size(box_wh[:, 2], box_wh[:, 3]) / size(sz_crop[0], sz_crop[1]))
        r_c = change((sz_crop[0] / sz_crop[1]) / (box_wh[:, 2] / box_wh[:, 3]))
        penalty = np.exp(-(r_c * s_c - 1) * self.cfg.penalty_k)
        wi = self.cfg.window_influence
        pscore = penalty * score * (1 - wi) + self.state.window * wi
        return int(np.argmax(pscore)), penalty

    def postprocess_box(self, best: int, score: np.ndarray, box_wh: np.ndarray, target_pos: np.ndarray,
                        target_sz: np.ndarray, scale: float, penalty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move to the best candidate, update the size with ``lr = penalty * score * test_lr`` (upstream
        ``_postprocess_box``; the scale is cast to float32 there, kept here)."""
        pred = box_wh[best] / np.float32(scale)
        lr = penalty[best] * score[best] * self.cfg.test_lr
        half = (self.cfg.x_size // 2) / scale
        new_pos = np.array([pred[0] + target_pos[0] - half, pred[1] + target_pos[1] - half])
        new_sz = np.array([target_sz[0] * (1 - lr) + pred[2] * lr, target_sz[1] * (1 - lr) + pred[3] * lr])
        return new_pos, new_sz

    def restrict_box(self, pos: np.ndarray, sz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre inside the frame, size between ``(min_w, min_h)`` and the frame size."""
        s = self.state
        pos = np.array([max(0.0, min(s.im_w, pos[0])), max(0.0, min(s.im_h, pos[1]))])
        sz = np.array([max(self.cfg.min_w, min(s.im_w, sz[0])), max(self.cfg.min_h, min(s.im_h, sz[1]))])
        return pos, sz

    def track_sequence(self, pos_frames: list[Any], neg_frames: list[Any], init_box: Any) -> np.ndarray:
        """Run a whole sequence: per-frame ``[T_e, 3, H, W]`` event frames; returns ``[N, 4]`` xywh boxes (the first
        is ``init_box``)."""
        if len(pos_frames) != len(neg_frames) or not pos_frames:
            raise ValueError(f"need equally many (>= 1) positive and negative frames, got {len(pos_frames)}, "
                             f"{len(neg_frames)}")
        boxes = [np.asarray(init_box, np.float64).reshape(4)]
        self.init(pos_frames[0], neg_frames[0], init_box)
        for p, n in zip(pos_frames[1:], neg_frames[1:]):
            boxes.append(self.update(p, n))
        return np.stack(boxes)
