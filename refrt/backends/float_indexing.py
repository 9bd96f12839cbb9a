"""Bind the indexing ops (registry/indexing.py) to float32/float64 implementations.

Pure data movement (gather, embedding, select, slice, permute, pad) is NumPy indexing,
which copies bits.  Everything that adds goes through ``segment_sums``
(refrt/_kernels/indexing.pyx, Design b): the binding computes each contribution's flat
target slot, groups the contributions by slot with a stable sort (a permutation), and
the kernel sums every group exactly and rounds once.
"""
from __future__ import annotations

import numpy as np

from .._kernels import indexing as K
from . import float_impl, float_vjp


def _flat(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def scatter_sum(targets, values, nslots, dtype, base=None):
    """out[t] = (base[t] +) sum of values[k] with targets[k] == t, exact, rounded once."""
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    values = _flat(values, dtype)
    if base is not None:
        targets = np.concatenate([np.arange(nslots, dtype=np.int64), targets])
        values = np.concatenate([_flat(base, dtype), values])
    order = np.argsort(targets, kind="stable")
    counts = np.bincount(targets, minlength=nslots)
    starts = np.zeros(nslots + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    out = np.empty(nslots, dtype=dtype)
    K.segment_sums(np.ascontiguousarray(values[order]), starts, out)
    return out


def axis_targets(index, shape, axis):
    """Flat positions in an array of ``shape`` (C order) of every element of ``index``,
    with index's values taken as positions along ``axis`` (torch.gather/scatter)."""
    strides = np.ones(len(shape), dtype=np.int64)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    t = index.astype(np.int64) * strides[axis]
    for d in range(index.ndim):
        if d != axis:
            view = [1] * index.ndim
            view[d] = index.shape[d]
            t = t + (np.arange(index.shape[d], dtype=np.int64) * strides[d]).reshape(view)
    return np.broadcast_to(t, index.shape)


@float_impl("embedding")
def embedding(arrays, params, threads):
    ids, w = arrays
    return np.take(w, ids.reshape(-1), axis=0).reshape(ids.shape + (w.shape[1],))


@float_vjp("embedding")
def embedding_vjp(arrays, params, out, g, threads):
    ids, w = arrays
    d = w.shape[1]
    t = ids.reshape(-1, 1) * d + np.arange(d, dtype=np.int64)
    gw = scatter_sum(t, g, w.size, w.dtype)
    return None, gw.reshape(w.shape)


@float_impl("gather")
def gather(arrays, params, threads):
    x, index = arrays
    t = axis_targets(index, x.shape, params["axis"])
    return np.take(x.reshape(-1), t.reshape(-1)).reshape(index.shape)


@float_vjp("gather")
def gather_vjp(arrays, params, out, g, threads):
    x, index = arrays
    t = axis_targets(index, x.shape, params["axis"])
    return scatter_sum(t, g, x.size, x.dtype).reshape(x.shape), None


@float_impl("scatter_add")
def scatter_add(arrays, params, threads):
    x, index, src = arrays
    t = axis_targets(index, x.shape, params["axis"])
    part = src[tuple(slice(0, n) for n in index.shape)]
    return scatter_sum(t, part, x.size, x.dtype, base=x).reshape(x.shape)


@float_vjp("scatter_add")
def scatter_add_vjp(arrays, params, out, g, threads):
    x, index, src = arrays
    g = np.asarray(g, dtype=x.dtype)
    t = axis_targets(index, x.shape, params["axis"])
    gsrc = np.zeros(src.shape, dtype=x.dtype)
    gsrc[tuple(slice(0, n) for n in index.shape)] = np.take(g.reshape(-1), t.reshape(-1)) \
        .reshape(index.shape)
    return g.copy(), None, gsrc


def _select_key(ndim, axis, key):
    return (slice(None),) * axis + (key,) + (slice(None),) * (ndim - axis - 1)


@float_impl("select")
def select(arrays, params, threads):
    (x,) = arrays
    return np.ascontiguousarray(x[_select_key(x.ndim, params["axis"], params["index"])])


@float_vjp("select")
def select_vjp(arrays, params, out, g, threads):
    (x,) = arrays
    gx = np.zeros(x.shape, dtype=x.dtype)
    gx[_select_key(x.ndim, params["axis"], params["index"])] = g
    return (gx,)


def _slice_key(x, p):
    return _select_key(x.ndim, p["axis"], slice(p["start"], p["end"], p["step"]))


@float_impl("slice")
def slice_(arrays, params, threads):
    (x,) = arrays
    return np.ascontiguousarray(x[_slice_key(x, params)])


@float_vjp("slice")
def slice_vjp(arrays, params, out, g, threads):
    (x,) = arrays
    gx = np.zeros(x.shape, dtype=x.dtype)
    gx[_slice_key(x, params)] = g
    return (gx,)


@float_impl("permute")
def permute(arrays, params, threads):
    return np.ascontiguousarray(np.transpose(arrays[0], params["dims"]))


@float_vjp("permute")
def permute_vjp(arrays, params, out, g, threads):
    (x,) = arrays
    inv = np.argsort(params["dims"])
    return (np.ascontiguousarray(np.transpose(np.asarray(g, dtype=x.dtype), inv)),)


def pad_widths(ndim, pad):
    widths = [(0, 0)] * ndim
    for k in range(len(pad) // 2):
        widths[ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return widths


@float_impl("pad")
def pad(arrays, params, threads):
    (x,) = arrays
    return np.pad(x, pad_widths(x.ndim, params["pad"]), mode="constant",
                  constant_values=x.dtype.type(params["value"]))


@float_vjp("pad")
def pad_vjp(arrays, params, out, g, threads):
    (x,) = arrays
    key = tuple(slice(b, b + n) for (b, _), n in zip(pad_widths(x.ndim, params["pad"]),
                                                      x.shape))
    return (np.ascontiguousarray(np.asarray(g, dtype=x.dtype)[key]),)


def _bind_compare(name):
    code = K.CODES[name]

    def fwd(arrays, params, threads):
        x, y = arrays
        out = np.empty(x.size, dtype=x.dtype)
        K.compare(code, _flat(x), _flat(y), out)
        return out.reshape(x.shape)

    def vjp(arrays, params, out, g, threads):
        x, y = arrays
        return np.zeros(x.shape, x.dtype), np.zeros(y.shape, y.dtype)

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


for _name in K.CODES:
    _bind_compare(_name)
