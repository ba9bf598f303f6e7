"""Random weights for compute mode, already rounded to the device dtype, so the device and the numpy
reference start from the same numbers."""

from __future__ import annotations

import numpy as np

from neurontools import dtypes


class WeightMaker:
    def __init__(self, dtype: str, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self._dtype = dtypes.from_name(dtype)

    def matrix(self, rows: int, columns: int) -> np.ndarray:
        """A projection [fan_in, fan_out], scaled by 1/sqrt(fan_in) so activations keep their size."""
        return self._round(self._rng.standard_normal((rows, columns)) / np.sqrt(rows))

    def gains(self, *shape: int) -> np.ndarray:
        """Norm weights around 1."""
        return self._round(1 + 0.1 * self._rng.standard_normal(shape))

    def offsets(self, *shape: int) -> np.ndarray:
        """Biases and norm offsets around 0."""
        return self._round(0.1 * self._rng.standard_normal(shape))

    def _round(self, values: np.ndarray) -> np.ndarray:
        return rounded(values, self._dtype)


def rounded(values: np.ndarray, dtype: int) -> np.ndarray:
    """float32 values exactly representable in `dtype` (what the device stores)."""
    return dtypes.cast_to(np.asarray(values, np.float32), dtype).astype(np.float32)
