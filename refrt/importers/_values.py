"""Values met while lowering an exported program: refrt traced values, constants
(NumPy arrays folded at import) and Python numbers, and the import options."""
from __future__ import annotations

import contextvars

import numpy as np

from .. import ops
from ..graph import Traced
from .aten_table import Fixed

# from_torch's options (``dropout=``, ``seed=``) while one import runs; the default
# outside an import
OPTIONS = contextvars.ContextVar("refrt_from_torch_options", default={})


def _is_traced(v):
    return isinstance(v, Traced)


def _shape(v):
    return tuple(v.shape) if hasattr(v, "shape") else ()


def _float_dtype(values):
    for v in values:
        if hasattr(v, "dtype") and np.dtype(v.dtype).kind == "f":
            return np.dtype(v.dtype)
    return np.dtype(np.float64)


def _broadcast(v, shape, dtype):
    """``v`` (a traced value, a constant array or a Python number) at ``shape``."""
    if not _is_traced(v):
        # a constant bool mask used as a number (x * mask) is 0/1 in x's dtype, as torch
        # promotes it; a where's condition is converted by its lowering, not here
        arr = np.asarray(v)
        if arr.dtype.kind in "fiub":
            arr = arr.astype(dtype)
        return np.ascontiguousarray(np.broadcast_to(arr, shape))
    if tuple(v.shape) == tuple(shape):
        return v
    return ops.broadcast_to(v, shape=tuple(shape))


def _out_shape(*values):
    return tuple(np.broadcast_shapes(*[_shape(v) for v in values]))


def _scalar(v):
    return not _is_traced(v) and np.ndim(v) == 0


def _params(row, b):
    out = {}
    for name, src in row.params.items():
        out[name] = src.value if isinstance(src, Fixed) else b.get(src)
    return out
