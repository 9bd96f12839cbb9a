"""Correct rounding of exact mpmath values to IEEE formats (round to nearest, ties to
even, gradual underflow, overflow to +-inf, signed zero).

Rounding happens once, from the exact (or high-precision) value straight to the target
format, so there is no double rounding through float64 for float32/float16/bfloat16.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from mpmath.libmp import finf as _FINF, fninf as _FNINF, fzero as _FZERO


@dataclass(frozen=True)
class Format:
    name: str
    prec: int   # significand bits, hidden bit included
    emin: int   # exponent of the smallest normal number
    emax: int   # exponent of the largest finite number

    @property
    def quantum(self) -> int:
        """Exponent of the smallest subnormal's unit."""
        return self.emin - self.prec + 1


FORMATS = {
    "float64": Format("float64", 53, -1022, 1023),
    "float32": Format("float32", 24, -126, 127),
    "float16": Format("float16", 11, -14, 15),
    "bfloat16": Format("bfloat16", 8, -126, 127),
}


def format_of(dtype) -> Format:
    if isinstance(dtype, Format):
        return dtype
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"no IEEE format {name!r}; expected one of {', '.join(FORMATS)}") from None


def _rne_shift(man: int, shift: int) -> int:
    """round(man / 2**shift) with ties to even, for shift > 0."""
    q, r = divmod(man, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return q


def round_exact(sign: int, man: int, exp: int, fmt: Format) -> float:
    """Round (-1)**sign * man * 2**exp (man >= 0, an exact integer) to ``fmt``; the result
    is returned as a Python float holding the exactly representable value (+-inf on
    overflow; float16/bfloat16/float32 values are exact in float64)."""
    if man == 0:
        return -0.0 if sign else 0.0
    top = exp + man.bit_length() - 1               # exponent of the leading bit
    if top > fmt.emax:
        return -math.inf if sign else math.inf
    if top < fmt.quantum - 1:                      # below half the smallest subnormal
        return -0.0 if sign else 0.0
    quantum = max(top - fmt.prec + 1, fmt.quantum)  # exponent of the last kept bit
    if exp < quantum:
        man = _rne_shift(man, quantum - exp)
        exp = quantum
    if man == 0:
        return -0.0 if sign else 0.0
    if exp + man.bit_length() - 1 > fmt.emax:
        return -math.inf if sign else math.inf
    value = math.ldexp(man, exp) if man.bit_length() <= 53 else float(man) * 2.0 ** exp
    return -value if sign else value


def round_rational(num: int, den: int, fmt: Format) -> float:
    """Round the exact rational num / den (den > 0) to ``fmt``, ties to even.

    The quotient is scaled by 2**-q, where q is the exponent of the last bit the
    format keeps at this magnitude, so one integer division leaves the kept bits in
    ``m`` and the remainder decides the rounding exactly (2r vs den: below, tie, above).
    """
    if den <= 0:
        raise ValueError("round_rational: den must be positive")
    sign = 1 if num < 0 else 0
    n = -num if sign else num
    if n == 0:
        return -0.0 if sign else 0.0
    # t = floor(log2(n / den)), exactly: start from the bit lengths and correct by one
    t = n.bit_length() - den.bit_length()
    if (n << -t if t < 0 else n) < (den << t if t > 0 else den):
        t -= 1
    if t > fmt.emax:
        return -math.inf if sign else math.inf
    q = max(t - fmt.prec + 1, fmt.quantum)
    a, b = (n << -q, den) if q <= 0 else (n, den << q)
    m, r = divmod(a, b)
    if 2 * r > b or (2 * r == b and m & 1):
        m += 1
    return round_exact(sign, m, q, fmt)


def round_raw(mpf_, fmt: Format) -> float:
    """Round a raw mpmath mpf tuple ``(sign, man, exp, bc)`` to ``fmt``."""
    sign, man, exp, bc = mpf_
    if not man:
        if mpf_ == _FZERO:
            return 0.0
        if mpf_ == _FINF:
            return math.inf
        if mpf_ == _FNINF:
            return -math.inf
        return math.nan
    return round_exact(sign, int(man), int(exp), fmt)


def round_mpf(x, dtype) -> float:
    """Correctly round an mpmath ``mpf`` (or anything with ``_mpf_``) to ``dtype``."""
    return round_raw(x._mpf_, format_of(dtype))


def storage_dtype(dtype):
    """NumPy dtype that holds values of ``dtype``: bfloat16 is ``ml_dtypes.bfloat16`` when
    ml_dtypes is installed, else float32 (bfloat16 values are exact in float32)."""
    name = format_of(dtype).name
    if name == "bfloat16":
        try:
            import ml_dtypes
            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            return np.dtype(np.float32)
    return np.dtype(name)


def round_array(values: np.ndarray, dtype) -> np.ndarray:
    """Round an object array of mpf to a float array of ``dtype`` (float32/float64; for
    float16/bfloat16 the values are returned as float32 holding representable values)."""
    values = np.asarray(values, dtype=object)
    flat = [round_mpf(v, dtype) for v in values.ravel().tolist()]
    name = format_of(dtype).name
    store = np.float64 if name == "float64" else (np.float16 if name == "float16" else np.float32)
    return np.array(flat, dtype=store).reshape(values.shape)
