"""One candidate input, evaluated twice: in float (the program as the user runs it) and
exactly (the mp formulas of every node from the same float inputs: real-number
semantics, nothing rounded but at ``prec`` bits).

``Exact`` summarises an object array of mp values for the detectors without leaving the
reals: NaN, infinity, zero, sign, log2 magnitude (finite even where the value is far
beyond the float range, e.g. e^1000), and the value rounded once to the program dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpmath.libmp import finf, fnan, fninf, fzero

from ..graph import BACKEND_DTYPE
from ..rounding import round_array

BACKEND_OF = {"float32": "f32", "float64": "f64"}


@dataclass
class Exact:
    rounded: np.ndarray   # correctly rounded to the program dtype
    nan: np.ndarray       # undefined
    inf: np.ndarray       # +-inf (a limit)
    zero: np.ndarray
    neg: np.ndarray
    mag: np.ndarray       # log2|v| for finite nonzero v (else 0)
    values: np.ndarray = None   # the exact values themselves (object array)


def exact_info(values, dtype) -> Exact:
    raw = np.asarray(values)
    if raw.dtype != object:                   # bool selectors, integer class ids
        z = np.zeros(raw.shape, bool)
        with np.errstate(all="ignore"):
            mag = np.where(raw != 0, np.log2(np.abs(raw.astype(np.float64)) + (raw == 0)), 0.0)
        return Exact(raw.astype(dtype), z, z, raw == 0, raw < 0, mag, None)
    vals = np.asarray(values, dtype=object)
    flat = vals.ravel()
    n = flat.size
    nan, inf, zero, neg = (np.zeros(n, bool) for _ in range(4))
    mag = np.zeros(n)
    for i, v in enumerate(flat):
        m = v._mpf_ if hasattr(v, "_mpf_") else None
        if m is None:                         # a plain number (int class ids, bools)
            try:
                fv = float(v)
            except TypeError:                 # not a real number: undefined
                fv = float("nan")
            nan[i], inf[i], zero[i], neg[i] = fv != fv, abs(fv) == np.inf, fv == 0, fv < 0
            mag[i] = np.log2(abs(fv)) if fv == fv and 0 < abs(fv) < np.inf else 0.0
            continue
        if m == fnan:
            nan[i] = True
        elif m == finf or m == fninf:
            inf[i], neg[i] = True, m == fninf
        elif m == fzero:
            zero[i] = True
        else:
            sign, man, exp, bc = m
            neg[i], mag[i] = bool(sign), float(exp + bc - 1)
    shape = vals.shape
    rounded = np.asarray(round_array(vals, dtype), dtype=dtype).reshape(shape)
    return Exact(rounded, *(a.reshape(shape) for a in (nan, inf, zero, neg, mag)), vals)


def exact_prec(arrays, dtype) -> int:
    """Working precision for the exact run: the format's bits, plus the exponent spread
    of the inputs (so that a sum of 1e300 and 1e-300 keeps both), plus 64 guard bits;
    at most 4096."""
    mags = []
    for a in arrays:
        if a is not None and a.dtype.kind == "f" and a.size:
            v = np.abs(a[np.isfinite(a) & (a != 0)].astype(np.float64))
            if v.size:
                mags += [np.log2(v.min()), np.log2(v.max())]
    spread = int(max(mags) - min(mags)) if mags else 0
    bits = {"float32": 24, "float64": 53}[np.dtype(dtype).name]
    return int(min(4096, 2 * bits + 64 + spread))


@dataclass
class Evaluation:
    graph: object
    dtype: np.dtype
    inputs: tuple
    float_run: object
    exact_run: object = None
    prec: int = 0
    _info: dict = None

    def fvalue(self, slot):
        return np.asarray(self.float_run.values[slot])

    def info(self, slot) -> Exact:
        if self._info is None:
            self._info = {}
        got = self._info.get(slot)
        if got is None:
            got = self._info[slot] = exact_info(self.exact_run.values[slot], self.dtype)
        return got

    @property
    def output_slot(self):
        return self.graph.output_slots[0]


def float_run(graph, inputs, dtype):
    return graph.run(*inputs, backend=BACKEND_OF[np.dtype(dtype).name])


def evaluate(graph, inputs, dtype, exact=True, prec=None) -> Evaluation:
    """Float run, and (with ``exact``) the mp run at ``prec`` bits (default
    ``exact_prec``)."""
    dtype = np.dtype(dtype)
    ev = Evaluation(graph, dtype, tuple(inputs), float_run(graph, inputs, dtype))
    if exact:
        ev.prec = prec or exact_prec(list(inputs) + list(graph.constants.values()), dtype)
        ev.exact_run = graph.run(*inputs, backend="mp", prec=ev.prec)
    return ev


def screen_run(graph, inputs, dtype):
    """A cheap stand-in for the exact output, for the search: the program in float64 for
    a float32 program; for a float64 program, the float64 run itself (the screen then
    looks only at special values and at the float32 run's departure from it, which
    estimates how much the program amplifies rounding errors)."""
    dtype = np.dtype(dtype)
    low = float_run(graph, inputs, dtype)
    wide = inputs if dtype == np.float64 else [
        a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    if dtype == np.float32:
        high = graph.run(*wide, backend="f64")
    else:
        narrow = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in inputs]
        high, low32 = low, graph.run(*narrow, backend="f32")
        return low, high, low32
    return low, high, None


__all__ = ["Exact", "exact_info", "exact_prec", "Evaluation", "evaluate", "screen_run",
           "BACKEND_DTYPE"]
