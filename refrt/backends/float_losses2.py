"""Bind the pairwise regression loss kernels (``refrt._kernels.losses2``) to op names.

Each op is a (kernel code, parameter name or None) entry; the loop registers a forward
and a VJP.  The VJP scale k = g / meanDenom is rounded once to the working dtype here.
"""
from __future__ import annotations

import numpy as np

from .._kernels import losses2 as K
from . import float_impl, float_vjp

BLOCK = 8192
PAIRWISE = {
    "l1_loss": None, "huber_loss": "delta", "smooth_l1_loss": "beta", "log_cosh_loss": None,
    "hinge_loss": None, "poisson_nll_loss": None,
}


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def _bind(name, pname):
    code = K.CODES[name]

    def fwd(arrays, params, threads):
        p, t = arrays
        nb = max(1, -(-p.size // BLOCK))
        parts = np.zeros(nb, dtype=p.dtype), np.zeros(nb, dtype=p.dtype)
        v = K.loss_fwd(code, _flat(p), _flat(t), *parts, params[pname] if pname else 0.0,
                       threads=threads)
        return np.asarray(v, dtype=p.dtype).reshape(())

    def vjp(arrays, params, out, g, threads):
        p, t = arrays
        k = p.dtype.type(float(np.asarray(g).reshape(-1)[0]) / (p.size if p.size else 1))
        gp, gt = np.empty(p.size, p.dtype), np.empty(p.size, p.dtype)
        K.loss_vjp(code, _flat(p), _flat(t), k, gp, gt, params[pname] if pname else 0.0,
                   threads=threads)
        return gp.reshape(p.shape), gt.reshape(t.shape)

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


for _name, _pname in PAIRWISE.items():
    _bind(_name, _pname)
