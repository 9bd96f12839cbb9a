"""Measure a float kernel's error against the mp backend, in ulps of its own dtype.

The reference is the mp formula at ``prec`` bits (default 256), rounded once to the
kernel's dtype.  At 256 bits the reference is correctly rounded except in pathological
ties; the certified oracle (``refrt.oracle``) removes even that doubt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import families as fam
from .metrics import ulp_distance
from .ops import evaluate, evaluate_mp
from ._prepare import prepare
from .rounding import round_array


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


def reference(spec, arrays, params, dtype, prec=256):
    """mp value rounded to ``dtype`` (float array of the output shape)."""
    prepared, full, _, shape = prepare(spec, arrays, params, cast=True,
                                       backend={"float32": "f32", "float64": "f64"}[np.dtype(dtype).name])
    mp = evaluate_mp(spec, prepared, full, prec)
    return round_array(mp, dtype).reshape(shape)


def measure(spec, dtype, family, seed=0, prec=256) -> Measurement:
    dtype = np.dtype(dtype)
    arrays, params = fam.generate(spec, family, dtype, seed)
    with np.errstate(all="ignore"):
        got = np.asarray(evaluate(spec.name, *arrays, **params))
    want = reference(spec, arrays, params, dtype, prec)
    d = ulp_distance(got, want, dtype) if got.size else np.zeros(0)
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
