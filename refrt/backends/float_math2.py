"""Bind the math2 kernels (``refrt._kernels.math2``) to op names (float32/float64).

The elementwise ops are (kernel code, parameter name or None) entries of one table; the
loop at the bottom registers a forward and a VJP for each.  prod moves its axis last
(``float_reductions._as_rows``) and gives the VJP kernel its prefix-product scratch.
"""
from __future__ import annotations

import numpy as np

from .._kernels import math2 as K
from . import float_impl, float_vjp
from .float_reductions import _as_rows, _from_rows

# op name -> (kernel code name, parameter name or None)
UNARY = {
    "sin": ("sin", None), "cos": ("cos", None), "erf": ("erf", None),
    "gelu_erf": ("gelu_erf", None), "leaky_relu": ("leaky_relu", "negative_slope"),
    "log_sigmoid": ("log_sigmoid", None),
}


def _flat(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def _bind_unary(name, code, pname):
    code = K.CODES[code]

    def fwd(arrays, params, threads):
        (x,) = arrays
        out = np.empty(x.size, dtype=x.dtype)
        K.unary_fwd(code, _flat(x), out, params[pname] if pname else 0.0, threads=threads)
        return out.reshape(x.shape)

    def vjp(arrays, params, out, g, threads):
        (x,) = arrays
        gx = np.empty(x.size, dtype=x.dtype)
        K.unary_vjp(code, _flat(g, x.dtype), _flat(x), gx, params[pname] if pname else 0.0,
                    threads=threads)
        return (gx.reshape(x.shape),)

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


for _name, (_code, _pname) in UNARY.items():
    _bind_unary(_name, _code, _pname)


@float_impl("prod")
def prod(arrays, params, threads):
    (x,) = arrays
    axis = params["axis"]
    rows, moved = _as_rows(x, axis)
    out = np.empty(rows.shape[0], dtype=x.dtype)
    K.prod_fwd(rows, out, threads=threads)
    return out.reshape(() if axis is None or x.ndim == 0 else moved[:-1])


@float_vjp("prod")
def prod_vjp(arrays, params, out, g, threads):
    (x,) = arrays
    axis = params["axis"]
    rows, moved = _as_rows(x, axis)
    g_rows = _flat(np.broadcast_to(g, moved[:-1]) if axis is not None and x.ndim else g, x.dtype)
    gx = np.empty(rows.shape, dtype=x.dtype)
    K.prod_vjp(rows, g_rows, gx, np.empty_like(rows), np.empty_like(rows),
               np.empty(rows.shape, dtype=np.int64), threads=threads)
    if axis is None or x.ndim == 0:
        return (gx.reshape(x.shape),)
    return (_from_rows(gx, moved, axis, x.ndim),)


def _cos_rows(arrays, params):
    x, y = arrays
    axis = params.get("axis")
    rx, moved = _as_rows(x, axis)
    ry, _ = _as_rows(y, axis)
    return rx, ry, moved, axis


@float_impl("cosine_similarity")
def cosine_similarity(arrays, params, threads):
    rx, ry, moved, axis = _cos_rows(arrays, params)
    out = np.empty(rx.shape[0], dtype=rx.dtype)
    K.cosine_fwd(rx, ry, out, params["eps"], False, threads=threads)
    return out.reshape(moved[:-1])


@float_impl("cosine_similarity_loss")
def cosine_similarity_loss(arrays, params, threads):
    rx, ry, _, _ = _cos_rows(arrays, dict(params, axis=None))
    out = np.empty(1, dtype=rx.dtype)
    K.cosine_fwd(rx, ry, out, params["eps"], True, threads=threads)
    return out.reshape(())


def _cos_vjp(arrays, params, g, sign, threads):
    x = arrays[0]
    rx, ry, moved, axis = _cos_rows(arrays, params)
    gr = _flat(np.asarray(g) * sign, x.dtype) if rx.shape[0] else np.zeros(0, x.dtype)
    gx, gy = np.empty_like(rx), np.empty_like(ry)
    K.cosine_vjp(rx, ry, gr, gx, gy, params["eps"], threads=threads)
    if axis is None:
        return gx.reshape(x.shape), gy.reshape(x.shape)
    return _from_rows(gx, moved, axis, x.ndim), _from_rows(gy, moved, axis, x.ndim)


@float_vjp("cosine_similarity")
def cosine_similarity_vjp(arrays, params, out, g, threads):
    return _cos_vjp(arrays, params, g, 1, threads)


@float_vjp("cosine_similarity_loss")
def cosine_similarity_loss_vjp(arrays, params, out, g, threads):
    return _cos_vjp(arrays, dict(params, axis=None), g, -1, threads)
