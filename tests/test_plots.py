"""The one plotting module: matplotlib only there, one error without it, figures closed, old names still importable."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from spiking_transformers.analysis import plots

PACKAGE = Path(plots.__file__).resolve().parents[1]


def test_matplotlib_is_imported_only_by_the_plots_module():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == Path(plots.__file__).resolve():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(import matplotlib|from matplotlib\b)", line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{n}")
    assert not offenders, f"matplotlib imported outside analysis/plots.py: {offenders}"


def test_missing_matplotlib_is_one_clear_error(monkeypatch, tmp_path, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r"matplotlib: pip install 'spiking-transformers\[plot\]'"):
        plots.pyplot()
    with pytest.raises(ImportError, match=r"spiking-transformers\[plot\]"):
        plots.plot_confusion_counts(np.eye(2, dtype=np.int64), tmp_path / "c.png", ["a", "b"])
    # figures a run draws by the way are skipped with one warning that names the file and the extra
    history = [dict(epoch=1, train_loss=1.0, test_loss=1.0, train_top1=50.0, test_top1=50.0, firing_rate=0.1)]
    with caplog.at_level(logging.WARNING, logger=plots.__name__):
        assert plots.plot_history(history, tmp_path / "curves.png") is None
    assert "curves.png" in caplog.text and "spiking-transformers[plot]" in caplog.text
    assert not (tmp_path / "curves.png").exists()


def test_figures_are_written_and_closed(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = set(plt.get_fignums())
    conf = [[3, 1, 0], [0, 2, 2], [1, 0, 4]]
    out = plots.plot_confusion(conf, ["a", "b", "c"], tmp_path / "conf.png")
    assert out == tmp_path / "conf.png" and out.read_bytes()[:4] == b"\x89PNG"
    assert set(plt.get_fignums()) == before  # save_figure closed it


def test_old_names_are_the_plots_functions():
    from spiking_transformers.analysis import report
    from spiking_transformers.commands import compare, eval as eval_cmd
    from spiking_transformers.training import ann2snn, records, speech

    assert records.plot_history is plots.plot_history
    assert ann2snn.plot_ann2snn is plots.plot_ann2snn
    assert speech.plot_confusion is plots.plot_confusion_counts
    assert eval_cmd.plot_confusion is plots.plot_confusion
    assert compare.plot_pareto is plots.plot_pareto and compare._label_offsets is plots.label_offsets
    assert report.plot_report is plots.plot_report and report.plot_comparison is plots.plot_comparison
