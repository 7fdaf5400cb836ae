"""Channel MLPs of the families, one per residual style.

* :class:`SpikingMlp`: Spikformer's two Linear-BN-LIF layers on tokens ``[T, B, N, C]`` (SEW stream).
* :class:`MSMLP`: SDT V1's / STAtten's 1x1-conv MLP on feature maps, membrane shortcut inside.
* :class:`MSMlp`: Meta-SpikeFormer's (V2, QSD) Conv1d MLP on feature maps (neuron first, real-valued output).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..neurons import DEFAULT_SPIKE_LAYER, SpikeFactory, resolve_spike_layer
from ..neurons.kernels.bn_spike import bn_spike
from ._shapes import fold_time
from .conv import ConvFactory
from .ops import folded, linear_bn_spike

__all__ = ["SpikingMlp", "MSMLP", "MSMlp"]


class SpikingMlp(nn.Module):
    """Two Linear-BN-LIF layers: ``C -> hidden -> C``. Shape ``[T, B, N, C]`` -> spikes ``[T, B, N, C]``."""

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        self.fc1_linear = nn.Linear(dim, hidden_dim)
        self.fc1_bn = nn.BatchNorm1d(hidden_dim)
        self.fc1_lif = spike_layer()
        self.fc2_linear = nn.Linear(hidden_dim, dim)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        x = linear_bn_spike(x, self.fc1_linear, self.fc1_bn, self.fc1_lif)
        return linear_bn_spike(x, self.fc2_linear, self.fc2_bn, self.fc2_lif)



class MSMLP(nn.Module):
    """The MS MLP: ``SN -> Conv1x1 (bias) -> BN -> SN -> Conv1x1 (bias) -> BN``, membrane shortcut included.

    Returns the updated stream ``x + branch`` (not the branch alone): when ``hidden_dim == dim`` the official MLP
    has a second, inner shortcut after the first BN (``h = x + BN(fc1)``, output ``h + BN(fc2)``), which cannot be
    written as an outer ``x + branch`` with the same float rounding.

    Shape: ``x: [T, B, C, H, W] -> [T, B, C, H, W]``.
    """

    def __init__(self, dim: int, hidden_dim: int, *, spike_layer: str | SpikeFactory = DEFAULT_SPIKE_LAYER) -> None:
        super().__init__()
        spike_layer = resolve_spike_layer(spike_layer)
        self.inner_shortcut = hidden_dim == dim
        self.fc1_lif = spike_layer()
        self.fc1_conv = nn.Conv2d(dim, hidden_dim, 1, 1)
        self.fc1_bn = nn.BatchNorm2d(hidden_dim)
        self.fc2_lif = spike_layer()
        self.fc2_conv = nn.Conv2d(hidden_dim, dim, 1, 1)
        self.fc2_bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [T, B, C, H, W]`` stream -> updated stream ``[T, B, C, H, W]``."""
        identity = x
        T = x.shape[0]
        z = self.fc1_conv(fold_time(self.fc1_lif(x)))  # [T*B, hidden, H, W]
        shape = (T, z.shape[0] // T, *z.shape[1:])
        if self.inner_shortcut:
            h = identity + self.fc1_bn(z).reshape(shape)
            s = self.fc2_lif(h)
            identity = h
        else:
            s = bn_spike(z, self.fc1_bn, self.fc2_lif, shape)  # fc2_lif(fc1_bn(z)), fused in training
        return folded(s, self.fc2_conv, self.fc2_bn) + identity



class MSMlp(nn.Module):
    """Channel MLP on tokens: ``fc1_lif -> fc1_conv (Conv1d k1, bias) -> fc1_bn -> fc2_lif -> fc2_conv -> fc2_bn``.

    Shape: ``[T, B, C, H, W] -> [T, B, C, H, W]`` (tokens N = H*W handled as a Conv1d length).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        *,
        spike_layer: SpikeFactory,
        conv1d_layer: ConvFactory = nn.Conv1d,
    ) -> None:
        super().__init__()
        self.fc1_conv = conv1d_layer(dim, hidden, 1, bias=True)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc1_lif = spike_layer()
        self.fc2_conv = conv1d_layer(hidden, dim, 1, bias=True)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = spike_layer()

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.flatten(3)  # [T, B, C, N]
        x = folded(self.fc1_lif(x), self.fc1_conv, self.fc1_bn)
        x = folded(self.fc2_lif(x), self.fc2_conv, self.fc2_bn)
        return x.reshape(shape)
