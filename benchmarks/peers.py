"""Peer benchmark: SpikingJelly 2.0 (eager and ``torch.compile``) against every path of ours, in interleaved rounds.

Each measurement is a fresh process (peak RSS belongs to it), and the columns are measured round by round
(round 1: every column once, round 2: every column again, ...), so a change in the machine's load hits every column
alike; the table gives the median step time over rounds and the largest peak RSS. The record names the machine: CPU
model and flags, logical CPUs, torch version, threads, and the load average before the run and sampled during it.
Figures from a loaded machine are stated as such; the ratios are the meaningful part there.

Columns (``--columns``): ``sj_eager``, ``sj_compiled`` (SpikingJelly 2.0, optional dependency: a column that cannot
be built is skipped with a one-line reason), ``ours_default``, ``ours_cpp`` (``bench --best``: cpp neurons, uint8
saves / BN folding), ``ours_memory`` (``--grad-checkpointing``). The official code is not carried by the project.

    python benchmarks/peers.py --model spikformer --mode train --batch-size 32 --rounds 3 --json peers.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from spiking_transformers.benchmark import machine_info, run_child
from spiking_transformers.runtime import cpu_flags

OURS = {"spikformer": "spikformer_4_384_cifar10", "sdt": "sdt_2_512_cifar10"}
COLUMNS = ("sj_eager", "sj_compiled", "ours_default", "ours_cpp", "ours_memory")


def _sj_child(model: str, mode: str, batch: int, threads: int, compiled: bool) -> dict[str, Any]:
    """One SpikingJelly measurement in this (child) process: warm-up step (compiles), then one timed step."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from spikingjelly.activation_based import functional

    if model == "spikformer":
        from spikingjelly.activation_based.model.spikformer import spikformer_cifar10

        net = spikformer_cifar10(T=4, num_classes=10)
    else:
        from spikingjelly.activation_based.model.spike_driven_transformer import SpikeDrivenTransformer

        net = SpikeDrivenTransformer(T=4, in_channels=3, num_classes=10, embed_dims=512, num_heads=8, depths=2,
                                     mlp_ratio=4.0, pooling_stat="0011")
    run = torch.compile(net) if compiled else net
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.AdamW(net.parameters())

    def step() -> None:
        if mode == "train":
            net.train()
            opt.zero_grad(set_to_none=True)
            out = run(x)
            out = out[0] if isinstance(out, tuple) else out
            out = out.mean(0) if out.dim() == 3 else out
            torch.nn.functional.cross_entropy(out, y).backward()
            opt.step()
        else:
            net.eval()
            with torch.no_grad():
                run(x)
        functional.reset_net(net)

    t0 = time.perf_counter()
    step()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    return dict(step_s=time.perf_counter() - t0, warmup_s=warm,
                peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _sj(args: argparse.Namespace, compiled: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--sj-child", json.dumps(dict(model=args.model, mode=args.mode,
                                                                  batch=args.batch_size, threads=args.threads,
                                                                  compiled=compiled))]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        last = (res.stderr or res.stdout).strip().splitlines()[-1:] or [f"exit {res.returncode}"]
        raise RuntimeError(f"SpikingJelly: {last[0]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _ours(args: argparse.Namespace, **opts: Any) -> dict[str, Any]:
    from spiking_transformers.neurons.lif import DEFAULT_BACKEND

    best = opts.pop("best", False)
    config = dict(
        model=OURS[args.model], mode=args.mode, batch_size=args.batch_size, T=4, threads=args.threads,
        backend="cpp" if best else DEFAULT_BACKEND, repeats=1, warmup=1,
        compact_saves=best and args.mode == "train", fold_bn=best and args.mode == "eval", tiny=False,
        tune_malloc=True, fuse_bn=True, model_args={}, **opts,
    )
    r = run_child(config)
    return dict(step_s=r["median_s"], peak_rss_bytes=r["peak_rss_bytes"])


def _with_load_samples(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` while sampling the 1-minute load average every 5 s."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            samples.append(os.getloadavg()[0])

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        stop.set()
        t.join()
    out["load_during"] = samples or [os.getloadavg()[0]]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "sj_eager": lambda: _sj(args, False),
        "sj_compiled": lambda: _sj(args, True),
        "ours_default": lambda: _ours(args),
        "ours_cpp": lambda: _ours(args, best=True),
        "ours_memory": lambda: _ours(args, grad_checkpointing=True),
    }
    skipped: dict[str, str] = {}
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in args.columns}
    load_before = os.getloadavg()
    for rnd in range(args.rounds):
        for col in args.columns:
            if col in skipped:
                continue
            try:
                r = _with_load_samples(makers[col])
            except Exception as exc:  # one column that cannot run is skipped with its reason
                skipped[col] = str(exc).splitlines()[0]
                print(f"{col}: skipped ({skipped[col]})", file=sys.stderr)
                continue
            r["round"] = rnd
            results[col].append(r)
            print(f"round {rnd} {col}: {r['step_s']:.2f} s, peak {r['peak_rss_bytes'] / 1e9:.2f} GB, load "
                  f"{max(r['load_during']):.1f}", file=sys.stderr, flush=True)
    flags = cpu_flags()
    return dict(
        model=args.model, mode=args.mode, batch_size=args.batch_size, threads=args.threads, rounds=args.rounds,
        machine=dict(machine_info(), cpu_flags_of_note=sorted(f for f in flags if "avx" in f or "amx" in f
                                                              or "vnni" in f or "bf16" in f)),
        load_before=load_before, load_after=os.getloadavg(), results=results, skipped=skipped,
    )


def table(data: dict[str, Any]) -> str:
    res = {c: v for c, v in data["results"].items() if v}
    base = statistics.median(r["step_s"] for r in res["sj_compiled"]) if res.get("sj_compiled") else None
    lines = ["| column | median step s | rounds | peak RSS GB | time / SpikingJelly compiled |", "|---|---|---|---|---|"]
    for col, rs in res.items():
        med = statistics.median(r["step_s"] for r in rs)
        peak = max(r["peak_rss_bytes"] for r in rs) / 1e9
        ratio = f"{med / base:.2f}" if base else "-"
        lines.append(f"| {col} | {med:.2f} | {len(rs)} | {peak:.2f} | {ratio} |")
    for col, why in data["skipped"].items():
        lines.append(f"| {col} | skipped: {why} | | | |")
    m = data["machine"]
    lines.append("")
    lines.append(f"{data['model']} {data['mode']} batch {data['batch_size']}, T=4, float32, {data['threads']} "
                 f"thread(s); {m['cpu']} ({m['logical_cpus']} logical CPUs; {' '.join(m['cpu_flags_of_note'])}), "
                 f"torch {m['torch']}; load average {data['load_before'][0]:.1f} before, "
                 f"{max(x for rs in res.values() for r in rs for x in r['load_during']):.1f} at most during.")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--sj-child":
        c = json.loads(sys.argv[2])
        print(json.dumps(_sj_child(c["model"], c["mode"], c["batch"], c["threads"], c["compiled"])))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=tuple(OURS), default="spikformer")
    p.add_argument("--mode", choices=("train", "eval"), default="train")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--columns", nargs="+", choices=COLUMNS, default=list(COLUMNS))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.batch_size < 1 or args.rounds < 1 or args.threads < 1:
        raise SystemExit("need --batch-size, --rounds and --threads >= 1")
    data = run(args)
    print(table(data))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
