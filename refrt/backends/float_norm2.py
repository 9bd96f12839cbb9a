"""Bind the row-normalisation kernels (``refrt._kernels.norm2``) to the norm2 op names.

Each op lays x out as rows of its normalised sets and broadcasts gamma / beta to them
(``norm2_layout``, data movement only).  dgamma and dbeta are the correctly rounded sums
(the ``sum`` kernel of reductions.pyx) of the kernel's per-element g * xhat (as hi and lo
words, summed together) and of g, over gamma's broadcast axes.
"""
from __future__ import annotations

import numpy as np

from .._kernels import norm2 as K
from . import FLOAT, float_impl, float_vjp
from ..registry._norm2_layout import HAS_BETA, OPS, layout


def _c(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def _sum_rows(a, threads):
    """Correctly rounded sums along axis 1 of a (P, M) array (M may be 0)."""
    a = np.ascontiguousarray(a)
    if a.shape[1] == 0:
        return np.zeros(a.shape[0], dtype=a.dtype)
    return np.asarray(FLOAT["sum"]([a], {"axis": 1}, threads)).reshape(a.shape[0])


def _bind(name):
    beta_in = HAS_BETA[name]

    def fwd(arrays, params, threads):
        x, gamma = arrays[0], arrays[1]
        L = layout(name, x.shape, params)
        xr = L.rows(x)
        out = np.empty(xr.shape, dtype=x.dtype)
        if x.size:
            R, D = xr.shape
            beta = L.expand(arrays[2]) if beta_in else np.zeros((R, D), x.dtype)
            K.rownorm_fwd(_c(xr, x.dtype), _c(L.expand(gamma), x.dtype), _c(beta, x.dtype),
                          x.dtype.type(params["eps"]), L.centred, L.mean, R, D,
                          out.reshape(-1), threads)
        return L.unrows(out)

    def vjp(arrays, params, out, g, threads):
        x, gamma = arrays[0], arrays[1]
        dt = x.dtype
        L = layout(name, x.shape, params)
        xr = L.rows(x)
        R, D = xr.shape
        gr = np.ascontiguousarray(L.rows(np.asarray(g, dtype=dt).reshape(x.shape)))
        gx, ph, pl = (np.zeros((R, D), dt) for _ in range(3))
        if x.size:
            K.rownorm_vjp(_c(xr, dt), _c(L.expand(gamma), dt), gr.reshape(-1),
                          dt.type(params["eps"]), L.centred, L.mean, R, D, gx.reshape(-1),
                          ph.reshape(-1), pl.reshape(-1), threads)
        both = np.concatenate([L.reduce_view(ph), L.reduce_view(pl)], axis=1)
        ggamma = L.unreduce(_sum_rows(both, threads)).astype(dt)
        res = [L.unrows(gx), ggamma]
        if beta_in:
            res.append(L.unreduce(_sum_rows(L.reduce_view(gr), threads)).astype(dt))
        return tuple(np.ascontiguousarray(r) for r in res)

    float_impl(name)(fwd)
    float_vjp(name)(vjp)


for _name in OPS:
    _bind(_name)
