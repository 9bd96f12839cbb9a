"""What ``refrt.check`` accepts as inputs: arrays, Python numbers, and ``Range`` boxes."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import RefrtError as RefrtValueError, RefrtTypeError

FLOAT_NAMES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class Range:
    """A box of inputs to sample and search: every element in [low, high] (bounds may be
    +-inf), an array of ``shape`` and ``dtype`` ("float32" or "float64")."""

    low: float
    high: float
    shape: tuple = ()
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise RefrtTypeError(f"Range: argument {name!r} expected a real number, got "
                                     f"{type(v).__name__} {v!r}")
            if math.isnan(float(v)):
                raise RefrtValueError(f"Range: argument {name!r} expected a number, got nan")
        if float(self.low) > float(self.high):
            raise RefrtValueError(f"Range: argument 'low' expected low <= high, got low = "
                                  f"{self.low!r} > high = {self.high!r}")
        dt = np.dtype(self.dtype) if not isinstance(self.dtype, str) or self.dtype in FLOAT_NAMES \
            else None
        if dt is None or dt.name not in FLOAT_NAMES:
            raise RefrtTypeError(f"Range: argument 'dtype' expected 'float32' or 'float64', got "
                                 f"{self.dtype!r}")
        object.__setattr__(self, "dtype", dt.name)
        shape = (self.shape,) if isinstance(self.shape, (int, np.integer)) else self.shape
        try:
            if isinstance(shape, (str, bytes)):
                raise TypeError
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise RefrtTypeError(f"Range: argument 'shape' expected a tuple of non-negative "
                                 f"ints, got {self.shape!r}") from None
        if any(s < 0 for s in shape):
            raise RefrtValueError(f"Range: argument 'shape' expected non-negative sizes, got "
                                  f"{shape}")
        object.__setattr__(self, "shape", shape)
        lo, hi = self.bounds()
        if float(lo) > float(hi):
            raise RefrtValueError(f"Range: no {self.dtype} value lies in [{self.low!r}, "
                                  f"{self.high!r}]")

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    def bounds(self):
        """(low, high) rounded inward to the dtype (a box never grows when rounded)."""
        dt = self.np_dtype
        lo, hi = dt.type(self.low), dt.type(self.high)
        if float(lo) < float(self.low):
            lo = np.nextafter(lo, dt.type(np.inf))
        if float(hi) > float(self.high):
            hi = np.nextafter(hi, dt.type(-np.inf))
        return lo, hi

    def clip(self, a):
        lo, hi = self.bounds()
        return np.clip(a, lo, hi).astype(self.np_dtype)


def normalise(inputs):
    """(fixed arrays or None per input, Ranges or None per input, float dtype)."""
    floats = []
    for v in inputs:
        if isinstance(v, Range):
            floats.append(v.np_dtype)
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            floats.append(v.dtype.newbyteorder("="))
    dtype = np.dtype(np.float32) if floats and all(d == np.float32 for d in floats) \
        else np.dtype(np.float64)
    fixed, ranges = [], []
    for i, v in enumerate(inputs):
        if isinstance(v, Range):
            fixed.append(None)
            ranges.append(v)
            continue
        if isinstance(v, (bool, np.bool_)):
            raise RefrtTypeError(f"check: input {i} expected an array, a number or a Range, "
                                 "got a bool")
        if isinstance(v, (float, np.floating)):
            a = np.asarray(v, dtype=dtype)
        elif isinstance(v, (int, np.integer)):
            a = np.asarray(float(v), dtype=dtype)
        else:
            try:
                a = np.array(v)  # a private, plain (base-class) copy
            except Exception as err:
                raise RefrtTypeError(f"check: input {i} expected an array, a number or a "
                                     f"Range, got {type(v).__name__}") from err
            if a.dtype.kind not in "fiub":
                raise RefrtTypeError(f"check: input {i} expected a float array (or integer "
                                     f"class ids), got dtype {a.dtype}")
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
        fixed.append(a)
        ranges.append(None)
    return fixed, ranges, dtype
