"""Time SpikingJelly 2.0.0's Spikformer and Spike-driven Transformer the way `spiking-transformers bench` times ours.

The peer row of docs/performance.md: each configuration in a fresh process, float32, ``--threads`` intra-op
threads, one warm-up step, the median of ``--repeats`` timed steps, peak RSS of the process. SpikingJelly picks its
own neuron back end (torch on a CPU); its stateful neurons are reset after every step, as its training loops do.
SpikingJelly is an optional test dependency (``pip install --no-deps spikingjelly==2.0.0 loguru`` and ``pip install h5py``: its model package imports it).

    python benchmarks/peer_spikingjelly.py --model spikformer --mode train --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from spikingjelly.activation_based import functional

    if args.model == "spikformer":
        from spikingjelly.activation_based.model.spikformer import spikformer_cifar10

        model = spikformer_cifar10(T=4, num_classes=10)
    else:
        from spikingjelly.activation_based.model.spike_driven_transformer import SpikeDrivenTransformer

        # SpikingJelly 2.0.0 forwards unknown keywords to every neuron, so only its own arguments may be given (the
        # official img_size_h / patch_size / mlp_ratios break it). Its LIF default detach_reset=False differs from the
        # official True; 10,234,378 parameters (official 10,233,546).
        model = SpikeDrivenTransformer(
            T=4, in_channels=3, num_classes=10, embed_dims=512, num_heads=8, depths=2, mlp_ratio=4.0,
            pooling_stat="0011",
        )
    x = torch.randn(args.batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch_size,))
    opt = torch.optim.AdamW(model.parameters())

    def step() -> None:
        if args.mode == "train":
            model.train()
            opt.zero_grad(set_to_none=True)
            out = model(x)
            out = out[0] if isinstance(out, tuple) else out
            out = out.mean(0) if out.dim() == 3 else out
            torch.nn.functional.cross_entropy(out, y).backward()
            opt.step()
        else:
            model.eval()
            with torch.no_grad():
                model(x)
        functional.reset_net(model)

    step()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return dict(model=f"spikingjelly-2.0.0 {args.model}", mode=args.mode, batch_size=args.batch_size,
                threads=args.threads, median_s=statistics.median(times), min_s=min(times), max_s=max(times),
                peak_rss_gb=peak_gb)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("spikformer", "sdt"), default="spikformer")
    p.add_argument("--mode", choices=("train", "eval"), default="train")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    res = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], capture_output=True, text=True)
    if res.returncode:
        sys.exit(res.stderr[-2000:])
    print(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
