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


# ---- cross_entropy (ignore_index, label_smoothing) ---------------------------------------

def _ce_inputs(arrays):
    x, t = arrays
    C = x.shape[-1]
    rows = np.ascontiguousarray(x).reshape(-1, C) if C else np.zeros((int(np.prod(x.shape[:-1])), 0), x.dtype)
    if t.dtype.kind in "iu":
        return rows, np.ascontiguousarray(t, dtype=np.int64).reshape(-1), np.zeros((0, 0), x.dtype), True
    return rows, np.zeros(0, np.int64), np.ascontiguousarray(t).reshape(rows.shape), False


@float_impl("cross_entropy")
def cross_entropy(arrays, params, threads):
    x = arrays[0]
    rows, ids, t, use_ids = _ce_inputs(arrays)
    v = K.ce_fwd(rows, ids, t, use_ids, params["ignore_index"], params["label_smoothing"])
    return np.asarray(v, dtype=x.dtype).reshape(())


@float_vjp("cross_entropy")
def cross_entropy_vjp(arrays, params, out, g, threads):
    x, tt = arrays
    rows, ids, t, use_ids = _ce_inputs(arrays)
    n = int(np.count_nonzero(ids != params["ignore_index"])) if use_ids else rows.shape[0]
    k = x.dtype.type(float(np.asarray(g).reshape(-1)[0]) / (n if n else 1))
    gx = np.zeros(rows.shape, x.dtype)
    gt = np.zeros(rows.shape if not use_ids else (0, 0), x.dtype)
    K.ce_vjp(rows, ids, t, use_ids, params["ignore_index"], params["label_smoothing"], k, gx, gt)
    return gx.reshape(x.shape), (None if use_ids else gt.reshape(tt.shape))
