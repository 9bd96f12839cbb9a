"""Abstract interval transformers for the misc2 ops (registry/misc2.py), merged into
``transfer.INTERVAL``.  Same contract: real-number bounds in float64 over the input
box, ``(lo, hi, nan)``.

* masks (logical_not, any, all) lie in {0, 1}, and are exact where the box decides them
  (logical_not: 1 on a point box at 0, 0 on a box that excludes 0); they are never NaN.
  Positions (argmax/argmin) lie in [0, n - 1]; rand_uniform in [0, 1].
* detach is the identity; dequantize is affine, scale (k - z); quantize is monotone
  (AffineQuantizer.quantize_mono), bounded by the codes of the box's ends (floor / ceil
  of the quotient: sound whatever the tie) and [qmin, qmax].
* clip_gradients multiplies g by a factor in [0, 1]: y lies between 0 and g (NaN as soon
  as an element may be NaN or infinite: inf * 0).  clip_by_percentile's y is g clamped
  to [-b, b] with 0 <= b <= max|g|: between 0 and g, and -b (>= -max|g|) for a NaN.
* diagonal_scan: the interval recurrence h = a h + b with the products' bounds.
"""
from __future__ import annotations

import numpy as np

from .transfer import _mul_bounds


def _mask01(ins, p, shape):
    return np.zeros(shape), np.ones(shape), np.zeros(shape, bool)


def _logical_not(ins, p, shape):
    x = ins[0]
    zero_in = (x.lo <= 0) & (x.hi >= 0)
    point0 = (x.lo == 0) & (x.hi == 0) & ~x.nan
    lo = np.where(point0, 1.0, 0.0)
    hi = np.where(zero_in, 1.0, 0.0)
    return lo, hi, np.zeros(shape, bool)


def _positions(ins, p, shape):
    x = ins[0]
    n = x.lo.size if p.get("axis") is None else x.lo.shape[p["axis"]]
    return np.zeros(shape), np.full(shape, float(max(n - 1, 0))), np.zeros(shape, bool)


def _detach(ins, p, shape):
    x = ins[0]
    return x.lo, x.hi, x.nan


def _uniform(ins, p, shape):
    return np.zeros(shape), np.ones(shape), np.zeros(shape, bool)


def _toward_zero(x):
    return np.minimum(x.lo, 0.0), np.maximum(x.hi, 0.0)


def _clip_gradients(ins, p, shape):
    g = ins[0]
    lo, hi = _toward_zero(g)
    bad = bool(np.any(g.nan | ~np.isfinite(g.lo) | ~np.isfinite(g.hi)))
    return lo, hi, np.full(shape, bad)


def _clip_pct(ins, p, shape):
    g = ins[0]
    lo, hi = _toward_zero(g)
    with np.errstate(all="ignore"):
        bmax = float(np.max(np.maximum(np.abs(g.lo), np.abs(g.hi)))) if g.lo.size else 0.0
    nan_any = bool(np.any(g.nan))
    lo = np.where(g.nan, np.minimum(lo, -bmax), lo)
    return lo, hi, np.full(shape, nan_any)


def _scan(ins, p, shape):
    a, b, h0 = ins
    lo, hi = np.empty(shape), np.empty(shape)
    nan = np.zeros(shape, bool)
    hlo, hhi, hnan = h0.lo, h0.hi, h0.nan
    with np.errstate(all="ignore"):
        for t in range(shape[0]):
            plo, phi, pn = _mul_bounds(a.lo[t], a.hi[t], hlo, hhi)
            hlo, hhi = plo + b.lo[t], phi + b.hi[t]
            hnan = hnan | pn | a.nan[t] | b.nan[t] | np.isnan(hlo) | np.isnan(hhi)
            hlo = np.where(np.isnan(hlo), -np.inf, hlo)
            hhi = np.where(np.isnan(hhi), np.inf, hhi)
            lo[t], hi[t], nan[t] = hlo, hhi, hnan
    return lo, hi, nan


def _quantize(ins, p, shape):
    x = ins[0]
    s, z, qmin, qmax = float(p["scale"]), p["zero_point"], p["qmin"], p["qmax"]
    with np.errstate(all="ignore"):
        lo = np.clip(np.floor(x.lo / s) + z, qmin, qmax)
        hi = np.clip(np.ceil(x.hi / s) + z, qmin, qmax)
    lo = np.where(np.isnan(lo), qmin, lo)
    hi = np.where(np.isnan(hi), qmax, hi)
    return lo.astype(np.float64), hi.astype(np.float64), x.nan.copy()


def _dequantize(ins, p, shape):
    k = ins[0]
    s, z = float(p["scale"]), float(p["zero_point"])
    with np.errstate(all="ignore"):
        return s * (k.lo - z), s * (k.hi - z), k.nan.copy()


INTERVAL_MISC2 = {
    "logical_not": _logical_not, "any": _mask01, "all": _mask01,
    "argmax": _positions, "argmin": _positions, "detach": _detach,
    "rand_uniform": _uniform, "clip_gradients": _clip_gradients,
    "clip_by_percentile": _clip_pct, "diagonal_scan": _scan, "quantize": _quantize,
    "dequantize": _dequantize,
}
