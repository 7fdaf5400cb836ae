"""Experiment: peak memory of a training step when attention products keep their spike operands as uint8.

The attention layers (``layers/spikformer_blocks.py``, ``layers/sdt_blocks.py``) use plain ``@`` / ``*``; this
script swaps in subclasses whose forward is the same computation with
:func:`~spiking_transformers.neurons.kernels.spike_ops.spike_matmul` / ``spike_mul`` and measures one
configuration in a fresh process (``python benchmarks/spike_attention_memory.py MODEL [--batch-size 32]``), on top of
the cpp neurons and uint8 layer saves. It checks that the logits are unchanged.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import Tensor

from spiking_transformers.layers.sdt_blocks import SpikeDrivenSelfAttention, merge_heads
from spiking_transformers.layers.spikformer_blocks import SpikingSelfAttention, linear_bn
from spiking_transformers.neurons.kernels.spike_ops import spike_matmul, spike_mul


class SSAWithSpikeMatmul(SpikingSelfAttention):
    def forward(self, x: Tensor) -> Tensor:
        T, B, N, C = x.shape
        q = self._heads(self.q_lif(linear_bn(x, self.q_linear, self.q_bn)))
        k = self._heads(self.k_lif(linear_bn(x, self.k_linear, self.k_bn)))
        v = self._heads(self.v_lif(linear_bn(x, self.v_linear, self.v_bn)))
        kt = k.transpose(-2, -1)
        y = spike_matmul(q, spike_matmul(kt, v)) if self.kv_first else spike_matmul(spike_matmul(q, kt), v)
        y = (y * self.attn_scale).transpose(2, 3).reshape(T, B, N, C)
        y = self.attn_lif(y)
        return self.proj_lif(linear_bn(y, self.proj_linear, self.proj_bn))


class SDSAWithSpikeMul(SpikeDrivenSelfAttention):
    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        s = self.shortcut_lif(x)
        q = self.project("q", s, erode=False)
        k, v = self.project("k", s), self.project("v", s)
        kv = self.erode(spike_mul(k, v)).sum(dim=-2, keepdim=True)
        y = self.erode(spike_mul(q, self.talking_heads_lif(kv)))
        return self.out_proj(merge_heads(y, H, W))


def swap(model: torch.nn.Module) -> int:
    n = 0
    for m in model.modules():
        if type(m) is SpikingSelfAttention:
            m.__class__ = SSAWithSpikeMatmul
            n += 1
        elif type(m) is SpikeDrivenSelfAttention:
            m.__class__ = SDSAWithSpikeMul
            n += 1
    return n


def child(model_name: str, batch: int, repeats: int, patched: bool) -> dict:
    from spiking_transformers.models import create_model
    from spiking_transformers.neurons.kernels import set_backend
    from spiking_transformers.neurons.kernels.spike_ops import compact_spike_saves

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = create_model(model_name, T=4)
    set_backend(model, "cpp")
    compact_spike_saves(model)
    if patched:
        assert swap(model) > 0
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        if i == 0:
            first = logits.detach().sum().item()
        torch.nn.functional.cross_entropy(logits, y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return dict(model=model_name, patched=patched, median_s=statistics.median(times[1:]), first_logit_sum=first,
                peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", choices=("plain", "patched"))
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.model, a.batch_size, a.repeats, a.child == "patched")))
        return
    rows = []
    for mode in ("plain", "patched"):
        out = subprocess.run([sys.executable, __file__, a.model, "--batch-size", str(a.batch_size), "--repeats",
                              str(a.repeats), "--child", mode], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    assert rows[0]["first_logit_sum"] == rows[1]["first_logit_sum"], "logits changed"


if __name__ == "__main__":
    main()
