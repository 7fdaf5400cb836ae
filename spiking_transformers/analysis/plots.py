"""Every matplotlib figure the package draws, and the one place that imports matplotlib.

matplotlib is optional (the ``plot`` extra). :func:`pyplot` imports it on first use, on the file-only ``Agg`` back end
(no display is ever needed), and raises one :class:`ImportError` naming the extra when it is missing;
:func:`optional_pyplot` is the variant for figures that a run writes by the way (learning curves), which log that
message and skip the figure. :func:`save_figure` is the one way a figure reaches disk (tight layout, PNG at the
figure's dpi, figure closed so that long runs do not pile up open figures).

The figure functions used to live beside their callers; those names are still importable there:
``training.records.plot_history``, ``training.ann2snn.plot_ann2snn``, ``training.speech.plot_confusion``
(:func:`plot_confusion_counts` here), ``commands.eval.plot_confusion``, ``commands.compare.plot_pareto``,
``analysis.report.plot_report`` / ``plot_comparison``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

    from .analyze import EnergyReport

__all__ = [
    "MISSING_MATPLOTLIB",
    "pyplot",
    "optional_pyplot",
    "save_figure",
    "write_rgb_png",
    "plot_history",
    "plot_ann2snn",
    "plot_report",
    "plot_comparison",
    "plot_pareto",
    "label_offsets",
    "plot_confusion",
    "plot_confusion_counts",
]

log = logging.getLogger(__name__)

MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'spiking-transformers[plot]'"

GRID_ALPHA = 0.3  # light grid lines on line and scatter plots

PathLike = str | os.PathLike[str]


# ----------------------------------------------------------------------------------------------------------------------
# matplotlib, figures to files
# ----------------------------------------------------------------------------------------------------------------------

def pyplot() -> Any:
    """``matplotlib.pyplot`` on the ``Agg`` back end; an :class:`ImportError` naming the ``plot`` extra without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(MISSING_MATPLOTLIB) from exc
    return plt


def optional_pyplot(what: str) -> Any | None:
    """:func:`pyplot`, or ``None`` after one warning that ``what`` (e.g. ``"curves.png"``) is not drawn."""
    try:
        return pyplot()
    except ImportError:
        log.warning("no %s: %s", what, MISSING_MATPLOTLIB)
        return None


def save_figure(fig: Any, path: PathLike, *, dpi: int) -> Path:
    """Lay ``fig`` out tightly, write it to ``path`` (format from the suffix, PNG in practice) and close it."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def write_rgb_png(path: PathLike, rgb: np.ndarray) -> None:
    """Save an ``[H, W, 3]`` uint8 image as PNG with Pillow, else matplotlib; a clear error when neither is there."""
    try:
        from PIL import Image
    except ImportError:
        try:
            import matplotlib.image as mpimg
        except ImportError:
            raise ValueError("writing a PNG needs Pillow or matplotlib: pip install pillow") from None
        mpimg.imsave(path, rgb)
        return
    Image.fromarray(rgb, "RGB").save(path, format="PNG")


# ----------------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------------

def plot_history(history: list[dict[str, Any]], path: PathLike) -> Path | None:
    """PNG of the learning curves (loss, top-1) and the mean firing rate per epoch; ``None`` without matplotlib.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss``, ``test_loss``, ``train_top1``, ``test_top1``,
    ``firing_rate`` and, where an EMA is kept, ``test_top1_ema``.
    """
    plt = optional_pyplot(f"learning-curve plot {Path(path).name}")
    if plt is None:
        return None
    ep = [r["epoch"] for r in history]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    ax[0].plot(ep, [r["test_loss"] for r in history], "s-", label="test")
    ax[0].set(title="loss", xlabel="epoch")
    ax[1].plot(ep, [r["train_top1"] for r in history], "o-", label="train")
    ax[1].plot(ep, [r["test_top1"] for r in history], "s-", label="test top-1")
    if any("test_top1_ema" in r for r in history):
        ax[1].plot(ep, [r.get("test_top1_ema", float("nan")) for r in history], "^-", label="test top-1 (EMA)")
    ax[1].set(title="accuracy (%)", xlabel="epoch")
    ax[2].plot(ep, [r["firing_rate"] for r in history], "o-", color="C3")
    ax[2].set(title="mean firing rate (test)", xlabel="epoch")
    for a in ax[:2]:
        a.legend()
    for a in ax:
        a.grid(alpha=GRID_ALPHA)
    return save_figure(fig, path, dpi=110)


def plot_ann2snn(result: dict[str, Any], path: PathLike) -> Path | None:
    """Two panels: SNN accuracy against simulation length (ANN as a line), and accuracy and ACs against the
    masking ratio. ``result`` is what ``training.ann2snn.run_ann2snn`` returns. Returns the path, or ``None``
    without matplotlib."""
    plt = optional_pyplot(f"ANN-to-SNN plot {Path(path).name}")
    if plt is None:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    per_step = result["snn_accuracy_per_step"]
    a.plot(range(1, len(per_step) + 1), [100 * v for v in per_step], color="tab:blue", label="SNN (running sum)")
    Ts = [int(t) for t in result["snn_accuracy"]]
    a.plot(Ts, [100 * v for v in result["snn_accuracy"].values()], "o", color="tab:blue")
    a.axhline(100 * result["ann_accuracy"], color="tab:gray", ls="--", label="QCFS ANN")
    a.set_xscale("log", base=2)
    a.set_xlabel("simulation length T")
    a.set_ylabel("test accuracy (%)")
    a.set_title("MST on digits: accuracy vs. simulation length")
    a.legend(loc="lower right")
    rows = result["masking"]
    ratios = [100 * r["mask_ratio"] for r in rows]
    b.plot(ratios, [100 * r["accuracy"] for r in rows], "o-", color="tab:blue")
    b.set_xlabel("masking ratio (%)")
    b.set_ylabel("test accuracy (%)", color="tab:blue")
    b2 = b.twinx()
    b2.plot(ratios, [r["acs"] / 1e6 for r in rows], "s--", color="tab:red")
    b2.set_ylabel("ACs per sample (millions)", color="tab:red")
    b.set_title(f"Random Spike Masking at T={result['config']['mask_sim_len']}")
    return save_figure(fig, path, dpi=100)


# ----------------------------------------------------------------------------------------------------------------------
# Confusion matrices
# ----------------------------------------------------------------------------------------------------------------------

def _annotate_cells(ax: Any, counts: Any, dark: Any, fontsize: int) -> None:
    """Write every non-zero count in its cell, white where the cell's shade is dark (``dark[i, j]`` true)."""
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=fontsize,
                        color="white" if dark[i, j] else "black")


def plot_confusion(conf: Sequence[Sequence[int]], classes: Sequence[str], path: PathLike) -> Path | None:
    """Row-normalised confusion matrix ``[K, K]`` (rows true class, columns prediction) as a PNG, counts written in
    the cells; class names on the axes up to 30 classes. ``None`` (with a warning) without matplotlib."""
    plt = optional_pyplot(f"confusion-matrix plot {Path(path).name}")
    if plt is None:
        return None
    import numpy as np

    m = np.asarray(conf, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        ax.set_xticks(range(k), classes, rotation=90)
        ax.set_yticks(range(k), classes)
        _annotate_cells(ax, m, norm > 0.5, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path, dpi=110)


def plot_confusion_counts(cm: np.ndarray, path: PathLike, labels: Sequence[str], title: str = "") -> Path:
    """Confusion matrix ``[K, K]`` of raw counts (rows true class, columns prediction) as a PNG, shaded by count.
    Raises :class:`ImportError` (naming the ``plot`` extra) without matplotlib."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _annotate_cells(ax, cm, cm > cm.max() / 2, fontsize=8)
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=110)


# ----------------------------------------------------------------------------------------------------------------------
# Energy reports
# ----------------------------------------------------------------------------------------------------------------------

def plot_report(report: EnergyReport, path: PathLike) -> None:
    """PNG with the firing rate of every neuron layer (top) and the energy per operation type beside the
    equivalent ANN's (bottom)."""
    from .report import human_energy

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 0.18 * len(report.neurons) + 3), 8.5))
    names = [n.name for n in report.neurons]
    ax1.bar(range(len(names)), [n.firing_rate for n in report.neurons], color="tab:blue")
    ax1.set_xticks(range(len(names)))
    ax1.set_xticklabels(names, rotation=90, fontsize=6)
    ax1.set_ylabel("firing rate (spikes / neuron / step)")
    ax1.set_title(f"{report.model}: firing rate per neuron layer (T={report.T}, {report.samples} samples)")
    ops = report.by_op_type()
    kinds = list(ops)
    xs = range(len(kinds))
    w = 0.38
    ax2.bar([x - w / 2 for x in xs], [ops[k]["snn_pj"] * 1e-9 for k in kinds], w, label="SNN (measured)")
    ax2.bar([x + w / 2 for x in xs], [ops[k]["ann_pj"] * 1e-9 for k in kinds], w, label="equivalent ANN")
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(kinds)
    ax2.set_ylabel("energy per sample (mJ)")
    t = report.totals
    ax2.set_title(f"energy by operation type: SNN {human_energy(t['energy_pj'])}, "
                  f"ANN {human_energy(t['energy_ann_pj'])} ({report.table.name})")
    ax2.legend()
    save_figure(fig, path, dpi=120)


def plot_comparison(reports: Sequence[EnergyReport], path: PathLike) -> None:
    """PNG comparing models: energy (measured, paper convention, ANN) and operations (ACs, MACs)."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4 + 2.2 * len(reports), 4.8))
    names = [r.model for r in reports]
    xs = range(len(names))
    w = 0.27
    for i, (key, label) in enumerate((("energy_pj", "SNN measured"), ("energy_paper_pj", "SNN paper convention"),
                                      ("energy_ann_pj", "equivalent ANN"))):
        ax1.bar([x + (i - 1) * w for x in xs], [r.totals[key] * 1e-9 for r in reports], w, label=label)
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels(names, rotation=20, ha="right")
    ax1.set_ylabel("energy per sample (mJ)")
    ax1.legend(fontsize=8)
    ax1.set_title("energy")
    w = 0.38
    ax2.bar([x - w / 2 for x in xs], [r.totals["acs"] for r in reports], w, label="ACs")
    ax2.bar([x + w / 2 for x in xs], [r.totals["macs"] for r in reports], w, label="MACs")
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels([f"{r.model}\n{r.audit.verdict}" for r in reports], rotation=20, ha="right", fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("operations per sample")
    ax2.legend(fontsize=8)
    ax2.set_title("operations")
    save_figure(fig, path, dpi=120)


# ----------------------------------------------------------------------------------------------------------------------
# Attention comparison (``spiking-transformers compare``)
# ----------------------------------------------------------------------------------------------------------------------

def label_offsets(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    """Label offsets (points) that keep the names of nearby markers from printing over each other.

    Positions are estimated on an axes of about 400 x 300 points; a label that would land within 45 points across
    and 10 points up or down of one already placed moves down 10 points at a time (highest marker placed first).
    """
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    offsets: list[tuple[float, float]] = [(5.0, 4.0)] * len(xs)
    placed: list[tuple[float, float]] = []
    for i in sorted(range(len(xs)), key=lambda i: -ys[i]):
        x = 400.0 * (xs[i] - min(xs)) / span_x
        y = 300.0 * (ys[i] - min(ys)) / span_y
        dy = 4.0
        while any(abs(x - px) < 45 and abs(y + dy - py) < 10 for px, py in placed):
            dy -= 10.0
        placed.append((x, y + dy))
        offsets[i] = (5.0, dy)
    return offsets


def plot_pareto(rows: list[dict[str, Any]], path: PathLike) -> None:
    """PNG: accuracy against energy per sample, one panel per data set, Pareto front as a line through its points.

    ``rows`` are the result rows of ``spiking-transformers compare`` (``data``, ``attention``, ``accuracy``,
    ``energy_pj``, ``verdict``, ``pareto``, ``backbone``, ``model_args``, ``epochs``, ``recipe``).
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    datas = list(dict.fromkeys(r["data"] for r in rows))
    fig, axes = plt.subplots(1, len(datas), figsize=(6.2 * len(datas), 4.8), squeeze=False)
    for ax, data in zip(axes[0], datas):
        sub = [r for r in rows if r["data"] == data]
        xs = [r["energy_pj"] * 1e-6 for r in sub]
        ys = [r["accuracy"] for r in sub]
        for r, x, y, offset in zip(sub, xs, ys, label_offsets(xs, ys)):
            marker = "o" if r["verdict"] == "spike-driven" else ("s" if r["verdict"] == "integer-driven" else "^")
            color = "tab:red" if r.get("pareto") else "tab:blue"
            ax.scatter([x], [y], marker=marker, s=60, color=color, zorder=3)
            ax.annotate(r["attention"], (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        front = [i for i, r in enumerate(sub) if r.get("pareto")]
        front.sort(key=lambda i: xs[i])
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="tab:red", lw=1.2,
                label="Pareto front (higher accuracy, lower energy)", zorder=2)
        ax.set_xlabel("energy per sample (uJ, 45 nm: AC 0.9 pJ, MAC 4.6 pJ)")
        ax.set_ylabel("test accuracy (%)")
        arch = sub[0]["model_args"]
        ax.set_title(f"{data}\n{sub[0]['backbone']} backbone, {arch.get('depth')} block(s) x {arch.get('embed_dim')}, "
                     f"{sub[0]['epochs']} epoch(s), one recipe ({sub[0]['recipe']})", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=GRID_ALPHA)
        for m, label in (("o", "spike-driven"), ("s", "integer-driven"), ("^", "not purely spiking")):
            ax.scatter([], [], marker=m, color="grey", label=label)
        ax.legend(fontsize=7, loc="best", framealpha=0.6)
    save_figure(fig, path, dpi=120)
