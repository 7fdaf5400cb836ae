"""Peer benchmark: SpikingJelly 2.0 (eager and ``torch.compile``) against the paths of ours, in interleaved rounds.

Each measurement is a fresh process (peak RSS belongs to it: ``getrusage`` of that process, so it includes the
interpreter, torch, the parameters and the optimiser state), and the measurements are interleaved round by round
(round 1: every row and column once, round 2: all again, ...), so a change in the machine's load hits every column
alike. A cell gives the median step time over every timed step of every round and the largest peak RSS. The record
names the machine: CPU model and flags of note, logical CPUs, torch version, threads, and the load average before
the run and sampled every 5 s during it. Figures from a loaded machine are stated as such; the ratios are the
meaningful part there.

Rows (``--rows``): ``MODEL:MODE:BATCH`` with MODEL ``spikformer`` (Spikformer-4-384, CIFAR-10, T=4) or ``sdt``
(Spike-driven Transformer 2-512), MODE ``train`` (zero_grad + forward + cross-entropy + backward + AdamW step) or
``eval`` (forward without gradients); ``--rows issue17`` is the four rows of issue 17 (both models, train batch 32,
eval batch 64).

Columns (``--columns``): ``sj_eager``, ``sj_compiled`` (SpikingJelly 2.0, an optional dependency; its models as it
ships them, its default ``torch`` neuron back end, glibc's allocator as is; a column that cannot be built is skipped
with a one-line reason), ``ours_default`` (``create_model`` as ``train`` / ``eval`` run it: ``fused`` neurons,
BatchNorm + neuron fusion in training, tuned allocator), ``ours_cpp`` (the same with ``cpp`` neurons: ``bench
--backend cpp``), ``ours_fast`` (training only: ``cpp`` neurons with BatchNorm fusion off, ``bench --backend cpp
--no-fuse-bn``: no recomputation in backward, more memory), ``ours_best`` (``bench --best``: ``cpp`` neurons plus uint8 saves in training, BatchNorm folded in
eval) and ``ours_memory`` (training only: ``--grad-checkpointing``, freed memory returned to the system). The official code
is not carried by the project (``docs/performance.md`` says how it was measured).

    python benchmarks/peers.py --rows issue17 --rounds 2 --repeats 3 --json peers.json --markdown peers.md
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
LABELS = {"spikformer": "Spikformer-4-384", "sdt": "SDT-2-512"}
COLUMNS = ("sj_eager", "sj_compiled", "ours_default", "ours_cpp", "ours_fast", "ours_best", "ours_memory")
OURS_COLUMNS = ("ours_default", "ours_cpp", "ours_fast", "ours_best", "ours_memory")
TRAIN_ONLY = ("ours_fast", "ours_memory")  # settings that change nothing in an eval step
ISSUE17_ROWS = ("spikformer:train:32", "sdt:train:32", "spikformer:eval:64", "sdt:eval:64")


def _sj_child(model: str, mode: str, batch: int, threads: int, compiled: bool, warmup: int,
              repeats: int) -> dict[str, Any]:
    """One SpikingJelly measurement in this (child) process: ``warmup`` untimed steps (the first compiles), then
    ``repeats`` timed ones; ``functional.reset_net`` after each step as SpikingJelly's own loops do."""
    import resource

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from spikingjelly.activation_based import functional

    if model == "spikformer":
        from spikingjelly.activation_based.model.spikformer import spikformer_cifar10

        net = spikformer_cifar10(T=4, num_classes=10)
    else:
        from spikingjelly.activation_based.model.spike_driven_transformer import SpikeDrivenTransformer

        net = SpikeDrivenTransformer(T=4, in_channels=3, num_classes=10, embed_dims=512, num_heads=8, depths=2,
                                     mlp_ratio=4.0, pooling_stat="0011")
    net.train(mode == "train")
    run = torch.compile(net) if compiled else net
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step() -> None:
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            out = run(x)
            out = out[0] if isinstance(out, tuple) else out
            out = out.mean(0) if out.dim() == 3 else out  # a [T, B, classes] output: mean over time
            torch.nn.functional.cross_entropy(out, y).backward()
            opt.step()
        else:
            with torch.no_grad():
                run(x)
        functional.reset_net(net)

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return dict(times_s=times, warmup_s=warm,
                peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _sj(row: dict[str, Any], args: argparse.Namespace, compiled: bool) -> dict[str, Any]:
    spec = dict(model=row["model"], mode=row["mode"], batch=row["batch"], threads=args.threads, compiled=compiled,
                warmup=args.warmup + (1 if compiled else 0), repeats=args.repeats)
    cmd = [sys.executable, __file__, "--sj-child", json.dumps(spec)]
    t = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        last = [ln for ln in (res.stderr or res.stdout).strip().splitlines() if ln.strip()][-1:]
        raise RuntimeError(f"SpikingJelly: {last[0].strip() if last else f'exit {res.returncode}'}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _ours(row: dict[str, Any], args: argparse.Namespace, column: str) -> dict[str, Any]:
    from spiking_transformers.neurons.lif import DEFAULT_BACKEND

    best = column == "ours_best"
    cpp = best or column == "ours_cpp"
    memory = column == "ours_memory"
    fast = column == "ours_fast"
    cpp = cpp or fast
    if column in TRAIN_ONLY and row["mode"] != "train":
        raise RuntimeError(f"{column} is a training setting")
    config = dict(
        model=OURS[row["model"]], mode=row["mode"], batch_size=row["batch"], T=4, threads=args.threads,
        backend="cpp" if cpp else DEFAULT_BACKEND, repeats=args.repeats, warmup=args.warmup,
        compact_saves=best and row["mode"] == "train", fold_bn=best and row["mode"] == "eval", tiny=False,
        # memory mode returns freed tensors to the system (as `bench --grad-checkpointing` and `train` run it)
        tune_malloc=not memory, fuse_bn=not fast, grad_checkpointing=memory, model_args={},
    )
    r = run_child(config)
    return dict(times_s=r["times_s"], peak_rss_bytes=r["peak_rss_bytes"])


def _with_load_samples(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` while sampling the 1-minute load average every 5 s."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            samples.append(os.getloadavg()[0])

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        stop.set()
        t.join()
    out["wall_s"] = time.perf_counter() - t0
    out["load_during"] = samples or [os.getloadavg()[0]]
    return out


def parse_row(text: str) -> dict[str, Any]:
    """``"spikformer:train:32"`` -> ``{"model": "spikformer", "mode": "train", "batch": 32}``."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in OURS or parts[1] not in ("train", "eval") or not parts[2].isdigit() \
            or int(parts[2]) < 1:
        raise SystemExit(f"--rows {text!r}: expected MODEL:MODE:BATCH with MODEL in {sorted(OURS)}, MODE train|eval, "
                         f"BATCH >= 1")
    return dict(model=parts[0], mode=parts[1], batch=int(parts[2]))


def row_key(row: dict[str, Any]) -> str:
    return f"{row['model']}:{row['mode']}:{row['batch']}"


def run(args: argparse.Namespace, save: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure every row and column in interleaved rounds; ``save`` gets the record so far after each cell (so an
    interrupted run keeps what it measured: ``--from-json`` prints its table)."""
    rows = [parse_row(r) for r in args.rows]
    makers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "sj_eager": lambda row: _sj(row, args, False),
        "sj_compiled": lambda row: _sj(row, args, True),
        **{c: (lambda row, c=c: _ours(row, args, c)) for c in OURS_COLUMNS},
    }
    skipped: dict[str, dict[str, str]] = {row_key(r): {} for r in rows}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {row_key(r): {c: [] for c in args.columns} for r in rows}
    load_before = os.getloadavg()
    t_start = time.time()
    flags = cpu_flags()
    machine = dict(machine_info(), cpu_flags_of_note=sorted(f for f in flags if "avx" in f or "amx" in f
                                                            or "vnni" in f or "bf16" in f or f == "fma"))

    def record(rounds: int) -> dict[str, Any]:
        return dict(
            rows=rows, columns=list(args.columns), threads=args.threads, rounds=rounds, repeats=args.repeats,
            warmup=args.warmup, started_utc=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t_start)),
            wall_s=time.time() - t_start, machine=machine, load_before=load_before, load_after=os.getloadavg(),
            results=results, skipped=skipped,
        )

    for rnd in range(args.rounds):
        for row in rows:
            key = row_key(row)
            # alternate the column order from round to round, so no column always runs first or last
            cols = list(args.columns) if rnd % 2 == 0 else list(reversed(args.columns))
            for col in cols:
                if col in skipped[key] or (col in TRAIN_ONLY and row["mode"] != "train"):
                    continue
                try:
                    r = _with_load_samples(lambda: makers[col](row))
                except Exception as exc:  # one column that cannot run is skipped with its reason
                    skipped[key][col] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    print(f"{key} {col}: skipped ({skipped[key][col]})", file=sys.stderr, flush=True)
                    continue
                r["round"] = rnd
                results[key][col].append(r)
                print(f"round {rnd} {key} {col}: {' '.join(f'{t:.2f}' for t in r['times_s'])} s, peak "
                      f"{r['peak_rss_bytes'] / 1e9:.2f} GB, load {max(r['load_during']):.1f}", file=sys.stderr,
                      flush=True)
                if save is not None:
                    save(record(rnd + 1))
    return record(args.rounds)


def summary(data: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per row and column: median step time over all timed steps, largest peak RSS (GB), number of steps."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, cols in data["results"].items():
        out[key] = {}
        for col, rs in cols.items():
            if rs:
                times = [t for r in rs for t in r["times_s"]]
                out[key][col] = dict(median_s=statistics.median(times), steps=len(times),
                                     peak_gb=max(r["peak_rss_bytes"] for r in rs) / 1e9)
    return out


def machine_line(data: dict[str, Any]) -> str:
    m = data["machine"]
    during = [x for cols in data["results"].values() for rs in cols.values() for r in rs for x in r["load_during"]]
    return (f"{m['cpu']} ({m['logical_cpus']} logical CPUs; flags {' '.join(m['cpu_flags_of_note'])}), torch "
            f"{m['torch']}, float32, {data['threads']} thread(s), T=4, 32x32 input; {data['rounds']} interleaved "
            f"round(s) of fresh processes, {data['warmup']} warm-up + {data['repeats']} timed step(s) each (the "
            f"compiled peer gets one more warm-up); started {data['started_utc']}; load average "
            f"{data['load_before'][0]:.2f} before, {min(during, default=0):.2f}-{max(during, default=0):.2f} during.")


def table(data: dict[str, Any]) -> str:
    """Markdown: one line per row, ``median s / peak RSS GB`` per column, then our fastest path against the compiled
    peer (time and peak ratios), and the fastest of our paths that peaks below it."""
    s = summary(data)
    cols = data["columns"]
    head = ["step", *cols, "fastest of ours / SJ compiled: time, peak RSS",
            "fastest of ours with less peak RSS than SJ compiled: time ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in data["rows"]:
        key = row_key(row)
        cells = [f"{LABELS[row['model']]} {row['mode']} b{row['batch']}"]
        for col in cols:
            c = s[key].get(col)
            why = data["skipped"][key].get(col)
            cells.append(f"{c['median_s']:.2f} / {c['peak_gb']:.2f}" if c else (f"skipped: {why}" if why else "-"))
        ours = {c: v for c, v in s[key].items() if c in OURS_COLUMNS}
        peer = s[key].get("sj_compiled")
        if ours and peer:
            best = min(ours, key=lambda c: ours[c]["median_s"])
            cells.append(f"{ours[best]['median_s'] / peer['median_s']:.2f}, "
                         f"{ours[best]['peak_gb'] / peer['peak_gb']:.2f} ({best})")
            lean = {c: v for c, v in ours.items() if v["peak_gb"] < peer["peak_gb"]}
            if lean:
                c = min(lean, key=lambda c: lean[c]["median_s"])
                cells.append(f"{lean[c]['median_s'] / peer['median_s']:.2f} ({c})")
            else:
                cells.append("none")
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: median step time s / peak RSS GB. " + machine_line(data))
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--sj-child":
        c = json.loads(sys.argv[2])
        print(json.dumps(_sj_child(c["model"], c["mode"], c["batch"], c["threads"], c["compiled"], c["warmup"],
                                   c["repeats"])))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=["spikformer:train:32"],
                   help="MODEL:MODE:BATCH ... or 'issue17' (the four rows of issue 17)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per process (compiled peer: one more)")
    p.add_argument("--columns", nargs="+", choices=COLUMNS, default=list(COLUMNS))
    p.add_argument("--json", default=None, help="write the full record here")
    p.add_argument("--markdown", default=None, help="write the table here")
    p.add_argument("--from-json", default=None, help="print the table of an earlier record instead of measuring")
    args = p.parse_args()
    if args.from_json:
        print(table(json.loads(Path(args.from_json).read_text())))
        return
    if args.rows == ["issue17"]:
        args.rows = list(ISSUE17_ROWS)
    if args.rounds < 1 or args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        raise SystemExit("need --rounds, --threads and --repeats >= 1 and --warmup >= 0")
    save = (lambda d: Path(args.json).write_text(json.dumps(d, indent=1))) if args.json else None
    data = run(args, save)
    text = table(data)
    print(text)
    if save is not None:
        save(data)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
