"""Error metrics between float arrays, vectorised.

``ulp_distance`` counts representable values between a and b in a format (+0 and -0
are equal, NaN against NaN is 0, NaN against a number is the maximum).  ``bits_error``
is Herbie's log2(1 + ordinal distance).
"""
from __future__ import annotations

import numpy as np

_UINT = {np.dtype(np.float64): (np.int64, 0x7FFFFFFFFFFFFFFF),
         np.dtype(np.float32): (np.int32, 0x7FFFFFFF),
         np.dtype(np.float16): (np.int16, 0x7FFF)}


def _dtype(dtype):
    if isinstance(dtype, str) and dtype == "bfloat16":
        return "bfloat16"
    dt = np.dtype(dtype)
    if dt.name == "bfloat16":
        return "bfloat16"
    return dt


def ordinal(a, dtype) -> np.ndarray:
    """Signed ordinal of each value in the sorted list of ``dtype`` floats (+0 = -0 = 0),
    as float64-safe Python-int-exact int64 (NaN maps to 0; mask NaNs separately)."""
    dt = _dtype(dtype)
    if dt == "bfloat16":
        bits32 = np.asarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
        bits = bits32 >> 16
        mag = bits & 0x7FFF
        return np.where(bits32 < 0, -mag, mag)
    ity, mask = _UINT[dt]
    arr = np.asarray(a, dtype=dt)
    bits = np.ascontiguousarray(arr).view(ity).astype(np.int64).reshape(arr.shape)
    mag = bits & mask
    return np.where(bits < 0, -mag, mag)


def max_ordinal_distance(dtype) -> int:
    dt = _dtype(dtype)
    if dt == "bfloat16":
        return 2 * 0x7F80
    return 2 * int(ordinal(np.array([np.inf], dtype=dt), dt)[0])


def ulp_distance(a, b, dtype) -> np.ndarray:
    """Number of representable ``dtype`` values between a and b (as float64 array)."""
    dt = _dtype(dtype)
    store = np.float32 if dt == "bfloat16" else dt
    a = np.asarray(a, dtype=store)
    b = np.asarray(b, dtype=store)
    oa, ob = ordinal(a, dt), ordinal(b, dt)
    # Same sign: |oa - ob| is exact in int64.  Opposite signs: |oa| + |ob| can pass
    # 2**63 for float64, so it is summed in uint64.
    same = (oa >= 0) == (ob >= 0)
    d_same = np.abs(np.where(same, oa - ob, 0))
    d_opp = np.abs(oa).astype(np.uint64) + np.abs(ob).astype(np.uint64)
    d = np.where(same, d_same.astype(np.float64), d_opp.astype(np.float64))
    na, nb = np.isnan(a), np.isnan(b)
    d = np.where(na & nb, 0.0, d)
    d = np.where(na ^ nb, float(max_ordinal_distance(dt)), d)
    return d


def bits_error(a, b, dtype) -> np.ndarray:
    """Herbie's bits of error: log2(1 + ulp_distance)."""
    return np.log2(1.0 + ulp_distance(a, b, dtype))


def relative_error(actual, expected) -> np.ndarray:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(actual - expected) / np.abs(expected)
    r = np.where((actual == expected) | (np.isnan(actual) & np.isnan(expected)), 0.0, r)
    return r


def absolute_error(actual, expected) -> np.ndarray:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        e = np.abs(actual - expected)
    return np.where((actual == expected) | (np.isnan(actual) & np.isnan(expected)), 0.0, e)
