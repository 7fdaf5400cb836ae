"""``spiking-transformers convert CHECKPOINT --out DIR``: an official (or any) checkpoint as our model folder.

::

    spiking-transformers convert OFFICIAL.pth --family spikformer --model-arg embed_dims=384 ... --out DIR
    spiking-transformers convert OFFICIAL.pth --model spikformer_4_384_cifar10 --out DIR
    spiking-transformers convert RUN_DIR --out DIR

writes ``DIR/model.safetensors`` + ``DIR/config.json`` (the folder layout of a Hugging Face hub repository), which
``eval``, ``energy``, ``bench``, ``st.load(DIR)`` and ``st.from_pretrained(DIR)`` read. With ``--family`` the
``--model-arg`` values are the official constructor's keyword arguments (as in the official training script);
with ``--model`` they override the registered variant's. Every official key is accounted for: converted, or
dropped because the official forward never uses it; anything else is an error naming the key.
"""

from __future__ import annotations

import argparse

from ._common import add_loading_arguments, load_from_args

NAME = "convert"
HELP = "convert an official checkpoint (or a run, or any weights) into a model folder: model.safetensors + config.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="official .pth/.pt/.tar file, .safetensors file, run folder or checkpoint folder")
    add_loading_arguments(p)
    p.add_argument("--ema", action="store_true", help="a run's EMA weights")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder to write (created)")
    p.add_argument("--force", action="store_true", help="overwrite DIR/model.safetensors if it exists")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..loading import CONFIG_NAME, WEIGHTS_NAME, save_pretrained

    out = Path(args.out)
    if (out / WEIGHTS_NAME).exists() and not args.force:
        raise ValueError(f"--out {out}: {WEIGHTS_NAME} exists already; pass --force to overwrite it")
    loaded = load_from_args(args.checkpoint, args, ema=args.ema)
    for note in loaded.notes:
        print(note)
    save_pretrained(loaded.model, out, source=str(Path(args.checkpoint).resolve()), data=loaded.data)
    n = sum(p.numel() for p in loaded.model.parameters())
    print(f"wrote {out / WEIGHTS_NAME} and {out / CONFIG_NAME}: {loaded.name} ({loaded.kind}), {n / 1e6:.3f}M "
          f"parameters, T={getattr(loaded.model, 'T', '?')}; load with st.from_pretrained({str(out)!r}) or "
          f"`spiking-transformers eval {out} --data NAME`")
    return 0
