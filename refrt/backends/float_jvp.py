"""Bind the forward-mode kernels (``refrt._kernels.jvp``) to the JVP op names.

Data movement only: the softmax axis moved last, normalised sets laid out as rows
(layer_norm: the last axis; batch_norm2d_jvp: refrt's batch_norm sets, ``_norm2_layout``)
with gamma / dgamma / dbeta broadcast to them, pool windows from ``conv_geometry``.  The
gradients with respect to the tangents are the primal ops' own VJP kernels (the JVP is
linear in its tangents with the primal's Jacobian): layer_norm / batch_norm for (dx,
dgamma, dbeta), max_pool2d for dx.
"""
from __future__ import annotations

import numpy as np

from .._kernels import jvp as K
from . import FLOAT, FLOAT_VJP, float_impl, float_vjp
from .conv_geometry import pairs, pool_windows
from ..registry._norm2_layout import layout


def _c(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


# ---- log_softmax_jvp ----------------------------------------------------------------------

def _last(a, axis, dtype):
    a = np.asarray(a, dtype=dtype)
    if a.ndim == 0:
        return _c(a.reshape(1, 1), dtype)
    m = np.moveaxis(a, axis, -1)
    return _c(m.reshape(-1, m.shape[-1]), dtype)


def _back(r, like, axis):
    if like.ndim == 0:
        return r.reshape(())
    moved = np.moveaxis(np.empty(like.shape, dtype=np.bool_), axis, -1).shape
    return np.ascontiguousarray(np.moveaxis(r.reshape(moved), -1, axis))


@float_impl("log_softmax_jvp")
def log_softmax_jvp(arrays, params, threads):
    y, dx = arrays
    ax = params["axis"]
    yr, dr = _last(y, ax, y.dtype), _last(dx, ax, y.dtype)
    out = np.empty_like(yr)
    K.lsm_jvp(yr, dr, out, threads)
    return _back(out, y, ax)


@float_vjp("log_softmax_jvp")
def log_softmax_jvp_vjp(arrays, params, out, g, threads):
    y, dx = arrays
    ax = params["axis"]
    dt = y.dtype
    yr, dr = _last(y, ax, dt), _last(dx, ax, dt)
    gr = _last(np.asarray(g, dt).reshape(y.shape), ax, dt)
    gy, gdx = np.zeros_like(yr), np.zeros_like(yr)
    K.lsm_jvp_vjp(yr, dr, gr, gy, gdx, threads)
    return _back(gy, y, ax), _back(gdx, y, ax)


# ---- layer_norm_jvp / batch_norm2d_jvp ----------------------------------------------------

def _norm_layout(name, x, params):
    if name == "layer_norm_jvp":
        D = x.shape[-1]
        R = int(np.prod(x.shape[:-1], dtype=np.int64))
        return (lambda a: np.asarray(a).reshape(R, D),
                lambda a: np.asarray(a).reshape(x.shape),
                lambda p: np.broadcast_to(np.asarray(p).reshape(1, D), (R, D)))
    L = layout("batch_norm", x.shape, params)
    return L.rows, L.unrows, L.expand


def _primal(name):
    return "layer_norm" if name == "layer_norm_jvp" else "batch_norm"


def _bind_norm(name):
    def fwd(arrays, params, threads):
        x, gamma, dx, dgamma, dbeta = arrays
        dt = x.dtype
        rows, unrows, expand = _norm_layout(name, x, params)
        xr = _c(rows(x), dt)
        R, D = xr.shape
        out = np.empty((R, D), dt)
        if x.size:
            flat = [_c(a, dt).reshape(-1) for a in
                    (xr, expand(gamma), rows(dx), expand(dgamma), expand(dbeta))]
            K.rownorm_jvp(*flat, dt.type(params["eps"]), D, out.reshape(-1),
                          np.empty(R * D, dt), np.empty(R * D, dt), threads)
        return np.ascontiguousarray(unrows(out))

    def vjp(arrays, params, out, g, threads):
        x, gamma, dx, dgamma, dbeta = arrays
        dt = x.dtype
        rows, unrows, expand = _norm_layout(name, x, params)
        xr = _c(rows(x), dt)
        R, D = xr.shape
        g = np.asarray(g, dt).reshape(x.shape)
        # dgamma's and dbeta's gradients: the primal's VJP (sum g xhat, sum g; beta does
        # not enter it); dx's is the kernel's s (P a - xhat ma) in row-scaled units (the
        # primal's x gradient rounds subnormal products, registry losses.NORM_FAMILIES)
        pp = {"eps": params["eps"]}
        if name != "layer_norm_jvp":
            pp["channel_axis"] = params["channel_axis"]
        _, gdgamma, gdbeta = FLOAT_VJP[_primal(name)](
            [x, gamma, np.zeros_like(gamma)], pp, None, g, threads)
        gx, gdx = np.zeros((R, D), dt), np.zeros((R, D), dt)
        ph, pl = np.zeros((R, D), dt), np.zeros((R, D), dt)
        if x.size:
            flat = [_c(a, dt).reshape(-1) for a in
                    (xr, expand(gamma), rows(dx), expand(dgamma), rows(g))]
            K.rownorm_jvp_vjp(*flat, dt.type(params["eps"]), D, gx.reshape(-1),
                              gdx.reshape(-1), ph.reshape(-1), pl.reshape(-1), threads)
        # gamma's gradient: the correctly rounded sum of the exact products g dxhat
        if name == "layer_norm_jvp":
            both = np.concatenate([ph, pl], axis=0).T           # (D, 2R): per column
        else:
            both = np.concatenate([ph, pl], axis=1)             # (C, 2 N S): per channel
        both = np.ascontiguousarray(both)
        if both.shape[1]:
            ggamma = np.asarray(FLOAT["sum"]([both], {"axis": 1}, threads)).reshape(gamma.shape)
        else:
            ggamma = np.zeros_like(gamma)
        return (np.ascontiguousarray(unrows(gx)), ggamma.astype(dt),
                np.ascontiguousarray(unrows(gdx)), np.ascontiguousarray(gdgamma, dt),
                np.ascontiguousarray(gdbeta, dt))

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


for _name in ("layer_norm_jvp", "batch_norm2d_jvp"):
    _bind_norm(_name)


# ---- max_pool2d_jvp -----------------------------------------------------------------------

def _pool_geometry(params, x):
    x4 = x if x.ndim == 4 else x[None]
    n, c, h, w = x4.shape
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    hs, he, ws, we, _, _ = pool_windows("max_pool2d", params, h, w, ho, wo)
    return x4, (n, c, h, w, ho, wo), (hs, he, ws, we)


@float_impl("max_pool2d_jvp")
def max_pool2d_jvp(arrays, params, threads):
    params = pairs(params)
    x, dx = arrays
    x4, (n, c, h, w, ho, wo), win = _pool_geometry(params, x)
    out = np.empty((n * c, ho, wo), dtype=x.dtype)
    K.pool_max_jvp(_c(x4, x.dtype).reshape(n * c, h, w),
                   _c(dx, x.dtype).reshape(n * c, h, w), *win, out, threads)
    return out.reshape((n, c, ho, wo) if x.ndim == 4 else (c, ho, wo))


@float_vjp("max_pool2d_jvp")
def max_pool2d_jvp_vjp(arrays, params, out, g, threads):
    x, dx = arrays
    pp = {k: params[k] for k in ("kernel_size", "stride", "padding")}
    (gdx,) = FLOAT_VJP["max_pool2d"]([x], pp, None, g, threads)
    return np.zeros_like(x), np.ascontiguousarray(gdx, x.dtype)


# ---- smooth_max_pool2d_jvp ----------------------------------------------------------------

def _smooth_geometry(params, x):
    x4 = x if x.ndim == 4 else x[None]
    n, c, h, w = x4.shape
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    hs, he, ws, we, _, _ = pool_windows("smooth_max_pool2d", params, h, w, ho, wo)
    return (n, c, h, w, ho, wo), (hs, he, ws, we)


@float_impl("smooth_max_pool2d_jvp")
def smooth_max_pool2d_jvp(arrays, params, threads):
    params = pairs(params)
    x, dx = arrays
    (n, c, h, w, ho, wo), win = _smooth_geometry(params, x)
    out = np.empty((n * c, ho, wo), dtype=x.dtype)
    K.pool_smooth_max_jvp(_c(x, x.dtype).reshape(n * c, h, w),
                          _c(dx, x.dtype).reshape(n * c, h, w), *win, out,
                          float(params["beta"]), threads)
    return out.reshape((n, c, ho, wo) if x.ndim == 4 else (c, ho, wo))


@float_vjp("smooth_max_pool2d_jvp")
def smooth_max_pool2d_jvp_vjp(arrays, params, out, g, threads):
    params = pairs(params)
    x, dx = arrays
    (n, c, h, w, ho, wo), win = _smooth_geometry(params, x)
    gx = np.zeros((n * c, h, w), x.dtype)
    K.pool_smooth_max_jvp_vjp(_c(x, x.dtype).reshape(n * c, h, w),
                              _c(dx, x.dtype).reshape(n * c, h, w),
                              _c(np.asarray(g, x.dtype), x.dtype).reshape(n * c, ho, wo), *win,
                              gx, np.zeros_like(gx), float(params["beta"]), threads)
    pp = {k: params[k] for k in ("kernel_size", "stride", "padding", "beta")}
    (gdx,) = FLOAT_VJP["smooth_max_pool2d"]([x], pp, None, g, threads)
    return gx.reshape(x.shape), np.ascontiguousarray(gdx, x.dtype)


# ---- scaled_dot_product_attention_jvp -----------------------------------------------------
# SDPA's binding (float_attention: batch flattening, uint8 mask, double-word scale); the
# gradients with respect to the tangents are SDPA's VJP kernel at (q, k, v).

@float_impl("scaled_dot_product_attention_jvp")
def sdpa_jvp(arrays, params, threads):
    from .float_attention import _flat, _mask, dims, scale_dw
    q, k, v = arrays[:3]
    B, L, S, E, Ev = dims(q, k, v)
    out = np.zeros(q.shape[:-1] + (Ev,), dtype=q.dtype)
    if out.size and S:
        m, has = _mask(params)
        hi, lo = scale_dw(E, params.get("scale"), q.dtype)
        K.sdpa_jvp(*(_flat(a) for a in arrays), m, has, hi, lo, B, L, S, E, Ev,
                   out.reshape(-1), threads)
    return out


@float_vjp("scaled_dot_product_attention_jvp")
def sdpa_jvp_vjp(arrays, params, out, g, threads):
    pp = {k: params.get(k) for k in ("mask", "is_causal", "scale")}
    grads = FLOAT_VJP["scaled_dot_product_attention"](list(arrays[:3]), pp, None, g, threads)
    return (None, None, None) + tuple(grads)
