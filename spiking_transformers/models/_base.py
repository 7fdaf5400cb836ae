"""The method surface shared by every model (see DESIGN.md, "Every model has")."""

from __future__ import annotations

from torch import Tensor, nn

from ..layers import repeat_over_time

__all__ = ["SpikingModel"]


class SpikingModel(nn.Module):
    """Base class of the library's classifiers.

    Subclasses set ``T``, ``num_classes``, ``num_features`` and ``input_kind`` and implement
    :meth:`forward_features` (time kept) and :meth:`forward_head`.

    Input: ``input_kind == "image"`` models take a static batch ``[B, C, H, W]``, repeated over ``T`` steps (direct
    encoding), or a time-major ``[T, B, C, H, W]``; ``"events"`` models take only time-major frames
    ``[T, B, C, H, W]``.
    """

    T: int
    num_classes: int
    num_features: int
    input_kind: str = "image"

    def encode_input(self, x: Tensor) -> Tensor:
        """Return the time-major input ``[T, B, C, H, W]`` the first layer sees."""
        if x.dim() == 4:
            if self.input_kind == "events":
                raise ValueError(
                    f"{type(self).__name__} is an event-data model and takes time-major frames [T, B, C, H, W]; "
                    f"got a 4-D tensor {tuple(x.shape)}"
                )
            return repeat_over_time(x, self.T)
        if x.dim() == 5:
            return x
        raise ValueError(
            f"{type(self).__name__} takes [B, C, H, W] images or [T, B, C, H, W] frames, got shape {tuple(x.shape)}"
        )

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
