"""Checkpoints that lose nothing, written atomically, verified on load.

A checkpoint is a folder ``RUN/checkpoints/step-00001234/`` holding

* ``model.safetensors`` — the weights (and buffers) of the model;
* ``ema.safetensors`` — the EMA weights, when EMA is on;
* ``state.safetensors`` — every tensor of the training state: optimiser moments, RNG states of torch and of the
  trainer's generators (per rank);
* ``state.json`` — everything else: epoch, optimiser step, position inside the epoch (batches consumed), the
  scheduler, the optimiser's non-tensor state and parameter groups, numpy and Python RNG states, the running
  sums of the epoch's metrics, the metric history, and the SHA-256 of each ``.safetensors`` file.

Writing: everything goes to a temporary folder next to the target; each file is fsync'ed, then the folder, then
it is renamed into place (a rename within one file system is atomic) and the parent folder is fsync'ed. A crash at
any point leaves either the old set of checkpoints or the new one, never a half-written folder under a final name.
``state.json`` is written last, so a folder without it is never a checkpoint.

Reading verifies the JSON, every file's hash, and the safetensors headers; any failure raises
:class:`CheckpointError` naming the file and the reason, and :meth:`CheckpointManager.load_latest` then falls back
to the next older checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "CheckpointManager", "find_checkpoint"]

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or corrupt."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes renames durable; not every platform allows opening a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest`` by renames only: an existing ``dest`` is renamed aside
    (``.old-<name>-<pid>``) first and removed last, so that a crash at any point leaves a complete folder."""
    old = None
    if dest.exists():
        old = dest.parent / f".old-{dest.name}-{os.getpid()}"
        os.rename(dest, old)
    os.rename(tmp, dest)
    _fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_checkpoint(path: str | Path, files: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> Path:
    """Atomically write a checkpoint folder.

    Args:
        path: final folder (replaced if it exists).
        files: ``{"model": state_dict, "state": {...}, ...}`` -> ``<name>.safetensors`` each.
        meta: JSON-serialisable training state -> ``state.json`` (with the files' hashes added).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    hashes = {}
    for name, tensors in files.items():
        f = tmp / f"{name}.safetensors"
        save_file(_contiguous(tensors), str(f))
        _fsync_file(f)
        hashes[f.name] = _sha256(f)
    state = tmp / "state.json"
    with open(state, "w") as fh:
        json.dump({**meta, "files": hashes}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(tmp)
    _replace_dir(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read and verify a checkpoint folder: ``(files, meta)``; raises :class:`CheckpointError` if anything is off."""
    path = Path(path)
    state = path / "state.json"
    if not state.is_file():
        raise CheckpointError(f"{path}: not a checkpoint (no state.json; the write may have been interrupted)")
    try:
        meta = json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{state}: corrupt or truncated JSON ({exc})") from None
    files: dict[str, dict[str, torch.Tensor]] = {}
    for fname, digest in meta.get("files", {}).items():
        f = path / fname
        if not f.is_file():
            raise CheckpointError(f"{f}: missing")
        actual = _sha256(f)
        if actual != digest:
            raise CheckpointError(
                f"{f}: corrupt or truncated ({f.stat().st_size} bytes; SHA-256 {actual[:12]} differs from the "
                f"recorded {digest[:12]})"
            )
        try:
            files[fname.removesuffix(".safetensors")] = load_file(str(f))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{f}: unreadable safetensors file ({exc})") from None
    return files, meta


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a run folder (its newest checkpoint), a checkpoints folder, or itself."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    steps = CheckpointManager(path.parent if path.name == "checkpoints" else path).step_dirs()
    if not steps:
        raise CheckpointError(f"{path}: no checkpoint found")
    return steps[-1]


class CheckpointManager:
    """The checkpoints of one run: ``RUN/checkpoints/step-*`` (the last ``keep_last``) and ``RUN/checkpoints/best``."""

    def __init__(self, run_dir: str | Path, keep_last: int = 2) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "checkpoints"
        self.keep_last = keep_last

    def step_dirs(self) -> list[Path]:
        """Checkpoint folders, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
        return [p for _, p in sorted(found)]

    def save(
        self, step: int, files: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any], *, best: bool = False
    ) -> Path:
        path = save_checkpoint(self.dir / f"step-{step:08d}", files, meta)
        if best:
            self._link_best(path)
        for old in self.step_dirs()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.dir.glob(".tmp-*"):
            if not stale.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(stale, ignore_errors=True)
        return path

    def _link_best(self, src: Path) -> None:
        # The best checkpoint shares files with its step folder (hard links; files are never modified in place).
        tmp = self.dir / f".tmp-best-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for f in src.iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
        _fsync_dir(tmp)
        _replace_dir(tmp, self.dir / "best")

    def load_latest(self) -> tuple[Path, dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
        """The newest checkpoint that verifies, falling back past corrupt ones (each reported); ``None`` if none."""
        errors = []
        for path in reversed(self.step_dirs()):
            try:
                files, meta = load_checkpoint(path)
            except CheckpointError as exc:
                log.warning("checkpoint %s is unusable: %s; falling back to the previous one", path.name, exc)
                errors.append(str(exc))
                continue
            return path, files, meta
        if errors:
            raise CheckpointError(
                f"no usable checkpoint in {self.dir}: all {len(errors)} are damaged (newest: {errors[0]}); "
                f"start afresh without --resume (another --out), or restore the folder from a copy")
        return None
