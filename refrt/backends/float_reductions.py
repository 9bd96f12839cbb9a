"""Bind the reduction, softmax, linear-algebra and shape kernels to op names.

Every reduction or along-axis op moves its axis last and hands the kernel a (rows, n)
C-contiguous array (no copy when the axis already is last); ``axis=None`` is one row of
all elements.  Shape ops are NumPy copies (no arithmetic, exact); the sums inside their
VJPs go through the compensated row-sum kernel.
"""
from __future__ import annotations

import math

import numpy as np

from .._kernels import linalg as LA
from .._kernels import reductions as R
from .._kernels import softmax as SM
from ..errors import bad_value
from . import float_impl, float_vjp


# ---- layout helpers --------------------------------------------------------------------

def _as_rows(x, axis):
    """(rows, n) C-contiguous view/copy with ``axis`` last, and the moved shape.

    The common case (axis already last, x C-contiguous as prepared) is a reshape: no
    moveaxis, no copy (they cost more than the kernel on a 256x10 input)."""
    if axis is None or x.ndim == 0:
        return np.ascontiguousarray(x).reshape(1, -1), x.shape
    if axis == x.ndim - 1 and x.flags.c_contiguous:
        return x.reshape(math.prod(x.shape[:-1]), x.shape[-1]), x.shape
    moved = np.moveaxis(x, axis, -1)
    return (np.ascontiguousarray(moved).reshape(math.prod(moved.shape[:-1]), moved.shape[-1]),
            moved.shape)


def _from_rows(y2, moved_shape, axis, ndim):
    """Inverse of ``_as_rows`` for same-shape results."""
    y = y2.reshape(moved_shape)
    if axis is None or ndim == 0 or axis == ndim - 1:
        return y
    return np.ascontiguousarray(np.moveaxis(y, -1, axis))


def _reduce(kernel, x, axis, threads, *extra):
    rows, moved = _as_rows(x, axis)
    out = np.empty(rows.shape[0], dtype=x.dtype)
    kernel(rows, out, *extra, threads)
    return out.reshape(() if axis is None or x.ndim == 0 else moved[:-1])


def _sum_axes(g, axes, threads):
    """Compensated sum of ``g`` over ``axes`` (a tuple; the others are kept in order)."""
    axes = tuple(sorted(a % g.ndim for a in axes)) if g.ndim else ()
    if not axes:
        return np.array(g, copy=True)
    kept = [a for a in range(g.ndim) if a not in axes]
    moved = np.transpose(g, kept + list(axes))
    kept_shape = moved.shape[:len(kept)]
    rows = np.ascontiguousarray(moved).reshape(int(np.prod(kept_shape, dtype=np.int64)),
                                               int(np.prod(moved.shape[len(kept):])))
    out = np.empty(rows.shape[0], dtype=g.dtype)
    R.sum_rows(rows, out, threads)
    return out.reshape(kept_shape)


def _broadcast_back(g, x, axis):
    """g (the reduced shape) broadcast back to x's shape, as a fresh array."""
    if axis is None or x.ndim == 0:
        return np.full(x.shape, np.asarray(g).reshape(()), dtype=x.dtype)
    return np.ascontiguousarray(np.broadcast_to(np.expand_dims(g, axis), x.shape))


def _count(x, axis):
    n = x.size if axis is None or x.ndim == 0 else x.shape[axis]
    return max(n, 1)


# ---- reductions ------------------------------------------------------------------------

@float_impl("sum")
def sum_(arrays, params, threads):
    return _reduce(R.sum_rows, arrays[0], params["axis"], threads)


@float_vjp("sum")
def sum_vjp(arrays, params, out, g, threads):
    return (_broadcast_back(g, arrays[0], params["axis"]),)


@float_impl("mean")
def mean(arrays, params, threads):
    return _reduce(R.mean_rows, arrays[0], params["axis"], threads)


@float_vjp("mean")
def mean_vjp(arrays, params, out, g, threads):
    x = arrays[0]
    return (_broadcast_back(g / x.dtype.type(_count(x, params["axis"])), x, params["axis"]),)


def _extreme(name, want_max):
    def impl(arrays, params, threads):
        x, axis = arrays[0], params["axis"]
        n = x.size if axis is None or x.ndim == 0 else x.shape[axis]
        if n == 0:
            where = "all elements" if axis is None else f"axis {axis}"
            raise bad_value(name, "x", f"a non-empty reduction ({name} of nothing is "
                            "undefined)", f"shape {x.shape} reduced over {where}")
        return _reduce(R.extreme_rows, x, axis, threads, want_max)

    def vjp(arrays, params, out, g, threads):
        x, axis = arrays[0], params["axis"]
        rows, moved = _as_rows(x, axis)
        gx = np.empty_like(rows)
        R.extreme_vjp(rows, np.ascontiguousarray(out, x.dtype).reshape(-1),
                      np.ascontiguousarray(g, x.dtype).reshape(-1), gx, threads)
        return (_from_rows(gx, moved, axis, x.ndim),)

    float_impl(name)(impl)
    float_vjp(name)(vjp)


_extreme("amax", True)
_extreme("amin", False)


@float_impl("var")
def var(arrays, params, threads):
    return _reduce(R.var_rows, arrays[0], params["axis"], threads)


@float_vjp("var")
def var_vjp(arrays, params, out, g, threads):
    x, axis = arrays[0], params["axis"]
    rows, moved = _as_rows(x, axis)
    gx = np.empty_like(rows)
    R.var_vjp(rows, np.ascontiguousarray(g, x.dtype).reshape(-1), gx, threads)
    return (_from_rows(gx, moved, axis, x.ndim),)


# ---- softmax family --------------------------------------------------------------------

def _along(kernel, x, axis, threads):
    rows, moved = _as_rows(x, axis)
    out = np.empty_like(rows)
    kernel(rows, out, threads)
    return _from_rows(out, moved, axis, x.ndim)


@float_impl("logsumexp")
def logsumexp(arrays, params, threads):
    return _reduce(SM.logsumexp_rows, arrays[0], params["axis"], threads)


@float_vjp("logsumexp")
def logsumexp_vjp(arrays, params, out, g, threads):
    x, axis = arrays[0], params["axis"]
    y = _along(SM.softmax_rows, x, axis, threads)
    return (y * _broadcast_back(g, x, axis),)


@float_impl("softmax")
def softmax(arrays, params, threads):
    return _along(SM.softmax_rows, arrays[0], params["axis"], threads)


@float_impl("log_softmax")
def log_softmax(arrays, params, threads):
    return _along(SM.log_softmax_rows, arrays[0], params["axis"], threads)


def _softmax_like_vjp(kernel):
    def vjp(arrays, params, out, g, threads):
        x, axis = arrays[0], params["axis"]
        y, moved = _as_rows(np.asarray(out, x.dtype), axis)
        g2, _ = _as_rows(np.asarray(g, x.dtype), axis)
        gx = np.empty_like(y)
        kernel(y, g2, gx, threads)
        return (_from_rows(gx, moved, axis, x.ndim),)
    return vjp


float_vjp("softmax")(_softmax_like_vjp(SM.softmax_vjp))


@float_vjp("log_softmax")
def log_softmax_vjp(arrays, params, out, g, threads):
    """From the logits, not the rounded output: exp(y_j) of a rounded y_j = -600 is 600
    ulp off (softmax.pyx, log_softmax_vjp_x)."""
    x, axis = arrays[0], params["axis"]
    x2, moved = _as_rows(x, axis)
    g2, _ = _as_rows(np.asarray(g, x.dtype), axis)
    gx = np.empty_like(x2)
    SM.log_softmax_vjp_x(x2, np.ascontiguousarray(g2), gx, threads)
    return (_from_rows(gx, moved, axis, x.ndim),)


# ---- linear algebra --------------------------------------------------------------------

_NO_BIAS = {np.dtype(np.float32): np.empty(0, np.float32),
            np.dtype(np.float64): np.empty(0, np.float64)}


def _mm_nt(a, bt, threads, bias=None):
    """a (B, m, n) times bt (B, p, n) transposed -> (B, m, p) (3-d inputs, any layout)."""
    a = np.ascontiguousarray(a)
    bt = np.ascontiguousarray(bt)
    out = np.empty((a.shape[0], a.shape[1], bt.shape[1]), dtype=a.dtype)
    LA.matmul_nt(a, bt, _NO_BIAS[a.dtype] if bias is None else np.ascontiguousarray(bias),
                 out, threads)
    return out


def _batched(a):
    return a if a.ndim == 3 else a[None]


def _lead(a, b):
    """matmul operands as 3-d stacks: (B, m, n), (B, n, p), or b 2-d shared: a folded to
    (1, B m, n) so one product covers every batch entry."""
    rows = int(np.prod(a.shape[:-1], dtype=np.int64))
    if b.ndim == 2:
        return a.reshape(1, rows, a.shape[-1]), b[None]
    nb = int(np.prod(a.shape[:-2], dtype=np.int64))
    return a.reshape((nb,) + a.shape[-2:]), b.reshape((nb,) + b.shape[-2:])


@float_impl("matmul")
def matmul(arrays, params, threads):
    a, b = arrays
    a3, b3 = _lead(a, b)
    out = _mm_nt(a3, np.swapaxes(b3, 1, 2), threads)
    return out.reshape(a.shape[:-1] + b.shape[-1:])


@float_vjp("matmul")
def matmul_vjp(arrays, params, out, g, threads):
    a, b = arrays
    a3, b3 = _lead(a, b)
    g3 = np.asarray(g, a.dtype).reshape(a3.shape[:2] + b.shape[-1:])
    ga = _mm_nt(g3, b3, threads)                                        # g @ b^T
    gb = _mm_nt(np.swapaxes(a3, 1, 2), np.swapaxes(g3, 1, 2), threads)  # a^T @ g
    return ga.reshape(a.shape), gb.reshape(b.shape)


def _samples(x):
    """Number of samples of a linear input (N, in) or (in,); reshape(-1, in) fails at in=0."""
    return int(np.prod(x.shape[:-1], dtype=np.int64))


@float_impl("linear")
def linear(arrays, params, threads):
    x, w, bias = arrays
    out = _mm_nt(x.reshape(1, _samples(x), w.shape[1]), w[None], threads, bias)
    return out.reshape(x.shape[:-1] + (w.shape[0],))


@float_vjp("linear")
def linear_vjp(arrays, params, out, g, threads):
    x, w, bias = arrays
    x2 = x.reshape(_samples(x), w.shape[1])
    g2 = np.asarray(g, x.dtype).reshape(_samples(x), w.shape[0])
    gx = _mm_nt(g2[None], w.T[None], threads)[0].reshape(x.shape)     # g @ W
    gw = _mm_nt(g2.T[None], x2.T[None], threads)[0]                  # g^T @ x
    gb = _sum_axes(g2, (0,), threads)                                # column sums
    return gx, gw, gb


@float_impl("affine")
def affine(arrays, params, threads):
    x, a, b = arrays
    return _mm_nt(x.reshape(1, 1, -1), a[None], threads, b).reshape(a.shape[0])


@float_vjp("affine")
def affine_vjp(arrays, params, out, g, threads):
    x, a, b = arrays
    g3 = np.asarray(g, x.dtype).reshape(1, 1, -1)
    return _mm_nt(g3, a.T[None], threads).reshape(x.shape), None, None   # A^T g


# ---- shape ops (exact copies) and their VJPs ---------------------------------------------

def _copy_op(name, forward, backward):
    float_impl(name)(lambda arrays, params, threads: np.ascontiguousarray(
        forward(arrays[0], params)).copy())
    float_vjp(name)(lambda arrays, params, out, g, threads: (np.ascontiguousarray(
        backward(np.asarray(g, arrays[0].dtype), arrays[0], params)).copy(),))


_copy_op("transpose", lambda x, p: x.T, lambda g, x, p: g.T)
_copy_op("reshape", lambda x, p: x.reshape(p["shape"]), lambda g, x, p: g.reshape(x.shape))
_copy_op("flatten", lambda x, p: x.reshape(-1), lambda g, x, p: g.reshape(x.shape))
_copy_op("swap_first_two", lambda x, p: np.swapaxes(x, 0, 1),
         lambda g, x, p: np.swapaxes(g, 0, 1))
_copy_op("transpose_last_two", lambda x, p: np.swapaxes(x, -1, -2),
         lambda g, x, p: np.swapaxes(g, -1, -2))


@float_impl("broadcast_row")
def broadcast_row(arrays, params, threads):
    x = arrays[0]
    return np.ascontiguousarray(np.broadcast_to(x[..., None], x.shape + (params["n"],)))


@float_vjp("broadcast_row")
def broadcast_row_vjp(arrays, params, out, g, threads):
    return (_sum_axes(np.asarray(g, arrays[0].dtype), (-1,), threads),)


@float_impl("broadcast_col")
def broadcast_col(arrays, params, threads):
    x = arrays[0]
    return np.ascontiguousarray(np.broadcast_to(x, (params["m"],) + x.shape))


@float_vjp("broadcast_col")
def broadcast_col_vjp(arrays, params, out, g, threads):
    return (_sum_axes(np.asarray(g, arrays[0].dtype), (0,), threads),)


@float_impl("broadcast_to")
def broadcast_to(arrays, params, threads):
    return np.ascontiguousarray(np.broadcast_to(arrays[0], params["shape"]))


@float_vjp("broadcast_to")
def broadcast_to_vjp(arrays, params, out, g, threads):
    x = arrays[0]
    g = np.asarray(g, x.dtype)
    lead = g.ndim - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(x.shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return (_sum_axes(g, axes, threads).reshape(x.shape),)


@float_impl("concat")
def concat(arrays, params, threads):
    return np.concatenate(arrays, axis=params["axis"])


@float_vjp("concat")
def concat_vjp(arrays, params, out, g, threads):
    a, b = arrays
    ga, gb = np.split(np.asarray(g, a.dtype), [a.shape[params["axis"]]], axis=params["axis"])
    return np.ascontiguousarray(ga), np.ascontiguousarray(gb)


@float_impl("row_mean")
def row_mean(arrays, params, threads):
    return _reduce(R.mean_rows, arrays[0], 1, threads)


@float_vjp("row_mean")
def row_mean_vjp(arrays, params, out, g, threads):
    x = arrays[0]
    return (_broadcast_back(np.asarray(g, x.dtype) / x.dtype.type(_count(x, 1)), x, 1),)


@float_impl("reduce_sum")
def reduce_sum(arrays, params, threads):
    return sum_(arrays, params, threads)


@float_vjp("reduce_sum")
def reduce_sum_vjp(arrays, params, out, g, threads):
    return sum_vjp(arrays, params, out, np.asarray(g, arrays[0].dtype), threads)


@float_impl("reduce_mean")
def reduce_mean(arrays, params, threads):
    return mean(arrays, params, threads)


@float_vjp("reduce_mean")
def reduce_mean_vjp(arrays, params, out, g, threads):
    return mean_vjp(arrays, params, out, np.asarray(g, arrays[0].dtype), threads)
