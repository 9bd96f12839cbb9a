"""Bind the loss and normalisation kernels to op names (float32/float64).

Denominators follow TorchLean: elementwise losses divide by the size (1 when empty),
row losses by the number of last-axis slices (1 when there are none).  VJP scale
factors ``g / n`` are rounded once to the working dtype here.
"""
from __future__ import annotations

import numpy as np

from .._kernels import losses as K
from .._kernels import norm as N
from . import float_impl, float_vjp

ROWS = {"cross_entropy_logits": 0, "cross_entropy_probs": 1, "nll_loss": 2, "kl_div": 3}
_NO_IDS = np.zeros(0, dtype=np.int64)


def _flat(a):
    return a.reshape(-1)


def _scalar(value, dtype):
    return np.asarray(value, dtype=dtype).reshape(())


def _count(n):
    return n if n > 0 else 1


def _rows(x):
    """Number of last-axis slices: prod(shape[:-1]), TorchLean's lastAxisSliceCount."""
    return int(np.prod(x.shape[:-1], dtype=np.int64)) if x.ndim > 1 else 1


def _k(g, n, dtype, factor=1.0):
    return dtype.type(factor * float(np.asarray(g).reshape(-1)[0]) / _count(n))


@float_impl("mse_loss")
def mse_loss(arrays, params, threads):
    p, t = arrays
    return _scalar(K.mse_fwd(_flat(p), _flat(t), threads), p.dtype)


@float_impl("bce_with_logits")
def bce_with_logits(arrays, params, threads):
    x, t = arrays
    return _scalar(K.bce_logits_fwd(_flat(x), _flat(t), threads), x.dtype)


@float_impl("binary_cross_entropy")
def binary_cross_entropy(arrays, params, threads):
    p, t = arrays
    return _scalar(K.bce_fwd(_flat(p), _flat(t), p.dtype.type(params["eps"]), threads), p.dtype)


# Overflow rescue of the row losses (cross_entropy_logits, nll_loss, kl_div).
# The kernels sum the row losses in the input dtype and divide by the row count R once,
# at the end, so a finite mean can overflow on the way: a row of logits [max, -max] with
# target 1 has the loss lse - z_1 = 2 max (inf), and R rows of nll -lp = max sum to R max,
# while the means are max and below.  When the kernel's total is not finite but every
# input is, the total is recomputed here from the per-element terms in a wider format
# whose exponent range holds R C (2 max) (float64 for float32 inputs; the x87 80-bit
# long double, 15-bit exponent, for float64) and divided by R before rounding back:
#   cross_entropy_logits  t_j ((m - z_j) + log s),  m = max_j z_j, s = sum_j e^(z_j - m)
#   nll_loss              -t_j lp_j
#   kl_div                t_j (log t_j - lp_j), 0 where t_j = 0 (xlogy)
# Every term but kl_div's is >= 0 (targets are probabilities), so the wide sum keeps its
# relative error near the wide format's eps (2^-64 for long double) times log2(R C),
# far below one ulp of the result.  A mean that is itself beyond the dtype's range is
# +inf after the rounding, as it should be.  Where long double is no wider than double
# (some non-x86 ABIs) the float64 rescue is skipped and the kernel's inf stands.
_WIDE = {np.dtype(np.float32): np.dtype(np.float64)}
if np.finfo(np.longdouble).maxexp > np.finfo(np.float64).maxexp:
    _WIDE[np.dtype(np.float64)] = np.dtype(np.longdouble)
_RESCUE = {0, 2, 3}          # the ROWS codes whose totals can overflow at a finite mean


def _wide_total(which, x, t, wide):
    C = x.shape[-1]
    z = x.reshape(-1, C).astype(wide)
    if t.dtype.kind in "iu":
        tt = np.zeros(z.shape, dtype=wide)
        np.put_along_axis(tt, t.reshape(-1, 1).astype(np.intp), 1, axis=1)
    else:
        tt = t.reshape(-1, C).astype(wide)
    with np.errstate(all="ignore"):
        if which == 0:
            m = z.max(axis=1, keepdims=True)
            s = np.exp(z - m).sum(axis=1, keepdims=True)
            terms = tt * ((m - z) + np.log(s))
        elif which == 2:
            terms = tt * -z
        else:
            terms = tt * (np.log(np.where(tt > 0, tt, 1)) - z)
        terms = np.where(tt == 0, 0, terms)
        return (terms.sum() / max(z.shape[0], 1)).astype(x.dtype)    # > max: inf


def _row_loss(name):
    def impl(arrays, params, threads):
        x, t = arrays
        eps = x.dtype.type(params.get("eps", 0.0))
        C = x.shape[-1]
        if t.dtype.kind in "iu":
            v = K.rows_ids_fwd(ROWS[name], _flat(x), _flat(t), C, eps, threads)
        else:
            v = K.rows_fwd(ROWS[name], _flat(x), _flat(t), C, eps, threads)
        if (not np.isfinite(v) and ROWS[name] in _RESCUE and x.dtype in _WIDE
                and np.isfinite(x).all() and (t.dtype.kind in "iu" or np.isfinite(t).all())):
            v = _wide_total(ROWS[name], x, t, _WIDE[x.dtype])
        # A (..., 0) input has rows but no terms: the total is 0.
        return _scalar(v, x.dtype)
    impl.__name__ = name
    return impl


for _name in ROWS:
    float_impl(_name)(_row_loss(_name))


# ---------------------------------------------------------------- VJPs

@float_vjp("mse_loss")
def mse_loss_vjp(arrays, params, out, g, threads):
    p, t = arrays
    gp, gt = np.empty_like(p), np.empty_like(t)
    K.mse_vjp(_flat(p), _flat(t), _k(g, p.size, p.dtype, 2.0), _flat(gp), _flat(gt), threads)
    return gp, gt


@float_vjp("bce_with_logits")
def bce_with_logits_vjp(arrays, params, out, g, threads):
    x, t = arrays
    gx, gt = np.empty_like(x), np.empty_like(t)
    K.bce_logits_vjp(_flat(x), _flat(t), _k(g, x.size, x.dtype), _flat(gx), _flat(gt), threads)
    return gx, gt


@float_vjp("binary_cross_entropy")
def binary_cross_entropy_vjp(arrays, params, out, g, threads):
    p, t = arrays
    gp, gt = np.empty_like(p), np.empty_like(t)
    K.bce_vjp(_flat(p), _flat(t), p.dtype.type(params["eps"]), _k(g, p.size, p.dtype),
              _flat(gp), _flat(gt), threads)
    return gp, gt


def _row_vjp(name):
    def vjp(arrays, params, out, g, threads):
        x, t = arrays
        k = _k(g, _rows(x), x.dtype)
        ids = t.dtype.kind in "iu"
        gx = np.empty_like(x)
        gt = None if ids else np.empty_like(t)
        tt = np.zeros(0, dtype=x.dtype) if ids else _flat(t)
        id_arr = _flat(t) if ids else _NO_IDS
        gt_flat = np.zeros(0, dtype=x.dtype) if ids else _flat(gt)
        C = x.shape[-1]
        if x.size == 0:
            if gt is not None:
                gt[...] = 0
            return gx, gt
        if name == "cross_entropy_logits":
            K.ce_logits_vjp(_flat(x), tt, id_arr, C, k, _flat(gx), gt_flat, threads)
        else:
            K.rows_vjp(ROWS[name], _flat(x), tt, id_arr, C,
                       x.dtype.type(params.get("eps", 0.0)), k, _flat(gx), gt_flat, threads)
        return gx, gt
    vjp.__name__ = name + "_vjp"
    return vjp


for _name in ROWS:
    float_vjp(_name)(_row_vjp(_name))


# ---------------------------------------------------------------- normalisation

def _bn_dims(x, channel_axis):
    """(N, C, S) view of x: channel_axis=0 is TorchLean's (C, spatial...) with N = 1."""
    n = x.shape[0] if channel_axis == 1 else 1
    c = x.shape[channel_axis]
    s = int(np.prod(x.shape[channel_axis + 1:], dtype=np.int64))
    return n, c, s


@float_impl("batch_norm_inference")
def batch_norm_inference(arrays, params, threads):
    x, mean, var, gamma, beta = arrays
    n, c, s = _bn_dims(x, params["channel_axis"])
    out = np.empty_like(x)
    if x.size:
        N.bn_fwd(_flat(x), mean, var, gamma, beta, x.dtype.type(params["eps"]), n, c, s,
                 _flat(out), threads)
    return out


@float_vjp("batch_norm_inference")
def batch_norm_inference_vjp(arrays, params, out, g, threads):
    x, mean, var, gamma, beta = arrays
    n, c, s = _bn_dims(x, params["channel_axis"])
    g = np.ascontiguousarray(g, dtype=x.dtype)
    gx = np.empty_like(x)
    grads = [np.zeros_like(mean) for _ in range(4)]
    if c:
        N.bn_vjp(_flat(x), mean, var, gamma, _flat(g), x.dtype.type(params["eps"]), n, c, s,
                 _flat(gx), *grads, threads)
    gmean, gvar, ggamma, gbeta = grads
    return gx, gmean, gvar, ggamma, gbeta


@float_impl("layer_norm")
def layer_norm(arrays, params, threads):
    x, gamma, beta = arrays
    out = np.empty_like(x)
    if x.size:
        N.ln_fwd(_flat(x), gamma, beta, x.dtype.type(params["eps"]), x.shape[-1],
                 _flat(out), threads)
    return out


@float_vjp("layer_norm")
def layer_norm_vjp(arrays, params, out, g, threads):
    x, gamma, beta = arrays
    g = np.ascontiguousarray(g, dtype=x.dtype)
    gx, xhat = np.empty_like(x), np.empty_like(x)
    ggamma, gbeta = np.zeros_like(gamma), np.zeros_like(beta)
    if x.size:
        N.ln_vjp(_flat(x), gamma, _flat(g), x.dtype.type(params["eps"]), x.shape[-1],
                 _flat(gx), _flat(xhat), ggamma, gbeta, threads)
    return gx, ggamma, gbeta
