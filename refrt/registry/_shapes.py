"""Shape rules: validate an op's array shapes and parameters, return the output shape.

Each rule has the signature ``rule(spec, arrays, params) -> tuple`` and raises an error
that names the op, the argument, what was expected and what came.  ``params`` is the
already-defaulted dict; rules normalise axes in place (negative -> non-negative).
"""
from __future__ import annotations

import numpy as np

from ..errors import bad_value


def normalize_axis(spec, name, axis, ndim, allow_none=False):
    if axis is None:
        if allow_none:
            return None
        raise bad_value(spec.name, name, f"an integer axis in [-{ndim}, {ndim})", "None")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise bad_value(spec.name, name, "an integer axis", f"{type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        lo = -ndim if ndim else 0
        raise bad_value(spec.name, name, f"an axis in [{lo}, {ndim}) for a {ndim}-d input",
                        axis)
    return int(axis) % ndim


def _same_shapes(spec, arrays, names=None):
    names = names or spec.arg_names
    first = arrays[0].shape
    for name, a in zip(names[1:], arrays[1:]):
        if a.shape != first:
            raise bad_value(spec.name, name,
                            f"shape {first} (the shape of '{names[0]}'; refrt does not "
                            "broadcast implicitly, use broadcast_to)", a.shape)
    return first


def elementwise(spec, arrays, params):
    return _same_shapes(spec, arrays)


def reduction(spec, arrays, params):
    x = arrays[0]
    axis = params.get("axis")
    if x.ndim == 0:
        if axis not in (None, 0, -1):
            raise bad_value(spec.name, "axis", "None, 0 or -1 for a 0-d input", axis)
        params["axis"] = None
        return ()
    params["axis"] = normalize_axis(spec, "axis", axis, x.ndim, allow_none=True)
    if params["axis"] is None:
        return ()
    return x.shape[:params["axis"]] + x.shape[params["axis"] + 1:]


def along_axis(spec, arrays, params):
    """Same shape as the input, computed along ``axis`` (softmax family)."""
    x = arrays[0]
    if x.ndim == 0:
        if params.get("axis") not in (0, -1):
            raise bad_value(spec.name, "axis", "0 or -1 for a 0-d input", params.get("axis"))
        params["axis"] = -1
        return ()
    params["axis"] = normalize_axis(spec, "axis", params.get("axis"), x.ndim)
    return x.shape


def pairwise_loss(spec, arrays, params):
    """pred and target of one shape, scalar result."""
    _same_shapes(spec, arrays)
    return ()


def class_loss(spec, arrays, params):
    """(..., C) scores; target is (..., C) probabilities or (...) integer class ids."""
    x, t = arrays[0], arrays[1]
    if x.ndim < 1:
        raise bad_value(spec.name, spec.arg_names[0], "an array of at least 1 dimension "
                        "(..., classes)", f"a {x.ndim}-d array")
    if t.dtype.kind in "iu":
        if t.shape != x.shape[:-1]:
            raise bad_value(spec.name, spec.arg_names[1],
                            f"integer class ids of shape {x.shape[:-1]} or probabilities of "
                            f"shape {x.shape}", f"integer array of shape {t.shape}")
        n = x.shape[-1]
        if t.size and (t.min() < 0 or t.max() >= n):
            bad = t[(t < 0) | (t >= n)].ravel()[0]
            raise bad_value(spec.name, spec.arg_names[1],
                            f"class ids in [0, {n})", f"class id {int(bad)}")
    elif t.shape != x.shape:
        raise bad_value(spec.name, spec.arg_names[1], f"shape {x.shape} (or integer class "
                        f"ids of shape {x.shape[:-1]})", t.shape)
    for name, a in zip(spec.arg_names[2:], arrays[2:]):
        if a.shape != x.shape:
            raise bad_value(spec.name, name, f"shape {x.shape}", a.shape)
    return ()


def matmul(spec, arrays, params):
    """(..., m, n) @ (..., n, p) with equal leading batch dims, or (..., m, n) @ (n, p)
    (a weight shared by every batch entry); no other broadcasting."""
    a, b = arrays
    if a.ndim < 2 or b.ndim < 2:
        raise bad_value(spec.name, "a" if a.ndim < 2 else "b",
                        "arrays of at least 2 dimensions ((..., m, n) @ (..., n, p))",
                        f"shapes {a.shape} and {b.shape}")
    if b.ndim != 2 and b.ndim != a.ndim:
        raise bad_value(spec.name, "b", f"a 2-d (n, p) or {a.ndim}-d (..., n, p) array "
                        f"(a is {a.shape})", f"shape {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise bad_value(spec.name, "b", f"{b.ndim}-d array with {a.shape[-1]} rows "
                        "(inner dimensions must agree)", f"shape {b.shape}")
    if b.ndim > 2 and a.shape[:-2] != b.shape[:-2]:
        raise bad_value(spec.name, "b", f"batch dimensions {a.shape[:-2]} (a's)",
                        f"shape {b.shape}")
    return a.shape[:-1] + b.shape[-1:]


def linear(spec, arrays, params):
    x, w, bias = arrays
    if w.ndim != 2:
        raise bad_value(spec.name, "weight", "a 2-d (out_features, in_features) array", w.shape)
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise bad_value(spec.name, "x", f"shape (..., {w.shape[1]}) (leading batch "
                        "dimensions allowed)", x.shape)
    if bias.shape != (w.shape[0],):
        raise bad_value(spec.name, "bias", f"shape ({w.shape[0]},)", bias.shape)
    return x.shape[:-1] + (w.shape[0],)


def batch_norm(spec, arrays, params):
    x = arrays[0]
    ca = params.get("channel_axis", 0)
    if ca not in (0, 1):
        raise bad_value(spec.name, "channel_axis", "0 for (C, spatial...) or 1 for "
                        "(N, C, spatial...)", ca)
    if x.ndim < ca + 1:
        raise bad_value(spec.name, "x", f"at least {ca + 1} dimensions for channel_axis={ca}",
                        f"shape {x.shape}")
    c = x.shape[ca]
    for name, a in zip(spec.arg_names[1:], arrays[1:]):
        if a.shape != (c,):
            raise bad_value(spec.name, name, f"shape ({c},) (one value per channel)", a.shape)
    return x.shape


def layer_norm(spec, arrays, params):
    x = arrays[0]
    if x.ndim < 1:
        raise bad_value(spec.name, "x", "an array of at least 1 dimension", "a 0-d array")
    d = x.shape[-1]
    for name, a in zip(spec.arg_names[1:], arrays[1:]):
        if a.shape != (d,):
            raise bad_value(spec.name, name, f"shape ({d},) (the last axis of x)", a.shape)
    return x.shape
