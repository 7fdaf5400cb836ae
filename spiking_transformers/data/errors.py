"""The one error type of the data package: a file that is missing, truncated or not in the expected format."""

from __future__ import annotations

import os

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A data file or folder is missing, truncated, corrupt or not in the expected format.

    The message names the file, where in it the problem is (byte offset or line number, when known) and what was
    expected, e.g. ``"cifar10_cat_3.aedat: byte 1042: truncated event record; expected 8-byte (address, timestamp)
    pairs"``. The parts are also kept as attributes so that callers (such as the skip-bad-files option of the event
    data sets) can report them.

    Args:
        path: the file or folder at fault (``None`` for an in-memory buffer).
        problem: what is wrong.
        offset: byte offset of the problem in the file, if known.
        line: 1-based line number of the problem in a text file, if known.
        expected: what the reader expected to find, if useful.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, *, offset: int | None = None,
                 line: int | None = None, expected: str | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.offset = offset
        self.line = line
        self.expected = expected
        parts = [self.path if self.path is not None else "<bytes>"]
        if offset is not None:
            parts.append(f"byte {offset}")
        if line is not None:
            parts.append(f"line {line}")
        msg = ": ".join(parts) + f": {problem}"
        if expected:
            msg += f"; expected {expected}"
        super().__init__(msg)
