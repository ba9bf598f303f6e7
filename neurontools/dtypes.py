"""The Neuron tensor dtypes and their numpy storage types (ml_dtypes for the narrow floats)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from neurontools._proto import neurond_pb2 as pb

# tfloat32 is stored as float32 whose mantissa is rounded to 10 bits (see round_tfloat32).
_STORAGE: dict[int, np.dtype] = {
    pb.FLOAT32: np.dtype(np.float32),
    pb.TFLOAT32: np.dtype(np.float32),
    pb.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    pb.FLOAT16: np.dtype(np.float16),
    pb.FLOAT8_E4M3: np.dtype(ml_dtypes.float8_e4m3),
    pb.FLOAT8_E5M2: np.dtype(ml_dtypes.float8_e5m2),
    pb.INT8: np.dtype(np.int8),
    pb.UINT8: np.dtype(np.uint8),
    pb.INT16: np.dtype(np.int16),
    pb.INT32: np.dtype(np.int32),
    pb.UINT32: np.dtype(np.uint32),
}

NAMES: dict[int, str] = {value: pb.DType.Name(value).lower() for value in _STORAGE}
BY_NAME: dict[str, int] = {name: value for value, name in NAMES.items()}


class UnknownDType(ValueError):
    pass


def storage_dtype(dtype: int) -> np.dtype:
    """numpy dtype that holds `dtype` (a pb.DType value)."""
    try:
        return _STORAGE[dtype]
    except KeyError:
        raise UnknownDType(
            f"unsupported dtype {dtype}; use one of: {', '.join(sorted(BY_NAME))}") from None


def itemsize(dtype: int) -> int:
    return storage_dtype(dtype).itemsize


def from_name(name: str) -> int:
    """pb.DType value for a name such as "bfloat16" (also accepts numpy dtype names)."""
    key = str(name).lower()
    if key in BY_NAME:
        return BY_NAME[key]
    for value, np_dtype in _STORAGE.items():
        if value != pb.TFLOAT32 and np_dtype.name == key:
            return value
    raise UnknownDType(f"unsupported dtype {name!r}; use one of: {', '.join(sorted(BY_NAME))}")


def from_numpy(np_dtype: np.dtype) -> int:
    np_dtype = np.dtype(np_dtype)
    for value, storage in _STORAGE.items():
        if value != pb.TFLOAT32 and storage == np_dtype:
            return value
    raise UnknownDType(
        f"numpy dtype {np_dtype} has no Neuron equivalent; use one of: {', '.join(sorted(BY_NAME))}")


def is_float(dtype: int) -> bool:
    return dtype in (pb.FLOAT32, pb.TFLOAT32, pb.BFLOAT16, pb.FLOAT16, pb.FLOAT8_E4M3, pb.FLOAT8_E5M2)


def round_tfloat32(values: np.ndarray) -> np.ndarray:
    """Round float32 values to tfloat32 precision (10 explicit mantissa bits), nearest-even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    finite = (bits & 0x7F800000) != 0x7F800000
    lsb = (bits >> 13) & 1
    rounded = ((bits.astype(np.uint64) + 0x0FFF + lsb) & 0xFFFFE000).astype(np.uint32)
    return np.where(finite, rounded, bits).view(np.float32)


def cast_to(values: np.ndarray, dtype: int) -> np.ndarray:
    """Store `values` as `dtype` with round-to-nearest-even (saturating for integers)."""
    target = storage_dtype(dtype)
    if dtype == pb.TFLOAT32:
        return round_tfloat32(np.asarray(values, dtype=np.float32))
    if np.issubdtype(target, np.integer):
        info = np.iinfo(target)
        return np.clip(np.rint(np.asarray(values, dtype=np.float64)), info.min, info.max).astype(target)
    return np.asarray(values).astype(target)
