"""Measure a float kernel's error against the certified oracle, in ulps of its dtype.

The reference is ``refrt.oracle``: the op's mp formula evaluated in interval arithmetic
until the enclosure rounds to one value of the kernel's dtype (a plain 256-bit mp
evaluation is 1 ulp wrong just above rounding midpoints, e.g. expm1(2**-52)).  An element
the oracle cannot decide under its precision cap is NaN in the reference and so counts
as a maximal error: nothing is silently rounded.

Signed zeros: the reference computes with real numbers, where +0 and -0 are the same
number, so at a pole (1/x at x = -0) the sign of the infinity is IEEE's convention, not
the real value's.  Such elements (both results infinite, opposite signs, a zero input at
that index) are not counted as errors; the registry's special cases check the IEEE sign.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import families as fam
from .metrics import ulp_distance
from .ops import evaluate, evaluate_mp
from ._prepare import prepare
from .rounding import round_array


# The oracle's default cap (10,000 bits) leaves undecided the elements whose exact value
# lies within ~2**-10000 of a rounding midpoint: in float64 log_softmax with a spread of
# 2e4, x_i - max is often exactly a midpoint and the correction log1p(sum) ~ e**-15000
# decides the rounding.  Measurements raise the cap so those are decided, not skipped.
MEASURE_MAX_PREC = 1 << 16


@dataclass
class Measurement:
    op: str
    dtype: str
    family: str
    max_ulp: float
    worst_index: tuple
    worst_inputs: tuple
    got: float
    want: float
    n: int


def reference(spec, arrays, params, dtype, prec=None):
    """The correctly rounded value in ``dtype`` (certified; NaN where undecided).

    ``prec`` set: the plain mp backend at ``prec`` bits rounded once, instead (faster,
    uncertified)."""
    if prec is None:
        from .oracle import evaluate as certified
        return np.asarray(certified(spec.name, *arrays, dtype=np.dtype(dtype),
                                    on_undecided="nan", max_prec=MEASURE_MAX_PREC, **params))
    prepared, full, _, shape = prepare(spec, arrays, params, cast=True,
                                       backend={"float32": "f32", "float64": "f64"}[np.dtype(dtype).name])
    mp = evaluate_mp(spec, prepared, full, prec)
    return round_array(mp, dtype).reshape(shape)


def pole_sign_only(got, want, arrays):
    """Mask of elements that differ only by the sign of an infinity at a zero input."""
    mask = np.isinf(got) & np.isinf(want) & (np.sign(got) != np.sign(want))
    if not mask.any():
        return mask
    zero = np.zeros(got.shape, dtype=bool)
    for a in arrays:
        if a.shape == got.shape:
            zero |= (a == 0)
    return mask & zero


def measure(spec, dtype, family, seed=0, prec=None) -> Measurement:
    dtype = np.dtype(dtype)
    arrays, params = fam.generate(spec, family, dtype, seed)
    with np.errstate(all="ignore"):
        got = np.asarray(evaluate(spec.name, *arrays, **params))
    want = reference(spec, arrays, params, dtype, prec)
    d = ulp_distance(got, want, dtype) if got.size else np.zeros(0)
    if d.size:
        d = np.where(pole_sign_only(got, want, arrays), 0.0, d)
    if d.size == 0:
        return Measurement(spec.name, dtype.name, family, 0.0, (), (), np.nan, np.nan, 0)
    i = int(np.argmax(d))
    idx = np.unravel_index(i, d.shape) if d.ndim else ()
    inputs = tuple(a.ravel()[i] if a.shape == got.shape and a.size == got.size else None
                   for a in arrays)
    return Measurement(spec.name, dtype.name, family, float(d.max()), idx, inputs,
                       float(got.ravel()[i]) if got.ndim else float(got),
                       float(want.ravel()[i]) if want.ndim else float(want), int(d.size))


def table(ops, dtypes=("float32", "float64"), seeds=(0, 1)):
    """Max ulp per (op, dtype) over the op's families and seeds: {(op, dtype): (max, tol, family)}."""
    rows = {}
    for spec in ops:
        for dt in dtypes:
            worst = (0.0, "")
            for family in spec.families:
                for seed in seeds:
                    m = measure(spec, dt, family, seed)
                    if m.max_ulp > worst[0]:
                        worst = (m.max_ulp, family)
            rows[(spec.name, dt)] = (worst[0], spec.tol[dt], worst[1])
    return rows
