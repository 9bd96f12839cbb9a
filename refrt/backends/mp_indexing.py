"""mp formulas and VJPs of the indexing ops: re-indexing is exact in every context; the
scatter-adds are one exact ``fsum`` per slot (the real-number sum of its terms)."""
from __future__ import annotations

import numpy as np

from . import mp_impl, mp_vjp
from .float_indexing import _select_key, _slice_key, axis_targets, pad_widths
from .mp_reductions import _fsum
from .mpctx import emap


def _scatter(ctx, targets, values, nslots, base=None):
    """Object array (nslots,): base[t] + sum of values[k] with targets[k] == t (fsum)."""
    terms = [[] if base is None else [b] for b in (base.reshape(-1) if base is not None
                                                  else [None] * nslots)]
    for t, v in zip(np.asarray(targets).reshape(-1).tolist(),
                    np.asarray(values, dtype=object).reshape(-1)):
        terms[t].append(v)
    out = np.empty(nslots, dtype=object)
    for s in range(nslots):
        out[s] = _fsum(ctx, terms[s]) if terms[s] else ctx.zero
    return out


@mp_impl("embedding")
def embedding(ctx, arrays, params):
    ids, w = arrays
    return np.take(w, ids.reshape(-1), axis=0).reshape(ids.shape + (w.shape[1],))


@mp_vjp("embedding")
def embedding_vjp(ctx, arrays, params, out, g):
    ids, w = arrays
    d = w.shape[1]
    t = ids.reshape(-1, 1) * d + np.arange(d, dtype=np.int64)
    return None, _scatter(ctx, t, g, w.size).reshape(w.shape)


@mp_impl("gather")
def gather(ctx, arrays, params):
    x, index = arrays
    t = axis_targets(index, x.shape, params["axis"])
    return np.take(x.reshape(-1), t.reshape(-1)).reshape(index.shape)


@mp_vjp("gather")
def gather_vjp(ctx, arrays, params, out, g):
    x, index = arrays
    t = axis_targets(index, x.shape, params["axis"])
    return _scatter(ctx, t, g, x.size).reshape(x.shape), None


@mp_impl("scatter_add")
def scatter_add(ctx, arrays, params):
    x, index, src = arrays
    t = axis_targets(index, x.shape, params["axis"])
    part = src[tuple(slice(0, n) for n in index.shape)]
    return _scatter(ctx, t, part, x.size, base=x).reshape(x.shape)


@mp_vjp("scatter_add")
def scatter_add_vjp(ctx, arrays, params, out, g):
    x, index, src = arrays
    g = np.asarray(g, dtype=object)
    t = axis_targets(index, x.shape, params["axis"])
    gsrc = np.full(src.shape, ctx.zero, dtype=object)
    gsrc[tuple(slice(0, n) for n in index.shape)] = np.take(g.reshape(-1), t.reshape(-1)) \
        .reshape(index.shape)
    return g.copy(), None, gsrc


def _zero_fill(ctx, shape, key, g):
    gx = np.full(shape, ctx.zero, dtype=object)
    gx[key] = g
    return gx


@mp_impl("select")
def select(ctx, arrays, params):
    (x,) = arrays
    return np.asarray(x[_select_key(x.ndim, params["axis"], params["index"])], dtype=object)


@mp_vjp("select")
def select_vjp(ctx, arrays, params, out, g):
    (x,) = arrays
    return (_zero_fill(ctx, x.shape, _select_key(x.ndim, params["axis"], params["index"]), g),)


@mp_impl("slice")
def slice_(ctx, arrays, params):
    (x,) = arrays
    return np.asarray(x[_slice_key(x, params)], dtype=object)


@mp_vjp("slice")
def slice_vjp(ctx, arrays, params, out, g):
    (x,) = arrays
    return (_zero_fill(ctx, x.shape, _slice_key(x, params), g),)


@mp_impl("permute")
def permute(ctx, arrays, params):
    return np.transpose(arrays[0], params["dims"]).copy()


@mp_vjp("permute")
def permute_vjp(ctx, arrays, params, out, g):
    return (np.transpose(np.asarray(g, dtype=object), np.argsort(params["dims"])).copy(),)


@mp_impl("pad")
def pad(ctx, arrays, params):
    (x,) = arrays
    widths = pad_widths(x.ndim, params["pad"])
    out = np.full(tuple(n + b + a for n, (b, a) in zip(x.shape, widths)),
                  ctx.mpf(params["value"]), dtype=object)
    out[tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))] = x
    return out


@mp_vjp("pad")
def pad_vjp(ctx, arrays, params, out, g):
    (x,) = arrays
    widths = pad_widths(x.ndim, params["pad"])
    return (np.asarray(g, dtype=object)[tuple(slice(b, b + n) for (b, _), n
                                              in zip(widths, x.shape))].copy(),)


_CMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: not (a == b),
        "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _bind(name, rel):
    # comparisons read only the (exact) inputs
    mp_impl(name)(lambda ctx, arrays, params: emap(
        lambda a, b: ctx.one if rel(a, b) else ctx.zero, *arrays))
    mp_vjp(name)(lambda ctx, arrays, params, out, g: (
        emap(lambda a: ctx.zero, arrays[0]), emap(lambda a: ctx.zero, arrays[1])))


for _name, _rel in _CMP.items():
    _bind(_name, _rel)
