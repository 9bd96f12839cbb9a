"""Bind the selection kernels (``refrt._kernels.select``) to the op ``where``."""
from __future__ import annotations

import numpy as np

from .._kernels import select as K
from . import float_impl, float_vjp


def _flat(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


@float_impl("where")
def where(arrays, params, threads):
    cond, x, y = arrays
    out = np.empty(x.size, dtype=x.dtype)
    K.where_fwd(_flat(cond).view(np.uint8), _flat(x), _flat(y), out)
    return out.reshape(x.shape)


@float_vjp("where")
def where_vjp(arrays, params, out, g, threads):
    cond, x, y = arrays
    gx = np.empty(x.size, dtype=x.dtype)
    gy = np.empty(x.size, dtype=x.dtype)
    K.where_vjp(_flat(cond).view(np.uint8), _flat(g, x.dtype), gx, gy)
    return None, gx.reshape(x.shape), gy.reshape(y.shape)
