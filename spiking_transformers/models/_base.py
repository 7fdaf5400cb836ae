"""The method surface shared by every model (see DESIGN.md, "Every model has")."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..layers import repeat_over_time

__all__ = ["SpikingModel"]


class SpikingModel(nn.Module):
    """Base class of the library's classifiers.

    Subclasses set ``T``, ``num_classes``, ``num_features`` and ``input_kind`` and implement
    :meth:`forward_features` (time kept) and :meth:`forward_head`.

    Input: ``input_kind == "image"`` models take a static batch ``[B, C, H, W]``, repeated over ``T`` steps (direct
    encoding), or a time-major ``[T, B, C, H, W]``; ``"events"`` models take only time-major frames
    ``[T, B, C, H, W]``. :meth:`encode_input` checks dtype, layout and channels (errors that say what the model
    expects) and ``T`` (a warning: another ``T`` runs, see :meth:`set_T`).
    """

    T: int
    num_classes: int
    num_features: int
    input_kind: str = "image"

    def set_T(self, T: int) -> "SpikingModel":
        """Run the model with ``T`` time steps from now on (an explicit override; returns the model).

        Every family in the library reads the number of steps from its input (the direct encoding repeats a static
        image ``model.T`` times; time-major input brings its own length), so changing ``T`` changes no weight. A
        time-major input whose length differs from ``model.T`` runs, with one warning naming both (and the
        transpose, where the input looks batch-major).
        """
        if int(T) < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        self.T = int(T)
        return self

    def expected_in_chans(self) -> int | None:
        """Input channels the first layer takes (its first 2-D convolution's ``in_channels``), or ``None``.

        ``None`` where the first convolution is not 2-D (a model of other inputs): then channels are not checked.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                return int(m.in_channels)
            if isinstance(m, (nn.Conv1d, nn.Conv3d)):
                return None
        return None

    def _check_input(self, x: Tensor) -> None:
        """Input validation at the door: dtype, layout, ``T`` and channels, each with a message naming the model's
        expectation (instead of a raw torch error deep inside, or a silent wrong answer)."""
        name = getattr(self, "model_name", None) or type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} takes a torch.Tensor, got {type(x).__name__}")
        if not (x.is_floating_point()):
            raise TypeError(f"{name} takes a floating-point input, got {x.dtype}; convert it with x.float() "
                            f"(event frames: spike counts as floats)")
        p = next(self.parameters(), None)
        if (p is not None and p.is_floating_point() and x.dtype != p.dtype and x.device.type != "meta"
                and not torch.is_autocast_enabled(x.device.type)):
            raise TypeError(f"{name} has {p.dtype} weights but the input is {x.dtype}; use x.to({p.dtype}) "
                            f"or model.to({x.dtype})")
        kind = self.input_kind
        expect = "[B, C, H, W] images or time-major [T, B, C, H, W] frames" if kind == "image" else \
            "time-major event frames [T, B, C, H, W]"
        if x.dim() not in (4, 5):
            raise ValueError(f"{name} takes {expect}, got a {x.dim()}-D input of shape {tuple(x.shape)}")
        if x.dim() == 4 and kind == "events":
            raise ValueError(f"{name} is an event-data model and takes time-major frames [T, B, C, H, W] with "
                             f"T={self.T}; got a 4-D tensor {tuple(x.shape)}")
        if x.dim() == 5 and x.shape[0] != self.T:
            self._warn_T(name, tuple(x.shape))
        chans = self.expected_in_chans()
        if chans is not None and x.shape[-3] != chans:
            raise ValueError(
                f"{name} takes {chans}-channel input (C in {'[B, C, H, W]' if x.dim() == 4 else '[T, B, C, H, W]'}) "
                f"but got {x.shape[-3]} channels, shape {tuple(x.shape)}; build it with in_chans={x.shape[-3]} "
                f"or convert the data")

    def _warn_T(self, name: str, shape: tuple[int, ...]) -> None:
        # A warning, not an error: every family runs any T (the number of steps comes from the input), and feeding
        # another T on purpose is legitimate (tests do); what must not happen is a silent mix-up, above all a
        # batch-major [B, T, C, H, W] tensor read as T=B steps. One warning per model and input T.
        seen = self.__dict__.setdefault("_T_warned", set())
        if shape[0] in seen:
            return
        seen.add(shape[0])
        if shape[1] == self.T:
            text = (f"{name} takes time-major frames [T, B, C, H, W] with T={self.T}; the input {shape} looks "
                    f"batch-major [B, T, C, H, W] and is read as T={shape[0]} steps: pass x.transpose(0, 1)")
        else:
            text = (f"{name} was built for T={self.T} time steps but the input {shape} has T={shape[0]} "
                    f"([T, B, C, H, W]); running {shape[0]} steps. If that is meant, say so with "
                    f"model.set_T({shape[0]}) (or create_model(..., T={shape[0]}))")
        warnings.warn(text, UserWarning, stacklevel=4)

    def encode_input(self, x: Tensor) -> Tensor:
        """Return the time-major input ``[T, B, C, H, W]`` the first layer sees (after :meth:`_check_input`)."""
        self._check_input(x)
        if x.dim() == 4:
            return repeat_over_time(x, self.T)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """Input -> features with time kept, ``[T, B, ...]``."""
        raise NotImplementedError

    def forward_head(self, x: Tensor, reduce_time: bool = True) -> Tensor:
        """Features ``[T, B, ...]`` -> logits ``[B, K]`` (``reduce_time``) or per-step logits ``[T, B, K]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]``, averaged over time."""
        return self.forward_head(self.forward_features(x), reduce_time=True)

    def forward_timesteps(self, x: Tensor) -> Tensor:
        """Per-time-step logits ``[T, B, num_classes]`` (what the TET loss needs)."""
        return self.forward_head(self.forward_features(x), reduce_time=False)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one of ``num_classes`` outputs (0: identity, features out)."""
        self.num_classes = num_classes
        head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        old = getattr(self, "head", None)
        if isinstance(old, nn.Linear):
            head = head.to(device=old.weight.device, dtype=old.weight.dtype)
        self.head = head
