"""Token and feature-map layouts of attention: the adapter between the contract and the families that work on maps.

The attention contract is ``forward(x)`` on spiking tokens ``[T, B, N, C]`` returning ``[T, B, N, C]``. Some families
compute their attention on feature maps ``[T, B, C, H, W]`` (SDT V1, STAtten, QKFormer), and two of them need the grid
itself (STAtten's scale ``1 / H``; the 3x3 ``Erode`` filter of SDT's ``dvs_mode``). Their classes keep the official
layout in ``forward`` (module names and float rounding are the official ones); :func:`token_contract` derives from such a
class a subclass that honours the contract and is what the registry holds:

* ``forward(x, grid=None)``: tokens ``[T, B, N, C]`` in row-major grid order -> tokens; ``grid = (H, W)`` with
  ``H * W = N`` (``None``: an ``N x 1`` column, which changes nothing for attentions that do not look at the grid);
* ``forward(x, layout="map")``: the class's own feature-map forward, ``[T, B, C, H, W] -> [T, B, C, H, W]``.

The subclass adds no module and no parameter, so state-dict keys stay those of the official class.

Backbones run whatever attention they were given through :func:`attend`, which picks the cheapest path for the
backbone's layout (a map-native attention on a map backbone runs its own forward, bit for bit; a token attention on a
map backbone sees ``map_to_tokens(x)``), always through ``module(...)`` so that forward hooks (firing rates, operation
counting) see the attention.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ATTN_V_THRESHOLD", "tokens_to_map", "map_to_tokens", "token_contract", "attend"]

# The attention neurons fire at half the usual threshold in every official file of the Spikformer lineage
# (Spikformer's SSA output, SDT V1's column-sum mask, STAtten's output, QKFormer's masks).
ATTN_V_THRESHOLD = 0.5


def tokens_to_map(x: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
    """Tokens ``[T, B, N, C]`` (row-major over the grid) -> feature map ``[T, B, C, H, W]``.

    ``grid = (H, W)`` must satisfy ``H * W = N``; ``None`` reads the tokens as an ``N x 1`` column.
    """
    T, B, N, C = x.shape
    H, W = grid if grid is not None else (N, 1)
    if H * W != N:
        raise ValueError(f"grid {(H, W)} has {H * W} cells for {N} tokens")
    return x.transpose(2, 3).reshape(T, B, C, H, W)


def map_to_tokens(x: Tensor) -> Tensor:
    """Feature map ``[T, B, C, H, W]`` -> tokens ``[T, B, H*W, C]`` in row-major order (the inverse of
    :func:`tokens_to_map`)."""
    return x.flatten(3).transpose(2, 3)


def token_contract(cls: type[nn.Module], name: str | None = None) -> type[nn.Module]:
    """Subclass of a feature-map attention class that honours the token contract (see the module docstring).

    Args:
        cls: attention class whose ``forward`` maps ``[T, B, C, H, W]`` to ``[T, B, C, H, W]``.
        name: class name of the subclass (default ``cls.__name__ + "Tokens"``).
    """

    def forward(self: nn.Module, x: Tensor, grid: tuple[int, int] | None = None, *, layout: str = "tokens") -> Tensor:
        if layout == "map":
            return cls.forward(self, x)
        if layout != "tokens":
            raise ValueError(f"layout must be 'tokens' or 'map', got {layout!r}")
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes tokens [T, B, N, C], got shape {tuple(x.shape)}")
        return map_to_tokens(cls.forward(self, tokens_to_map(x, grid)))

    forward.__doc__ = (
        f"Tokens ``[T, B, N, C]`` (grid ``(H, W)``, default ``N x 1``) -> tokens; ``layout='map'`` runs "
        f":class:`{cls.__name__}` on a feature map ``[T, B, C, H, W]``."
    )
    doc = f"{cls.__name__} under the attention contract (tokens ``[T, B, N, C]``); see :func:`token_contract`."
    return type(name or f"{cls.__name__}Tokens", (cls,), {"forward": forward, "native_layout": "map", "__doc__": doc,
                                                           "__module__": cls.__module__})


def attend(attn: nn.Module, x: Tensor, *, layout: str, grid: tuple[int, int] | None = None) -> Tensor:
    """Run ``attn`` on a backbone's stream, whatever layout the attention computes in.

    Args:
        attn: an attention under the contract (token-native, or made by :func:`token_contract`).
        x: the stream: tokens ``[T, B, N, C]`` (``layout="tokens"``) or a feature map ``[T, B, C, H, W]``
            (``layout="map"``).
        layout: the backbone's layout, ``"tokens"`` or ``"map"``.
        grid: ``(H, W)`` of the tokens (``layout="tokens"``), for attentions that look at the grid.

    Returns:
        the attention branch in the layout of ``x``.
    """
    native = getattr(attn, "native_layout", "tokens")
    if layout == "map":
        if native == "map":
            return attn(x, layout="map")
        return tokens_to_map(attn(map_to_tokens(x)), (x.shape[-2], x.shape[-1]))
    if layout != "tokens":
        raise ValueError(f"layout must be 'tokens' or 'map', got {layout!r}")
    return attn(x, grid) if native == "map" else attn(x)
