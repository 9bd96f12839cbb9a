"""Bind logical_not, any, all, detach, rand_uniform, clip_gradients, clip_by_percentile,
diagonal_scan, quantize, dequantize, argmax and argmin to the kernels (misc2.pyx).
NumPy here only moves data (reshapes, the copy of detach, the sort that picks
clip_by_percentile's bound)."""
from __future__ import annotations

import numpy as np

from .._kernels import misc2 as K
from . import float_impl, float_vjp
from .float_reductions import _as_rows


def _flat(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def _zeros_vjp(arrays, params, out, g, threads):
    return tuple(np.zeros(a.shape, dtype=a.dtype) for a in arrays)


@float_impl("logical_not")
def logical_not(arrays, params, threads):
    x = arrays[0]
    out = np.empty(x.size, dtype=x.dtype)
    K.logical_not(_flat(x), out)
    return out.reshape(x.shape)


def _reduce(x, axis, kernel, *extra):
    rows, moved = _as_rows(x, axis)
    out = np.empty(rows.shape[0], dtype=x.dtype)
    kernel(np.ascontiguousarray(rows), *extra, out)
    return out.reshape(() if axis is None or x.ndim == 0 else moved[:-1])


@float_impl("any")
def any_(arrays, params, threads):
    return _reduce(arrays[0], params["axis"], K.any_all_rows, False)


@float_impl("all")
def all_(arrays, params, threads):
    return _reduce(arrays[0], params["axis"], K.any_all_rows, True)


@float_impl("argmax")
def argmax(arrays, params, threads):
    return _reduce(arrays[0], params["axis"], K.argext_rows, True)


@float_impl("argmin")
def argmin(arrays, params, threads):
    return _reduce(arrays[0], params["axis"], K.argext_rows, False)


for _name in ("logical_not", "any", "all", "argmax", "argmin", "detach", "rand_uniform",
              "quantize"):
    float_vjp(_name)(_zeros_vjp)


@float_impl("detach")
def detach(arrays, params, threads):
    return np.array(arrays[0], copy=True)


@float_impl("rand_uniform")
def rand_uniform(arrays, params, threads):
    x = arrays[0]
    out = np.empty(x.size, dtype=x.dtype)
    K.uniform_fill(params["seed"], params["counter"], out)
    return out.reshape(x.shape)


@float_impl("clip_gradients")
def clip_gradients(arrays, params, threads):
    g = arrays[0]
    out = np.empty(g.size, dtype=g.dtype)
    K.clip_norm(_flat(g), g.dtype.type(params["max_norm"]), out)
    return out.reshape(g.shape)


@float_vjp("clip_gradients")
def clip_gradients_vjp(arrays, params, out, gbar, threads):
    g = arrays[0]
    res = np.empty(g.size, dtype=g.dtype)
    K.clip_norm_vjp(_flat(g), g.dtype.type(params["max_norm"]), _flat(gbar, g.dtype), res)
    return (res.reshape(g.shape),)


def percentile_bound(g, pct):
    """(b, k): b = sorted(|g|)[(min(pct, 100) (n - 1)) // 100] (NaN sorts last, as
    np.sort puts it) and k, the row-major position of an element with |g_k| = b (the
    first in the stable sort), or (None, None) for an empty g."""
    a = np.abs(g.reshape(-1))
    n = a.size
    if n == 0:
        return None, None
    r = (min(int(pct), 100) * (n - 1)) // 100
    order = np.argsort(a, kind="stable")
    k = int(order[r])
    return a[k], k


@float_impl("clip_by_percentile")
def clip_by_percentile(arrays, params, threads):
    g = arrays[0]
    b, _ = percentile_bound(g, params["pct"])
    if b is None:
        return np.array(g, copy=True)
    out = np.empty(g.size, dtype=g.dtype)
    K.clamp_sym(_flat(g), g.dtype.type(b), out)
    return out.reshape(g.shape)


@float_vjp("clip_by_percentile")
def clip_by_percentile_vjp(arrays, params, out, gbar, threads):
    g = arrays[0]
    b, k = percentile_bound(g, params["pct"])
    if b is None:
        return (np.zeros(g.shape, dtype=g.dtype),)
    res = np.empty(g.size, dtype=g.dtype)
    K.clamp_sym_vjp(_flat(g), g.dtype.type(b), k, _flat(gbar, g.dtype), res)
    return (res.reshape(g.shape),)


def _scan2(a, b, h0):
    T = a.shape[0]
    S = int(np.prod(a.shape[1:], dtype=np.int64))
    return (np.ascontiguousarray(a).reshape(T, S), np.ascontiguousarray(b).reshape(T, S),
            _flat(h0))


def _scan_states(a2, b2, h02):
    out, hh, hl = np.empty_like(a2), np.empty_like(a2), np.empty_like(a2)
    he = np.empty(a2.shape, dtype=np.intc)
    K.diag_scan(a2, b2, h02, out, hh, hl, he)
    return out, hh, hl, he


@float_impl("diagonal_scan")
def diagonal_scan(arrays, params, threads):
    a, b, h0 = arrays
    out = _scan_states(*_scan2(a, b, h0))[0]
    return out.reshape(a.shape)


@float_vjp("diagonal_scan")
def diagonal_scan_vjp(arrays, params, out, g, threads):
    a, b, h0 = arrays
    a2, b2, h02 = _scan2(a, b, h0)
    _, hh, hl, he = _scan_states(a2, b2, h02)
    g2 = np.ascontiguousarray(g, dtype=a.dtype).reshape(a2.shape)
    ga, gb, gh0 = np.empty_like(a2), np.empty_like(a2), np.empty_like(h02)
    K.diag_scan_vjp(a2, h02, hh, hl, he, g2, ga, gb, gh0)
    return ga.reshape(a.shape), gb.reshape(a.shape), gh0.reshape(h0.shape)


@float_impl("quantize")
def quantize(arrays, params, threads):
    x = arrays[0]
    out = np.empty(x.size, dtype=x.dtype)
    K.quantize(_flat(x), x.dtype.type(params["scale"]), params["zero_point"], params["qmin"],
               params["qmax"], out)
    return out.reshape(x.shape)


@float_impl("dequantize")
def dequantize(arrays, params, threads):
    k = arrays[0]
    out = np.empty(k.size, dtype=k.dtype)
    K.dequantize(_flat(k), k.dtype.type(params["scale"]), k.dtype.type(params["zero_point"]),
                 out)
    return out.reshape(k.shape)


@float_vjp("dequantize")
def dequantize_vjp(arrays, params, out, g, threads):
    k = arrays[0]
    res = np.empty(k.size, dtype=k.dtype)
    # scale * (g - 0): the dequantize kernel with zero point 0 is scale * g, rounded once
    K.dequantize(_flat(g, k.dtype), k.dtype.type(params["scale"]), k.dtype.type(0), res)
    return (res.reshape(k.shape),)
