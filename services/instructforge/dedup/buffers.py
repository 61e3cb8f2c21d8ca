"""Append-only numpy arrays with amortised O(1) growth: per-entry columns of a collection.

Python lists of ints cost ~36 bytes per value; these cost the dtype's size (plus slack of at most
the current length), which is what makes 10 M entries per node affordable.
"""

from __future__ import annotations

import numpy as np


class GrowArray:
    """A growable 1-D array, or 2-D with ``width`` columns (rows are appended)."""

    __slots__ = ("_data", "_shape", "_size")

    def __init__(self, dtype, capacity: int = 1024, width: int | None = None):
        self._shape = () if width is None else (width,)
        self._data = np.zeros((max(1, capacity), *self._shape), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def view(self) -> np.ndarray:
        """The filled part (a view: valid until the next append)."""
        return self._data[: self._size]

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def _reserve(self, extra: int) -> None:
        need = self._size + extra
        if need > len(self._data):
            grown = np.zeros((max(need, 2 * len(self._data)), *self._shape), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown

    def append(self, value) -> None:
        self._reserve(1)
        self._data[self._size] = value
        self._size += 1

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        self._reserve(len(values))
        self._data[self._size : self._size + len(values)] = values
        self._size += len(values)

    @classmethod
    def of(cls, values: np.ndarray) -> GrowArray:
        width = values.shape[1] if values.ndim == 2 else None
        out = cls(values.dtype, capacity=len(values) + 1024, width=width)
        out.extend(values)
        return out
