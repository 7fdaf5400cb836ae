"""Attention mechanisms of the field, one file per family, all with one call signature.

The contract (see ``docs/design.md``, "The block contract"):

* construction: ``cls(dim, num_heads, *, spike_layer=<neuron factory>, **options)``;
* call: ``forward(x)`` with spiking tokens ``x`` of shape ``[T, B, N, C]`` returns ``[T, B, N, C]`` (the block adds the
  shortcut, the attention does not).

Every attention registers itself under a short name with :func:`register_attention`, so that a backbone swaps its
attention with one argument (``create_model("sdt_2_256_cifar10", attn="statten")``) and
``spiking-transformers models --attention`` lists them.
"""

from __future__ import annotations

from ._registry import (
    AttentionInfo,
    attention_info,
    backbone_options,
    create_attention,
    list_attentions,
    register_attention,
    resolve_attention,
)
from ._layout import ATTN_V_THRESHOLD, attend, map_to_tokens, token_contract, tokens_to_map
from .qk import QKChannel, QKChannelAttention, QKToken, QKTokenAttention  # registers "qk_token", "qk_channel"
from .sdsa import SDSA, SpikeDrivenSelfAttention  # registers "sdsa"
from .ssa import SpikingSelfAttention  # registers "ssa"
from .statten import SpatioTemporalAttention, STAttention  # registers "statten"
from . import stmixer  # noqa: F401,E402  (registers "stmixer")
from . import divided_st  # noqa: F401,E402  (registers "spikeformer_st")
from . import a2os2a, dista, semm, stformer, xnor  # noqa: F401,E402  (paper-only mechanisms, reference="paper")
from . import tim  # noqa: F401,E402  (registers "tim")

__all__ = [
    "AttentionInfo",
    "register_attention",
    "create_attention",
    "list_attentions",
    "attention_info",
    "resolve_attention",
    "backbone_options",
    "ATTN_V_THRESHOLD",
    "attend",
    "token_contract",
    "tokens_to_map",
    "map_to_tokens",
    "SpikingSelfAttention",
    "SpikeDrivenSelfAttention",
    "SDSA",
    "SpatioTemporalAttention",
    "STAttention",
    "QKTokenAttention",
    "QKChannelAttention",
    "QKToken",
    "QKChannel",
]
