"""Bind dropout, positional_encoding, rope and gcn_layer to the kernels (misc.pyx, and
linalg's compensated products for the GCN)."""
from __future__ import annotations

import numpy as np

from .._kernels import misc as K
from . import float_impl, float_vjp
from .float_reductions import _mm_nt, _sum_axes
from ..registry._spec import EPSILON


def _flat(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def dropout_mask(n, params):
    """The catalog's keep mask (bool, length n) for (seed, counter, p)."""
    mask = np.empty(n, dtype=np.uint8)
    K.dropout_mask(params["seed"], params["counter"], 1.0 - float(params["p"]), mask)
    return mask


def _dropout_map(x, params):
    if not params["training"]:
        return np.array(x, copy=True)
    mask = dropout_mask(x.size, params)
    # max(1 - p, eps) in the dtype (p and eps as the dtype's values)
    scale = max(x.dtype.type(1) - x.dtype.type(params["p"]), x.dtype.type(EPSILON))
    out = np.empty(x.size, dtype=x.dtype)
    K.dropout_apply(mask, _flat(x), scale, out)
    return out.reshape(x.shape)


@float_impl("dropout")
def dropout(arrays, params, threads):
    return _dropout_map(arrays[0], params)


@float_vjp("dropout")
def dropout_vjp(arrays, params, out, g, threads):
    return (_dropout_map(np.asarray(g, dtype=arrays[0].dtype), params),)


def _as3(x):
    return np.ascontiguousarray(x.reshape((-1,) + x.shape[-2:]))


@float_impl("positional_encoding")
def positional_encoding(arrays, params, threads):
    (x,) = arrays
    x3 = _as3(x)
    out = np.empty_like(x3)
    K.pe_add(x3, float(params["start"]), out)
    return out.reshape(x.shape)


@float_vjp("positional_encoding")
def positional_encoding_vjp(arrays, params, out, g, threads):
    return (np.array(g, dtype=arrays[0].dtype, copy=True),)


def _rope(x, params, transpose):
    x3 = _as3(x)
    out = np.empty_like(x3)
    K.rope(x3, float(params["start"]), transpose, out)
    return out.reshape(x.shape)


@float_impl("rope")
def rope(arrays, params, threads):
    return _rope(arrays[0], params, False)


@float_vjp("rope")
def rope_vjp(arrays, params, out, g, threads):
    return (_rope(np.asarray(g, dtype=arrays[0].dtype), params, True),)


def _mm(a, b, threads, bias=None):
    """a (m, n) @ b (n, p) (+ bias), compensated."""
    return _mm_nt(a[None], np.ascontiguousarray(b.T)[None], threads, bias)[0]


@float_impl("gcn_layer")
def gcn_layer(arrays, params, threads):
    a, x, w, b = arrays
    # A X = H + R as a double word: H = fl(A X) (Dot2), R = A X - H by one more Dot2
    # of [A | I] and [X ; -H] (a cancelling sum computed as if in twice the precision,
    # so R is A X - H to ~u |R| + u^2 |A||X|); then A X W + b = [H | R] [W ; W] + b in
    # one Dot2 per output, rounded once.  Cost: three products instead of two.
    n = a.shape[0]
    hi = _mm(a, x, threads)
    lo = _mm(np.concatenate([a, np.eye(n, dtype=a.dtype)], axis=1),
             np.concatenate([x, -hi], axis=0), threads)
    return _mm(np.concatenate([hi, lo], axis=1), np.concatenate([w, w], axis=0), threads, b)


@float_vjp("gcn_layer")
def gcn_layer_vjp(arrays, params, out, g, threads):
    a, x, w, b = arrays
    g = np.ascontiguousarray(g, dtype=x.dtype)
    gw_t = _mm(g, np.ascontiguousarray(w.T), threads)            # g W^T
    ga = _mm(gw_t, np.ascontiguousarray(x.T), threads)            # g W^T X^T
    gx = _mm(np.ascontiguousarray(a.T), gw_t, threads)            # A^T g W^T
    gwt = _mm(np.ascontiguousarray(_mm(a, x, threads).T), g, threads)   # (A X)^T g
    gb = _sum_axes(g, (0,), threads)
    return ga, gx, gwt, gb
