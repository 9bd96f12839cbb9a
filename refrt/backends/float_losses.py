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


def _row_loss(name):
    def impl(arrays, params, threads):
        x, t = arrays
        eps = x.dtype.type(params.get("eps", 0.0))
        C = x.shape[-1]
        if t.dtype.kind in "iu":
            v = K.rows_ids_fwd(ROWS[name], _flat(x), _flat(t), C, eps, threads)
        else:
            v = K.rows_fwd(ROWS[name], _flat(x), _flat(t), C, eps, threads)
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
