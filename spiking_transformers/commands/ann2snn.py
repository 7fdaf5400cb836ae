"""``spiking-transformers ann2snn``: MST's ANN-to-SNN pipeline on the bundled digits.

    spiking-transformers ann2snn [--epochs N] [--levels L] [--sim-lens 4 8 16 32] [--mask-ratios 0 .25 .5 .75]
                                 [--out DIR]

Trains the QCFS ANN, converts it to the SNN, and prints accuracy against the simulation length and accuracy and
measured synaptic operations against the Random Spike Masking ratio; writes ``ann2snn.json`` and ``ann2snn.png``.
"""

from __future__ import annotations

import argparse

NAME = "ann2snn"
HELP = "MST on the digits: train the QCFS ANN, convert to an SNN, accuracy vs. simulation length and spike masking"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training.ann2snn import Ann2SnnConfig

    d = Ann2SnnConfig()
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"ANN training epochs (default: {d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default: {d.lr})")
    p.add_argument("--levels", type=int, default=d.levels,
                   help=f"QCFS quantisation levels L (default: {d.levels}; the official setting is 16)")
    p.add_argument("--img-size", type=int, default=d.img_size, help=f"digits upsampled to this size ({d.img_size})")
    p.add_argument("--embed-dim", type=int, default=d.embed_dim, help=f"width of the first stage ({d.embed_dim})")
    p.add_argument("--sim-lens", type=int, nargs="+", default=list(d.sim_lens), metavar="T",
                   help="simulation lengths to report (default: 4 8 16 32)")
    p.add_argument("--mask-ratios", type=float, nargs="+", default=list(d.mask_ratios), metavar="R",
                   help="Random Spike Masking ratios of the sweep (default: 0 0.25 0.5 0.75)")
    p.add_argument("--mask-sim-len", type=int, default=None, metavar="T",
                   help="simulation length of the masking sweep (default: the longest of --sim-lens)")
    p.add_argument("--sop-samples", type=int, default=d.sop_samples,
                   help=f"test images over which operations are counted (default: {d.sop_samples})")
    p.add_argument("--retrain-masked", action="store_true",
                   help="train one ANN per masking ratio with the masks on (the paper); default: mask one model")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (default: 0)")
    p.add_argument("--out", metavar="DIR", default="ann2snn_out",
                   help="folder for ann2snn.json and ann2snn.png (default: ./ann2snn_out)")


def run(args: argparse.Namespace) -> int:
    from ..training.ann2snn import Ann2SnnConfig, format_tables, run_ann2snn

    cfg = Ann2SnnConfig(
        epochs=args.epochs, lr=args.lr, levels=args.levels, img_size=args.img_size, embed_dim=args.embed_dim,
        sim_lens=tuple(args.sim_lens), mask_ratios=tuple(args.mask_ratios),
        mask_sim_len=args.mask_sim_len or max(args.sim_lens), sop_samples=args.sop_samples,
        retrain_masked=args.retrain_masked, train_limit=args.train_limit, test_limit=args.test_limit, seed=args.seed,
    )
    result = run_ann2snn(cfg, out_dir=args.out, progress=lambda s: print(s, flush=True))
    print()
    print(format_tables(result))
    print(f"\nwrote {args.out}/ann2snn.json and {args.out}/ann2snn.png")
    return 0
