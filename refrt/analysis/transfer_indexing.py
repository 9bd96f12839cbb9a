"""Abstract interval transformers for issue 10's indexing, recurrent and "other" ops
(registry/indexing.py, recurrent.py, misc.py), merged into ``transfer.INTERVAL``.  Same
contract: real-number bounds in float64 over the input box, ``(lo, hi, nan[, extra])``.

Integer index arguments are constants of the program (``is_point``); where one is not,
the bound is taken over every position it could name.  Re-indexing ops apply the op's
own index map to the bounds (exact).  The cells bound their outputs by the gates'
ranges (sigmoid in [0, 1], tanh in [-1, 1]); NaN is possible as soon as an input may be
NaN or unbounded (inf - inf in a pre-activation).
"""
from __future__ import annotations

import numpy as np

from .domain import INF


def _idx(t):
    return None if t.point is None else np.asarray(t.point).astype(np.int64)


def _mapped(t, fn):
    """Apply a pure re-indexing ``fn`` to lo, hi and nan."""
    return fn(t.lo), fn(t.hi), fn(t.nan)


def _embedding(ins, p, shape):
    ids, w = ins
    i = _idx(ids)
    if i is not None:
        take = lambda a: np.take(a, i.reshape(-1), axis=0).reshape(shape)
        return _mapped(w, take)
    lo = np.broadcast_to(w.lo.min(axis=0), shape)
    hi = np.broadcast_to(w.hi.max(axis=0), shape)
    return lo, hi, np.broadcast_to(w.nan.any(axis=0), shape)


def _gather(ins, p, shape):
    from ..backends.float_indexing import axis_targets
    x, index = ins
    i = _idx(index)
    if i is not None:
        t = axis_targets(i, x.shape, p["axis"]).reshape(-1)
        return _mapped(x, lambda a: np.take(a.reshape(-1), t).reshape(shape))
    ax = p["axis"]
    red = lambda a, f: np.broadcast_to(f(a, axis=ax, keepdims=True)[
        tuple(slice(0, n) if d != ax else slice(0, 1) for d, n in enumerate(shape))], shape)
    return red(x.lo, np.min), red(x.hi, np.max), red(x.nan, np.any)


def _scatter_add(ins, p, shape):
    from ..backends.float_indexing import axis_targets
    x, index, src = ins
    i = _idx(index)
    part = tuple(slice(0, n) for n in index.shape)
    slo, shi, snan = src.lo[part], src.hi[part], src.nan[part]
    with np.errstate(all="ignore"):
        if i is not None:
            t = axis_targets(i, x.shape, p["axis"]).reshape(-1)
            lo, hi = x.lo.reshape(-1).copy(), x.hi.reshape(-1).copy()
            nan = x.nan.reshape(-1).copy()
            np.add.at(lo, t, slo.reshape(-1))
            np.add.at(hi, t, shi.reshape(-1))
            np.logical_or.at(nan, t, snan.reshape(-1))
            pinf = np.zeros(x.size, bool)
            ninf = np.zeros(x.size, bool)
            np.logical_or.at(pinf, t, np.isposinf(shi.reshape(-1)))
            np.logical_or.at(ninf, t, np.isneginf(slo.reshape(-1)))
            pinf |= np.isposinf(x.hi.reshape(-1))
            ninf |= np.isneginf(x.lo.reshape(-1))
            nan |= pinf & ninf | np.isnan(lo) | np.isnan(hi)
            return (np.nan_to_num(lo, nan=-INF).reshape(shape),
                    np.nan_to_num(hi, nan=INF).reshape(shape), nan.reshape(shape))
        neg = np.minimum(slo, 0).sum()
        pos = np.maximum(shi, 0).sum()
        lo, hi = x.lo + neg, x.hi + pos
        nan = x.nan | snan.any() | (np.isinf(slo).any() | np.isinf(shi).any())
    return (np.nan_to_num(lo, nan=-INF), np.nan_to_num(hi, nan=INF),
            np.broadcast_to(nan, shape))


def _via_kernel(name):
    """select/slice/permute: the float binding's index map applied to the bounds."""
    def t(ins, p, shape):
        from .. import backends
        backends.load()
        fn = backends.FLOAT[name]
        run = lambda a: np.asarray(fn([np.ascontiguousarray(a, np.float64)], p, 1))
        return run(ins[0].lo), run(ins[0].hi), run(ins[0].nan.astype(np.float64)) != 0
    return t


def _pad(ins, p, shape):
    from ..backends.float_indexing import pad_widths
    x = ins[0]
    w = pad_widths(x.lo.ndim, p["pad"])
    v = float(p["value"])
    return (np.pad(x.lo, w, constant_values=v), np.pad(x.hi, w, constant_values=v),
            np.pad(x.nan, w, constant_values=False))


def _compare(name):
    # yes: the relation holds for every pair of values of the boxes; no: for none.  A NaN
    # operand makes every relation false and ne true, so it can only spoil certainty.
    def t(ins, p, shape):
        x, y = ins
        anynan = x.nan | y.nan
        point = (x.lo == x.hi) & (y.lo == y.hi) & (x.lo == y.lo)
        apart = (x.hi < y.lo) | (y.hi < x.lo)
        yes, no = {"lt": (x.hi < y.lo, x.lo >= y.hi), "le": (x.hi <= y.lo, x.lo > y.hi),
                   "gt": (x.lo > y.hi, x.hi <= y.lo), "ge": (x.lo >= y.hi, x.hi < y.lo),
                   "eq": (point, apart), "ne": (apart, point)}[name]
        if name == "ne":
            lo, hi = np.where(yes, 1.0, 0.0), np.where(no & ~anynan, 0.0, 1.0)
        else:
            lo, hi = np.where(yes & ~anynan, 1.0, 0.0), np.where(no, 0.0, 1.0)
        return lo, hi, np.zeros(shape, bool)
    return t


def _any_unbounded(ins):
    return any(bool(t.nan.any() or np.isinf(t.lo).any() or np.isinf(t.hi).any())
               for t in ins)


def _rnn(ins, p, shape):
    nan = _any_unbounded(ins)
    lo = 0.0 if p["nonlinearity"] == "relu" else -1.0
    hi = INF if p["nonlinearity"] == "relu" else 1.0
    return np.full(shape, lo), np.full(shape, hi), np.full(shape, nan)


def _gru(ins, p, shape):
    # h' = (1 - z) n + z h: between n in [-1, 1] and h
    h = ins[1]
    nan = _any_unbounded(ins)
    return (np.broadcast_to(np.minimum(h.lo, -1.0), shape),
            np.broadcast_to(np.maximum(h.hi, 1.0), shape), np.full(shape, nan))


def _lstm(ins, p, shape):
    # h' = o tanh(c') in [-1, 1]; c' = f c + i g with f, i in [0, 1], g in [-1, 1]
    c = ins[2]
    nan = _any_unbounded(ins)
    lo = np.stack([np.full(c.shape, -1.0), np.minimum(c.lo, 0.0) - 1.0])
    hi = np.stack([np.full(c.shape, 1.0), np.maximum(c.hi, 0.0) + 1.0])
    return lo.reshape(shape), hi.reshape(shape), np.full(shape, nan)


def _dropout(ins, p, shape):
    x = ins[0]
    if not p["training"]:
        return x.lo, x.hi, x.nan
    from ..backends.float_misc import dropout_mask
    keep = dropout_mask(x.size, p).reshape(shape).astype(bool)
    s = max(1.0 - float(p["p"]), 1e-6)
    with np.errstate(all="ignore"):
        return (np.where(keep, x.lo / s, 0.0), np.where(keep, x.hi / s, 0.0),
                np.where(keep, x.nan, False))


def _pe(ins, p, shape):
    from .. import backends
    backends.load()
    x = ins[0]
    pe = np.asarray(backends.FLOAT["positional_encoding"]([np.zeros(shape)], p, 1))
    with np.errstate(all="ignore"):
        lo, hi = x.lo + pe, x.hi + pe
    return lo, hi, x.nan | np.isnan(lo) | np.isnan(hi)


def _rope(ins, p, shape):
    # |y_j| <= |x_j| + |x_partner| (|cos|, |sin| <= 1)
    x = ins[0]
    m = np.maximum(np.abs(x.lo), np.abs(x.hi))
    part = m.copy()
    d = shape[-1]
    part[..., 0:d - 1:2] = m[..., 1::2]
    part[..., 1::2] = m[..., 0:d - 1:2]
    b = m + part
    nan = x.nan | np.isinf(b)
    return -b, b, nan


def _gcn(ins, p, shape):
    from .transfer import _matmul_bounds
    a, x, w, b = ins
    l1, h1, _ = _matmul_bounds(a.lo, a.hi, x.lo, x.hi)
    lo, hi, _ = _matmul_bounds(l1, h1, w.lo, w.hi)
    with np.errstate(all="ignore"):
        lo, hi = lo + b.lo, hi + b.hi
    nan = _any_unbounded(ins) | np.isnan(lo) | np.isnan(hi)
    return np.nan_to_num(lo, nan=-INF), np.nan_to_num(hi, nan=INF), np.broadcast_to(nan, shape)


INTERVAL_INDEXING = {
    "embedding": _embedding, "gather": _gather, "scatter_add": _scatter_add,
    "select": _via_kernel("select"), "slice": _via_kernel("slice"),
    "permute": _via_kernel("permute"), "pad": _pad,
    **{name: _compare(name) for name in ("eq", "ne", "lt", "le", "gt", "ge")},
    "rnn_cell": _rnn, "gru_cell": _gru, "lstm_cell": _lstm,
    "dropout": _dropout, "positional_encoding": _pe, "rope": _rope, "gcn_layer": _gcn,
}
