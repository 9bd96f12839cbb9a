"""Per-element classification of a backend's result against the certified oracle.

``want`` is the exact value correctly rounded to the case's dtype (``refrt.oracle``), NaN
where the exact value is undefined.  Each element gets at most one class, tested in the
order of ``KINDS`` (the first that applies):

  nan             NaN where the exact value is defined: a number, or a limit +-inf
                  (log_softmax of a row holding +inf is -inf off the +inf entry, not NaN)
  wrong_sign_inf  +-inf where the exact value is the opposite infinity (not at a signed
                  zero input: real numbers have no -0, so 1 / -0 = -inf is IEEE's choice)
  overflow        +-inf where the exact value is finite (an intermediate overflowed, or a
                  log of an underflowed 0)
  underflow       0, or a subnormal more than ``LOST_BITS`` bits off, where the exact value
                  is a nonzero *normal* number.  A subnormal exact value flushed to 0 is
                  not underflow: it counts by its bits (the smallest subnormal flushed is
                  1 ulp, 1 bit)
  bits            finite (or a finite value where the exact value is a limit +-inf) with
                  more than ``LOST_BITS`` bits of error (Herbie's log2(1 + ulps))

Not findings: an exact value beyond the format's range whose correctly rounded value is
+-inf (``want`` is inf and so is ``got``: correct rounding); any result where the exact
value is undefined (``want`` NaN).

XLA's error classes (``xla_class``) split elements by their inputs, as XLA's exhaustive
accuracy tests and JAX's published ulp tables do: ``regular`` (every input a finite
normal number or 0-free), ``subnormal`` (some input subnormal, none special) and
``special`` (some input +-0, +-inf or NaN).  Summaries give max ulp per class so they
compare with those budgets.
"""
from __future__ import annotations

import numpy as np

from ..metrics import ulp_distance
from ..rounding import format_of

LOST_BITS = 4.0     # more than 4 bits (15 ulp) of error is a finding
KINDS = ("nan", "wrong_sign_inf", "overflow", "underflow", "bits")
# gradients use the same kinds; records keep them apart by phase ("forward"/"gradient")
XLA_CLASSES = ("regular", "subnormal", "special")


def smallest_normal(dtype) -> float:
    fmt = format_of(dtype)
    return 2.0 ** fmt.emin


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def pole_sign_only(got, want, arrays):
    """Elements that differ only by the sign of an infinity at a zero input."""
    got, want = _f64(got), _f64(want)
    mask = np.isinf(got) & np.isinf(want) & (np.sign(got) != np.sign(want))
    if not mask.any():
        return mask
    zero = np.zeros(got.shape, dtype=bool)
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind == "f" and a.shape == got.shape:
            zero |= (a == 0)
    return mask & zero


def errors(got, want, dtype, arrays=()):
    """``(ulps, bits)`` per element (0 where the exact value is undefined or where only
    the sign of a pole's infinity differs)."""
    got, want = _f64(got), _f64(want)
    d = ulp_distance(got, want, dtype) if got.size else np.zeros(got.shape)
    d = np.where(np.isnan(want) | pole_sign_only(got, want, arrays), 0.0, d)
    return d, np.log2(1.0 + d)


def classify(got, want, dtype, arrays=(), bits=None, lost_bits=LOST_BITS) -> np.ndarray:
    """Per-element class (an object array of ``KINDS`` entries, '' where fine)."""
    got, want = _f64(got), _f64(want)
    if bits is None:
        bits = errors(got, want, dtype, arrays)[1]
    out = np.full(got.shape, "", dtype=object)
    defined = ~np.isnan(want)
    tiny = smallest_normal(dtype)
    with np.errstate(invalid="ignore"):
        todo = defined.copy()
        rules = (
            ("nan", np.isnan(got)),
            ("wrong_sign_inf", np.isinf(got) & np.isinf(want) & (np.sign(got) != np.sign(want))
             & ~pole_sign_only(got, want, arrays)),
            ("overflow", np.isinf(got) & np.isfinite(want)),
            ("underflow", np.isfinite(want) & (np.abs(want) >= tiny) & np.isfinite(got)
             & (bits > lost_bits) & ((got == 0) | (np.abs(got) < tiny))),
            ("bits", ~np.isnan(got) & (bits > lost_bits)),
        )
        for kind, mask in rules:
            hit = todo & mask
            out[hit] = kind
            todo &= ~hit
    return out


def xla_class(arrays, out_shape, dtype) -> np.ndarray:
    """Per output element: 'regular', 'subnormal' or 'special' from the inputs at that
    element (elementwise ops) or from all inputs (row and whole-array ops)."""
    tiny = smallest_normal(dtype)
    special = np.zeros(out_shape, bool)
    sub = np.zeros(out_shape, bool)
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind != "f":
            continue
        a = _f64(a)
        s = (a == 0) | ~np.isfinite(a)
        u = (a != 0) & (np.abs(a) < tiny)
        if a.shape == tuple(out_shape):
            special |= s
            sub |= u
        else:
            special |= bool(s.any())
            sub |= bool(u.any())
    out = np.full(out_shape, "regular", dtype=object)
    out[sub] = "subnormal"
    out[special] = "special"
    return out
