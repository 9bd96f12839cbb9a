"""The lowerings of ``aten_table`` rows that are not one refrt call with the ATen
arguments (``Row.lower``): broadcasting, views, reductions over several dims, permutes,
norms with optional affine arrays, pools, attention masks; ``lowerings_more`` adds
recurrent layers, indexing, padding, masks and dropout.

A lowering is ``f(row, bound, node)``: ``bound`` maps the ATen schema's argument names
to values (traced refrt values, NumPy constants, Python numbers), ``node`` is the FX node
(its ``meta["val"]`` gives torch's output shape and dtype).  A support check
``SUPPORT[row.lower](row, bound)`` returns None or the one-line reason the call cannot
be mapped (it runs on the example values before anything is traced).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import RefrtError
from ..registry import OPS
from ._values import (_broadcast, _float_dtype, _is_traced, _out_shape, _params, _scalar,
                      _shape)


def _elementwise(row, b, node):
    vals = [b[a] for a in row.arrays]
    if row.aten.startswith("aten.rsub"):
        vals = vals[::-1]
    dtype = _float_dtype(vals)
    # x * c and x / c with a Python number c: refrt's scale (c * x, one rounding); x / c
    # is a scale only when 1/c is exact, else a division by a constant array
    if row.op in ("mul", "div") and len(vals) == 2 and _scalar(vals[1]) and _is_traced(vals[0]):
        c = float(vals[1])
        if row.op == "mul":
            return ops.scale(vals[0], c=c)
        m, _ = np.frexp(c)
        if c != 0 and abs(m) == 0.5:
            return ops.scale(vals[0], c=1.0 / c)
    if row.op == "mul" and _scalar(vals[0]) and _is_traced(vals[1]):
        return ops.scale(vals[1], c=float(vals[0]))
    shape = _out_shape(*vals)
    if row.op == "where":
        cond = vals[0]
        cond = np.ascontiguousarray(np.broadcast_to(np.asarray(cond, bool), shape)) \
            if not _is_traced(cond) else _broadcast(cond, shape, dtype)
        return ops.where(cond, _broadcast(vals[1], shape, dtype),
                         _broadcast(vals[2], shape, dtype))
    args = [_broadcast(v, shape, dtype) for v in vals]
    return getattr(ops, row.op)(*args)


def _direct(row, b, node):
    return getattr(ops, row.op)(*[b[a] for a in row.arrays], **_params(row, b))


def _optional(row, b, node):
    """Rows whose refrt op takes an optional ``bias=`` array: a None bias is passed as
    explicit zeros of the output channels (the registry's own stand-in reads the shapes
    of the arrays, which a traced value does not give to NumPy)."""
    params = {k: v for k, v in _params(row, b).items() if v is not None}
    if "bias" in row.params and params.get("bias") is None:
        w = b["weight"]
        out_ch = _shape(w)[0] if "transpose" not in row.op else \
            _shape(w)[1] * int(b.get("groups", 1) or 1)
        params["bias"] = np.zeros(out_ch, _float_dtype([w]))
    # positionally: refrt._prepare.bind_optional calls np.shape on keyword-bound calls,
    # which a traced value refuses (a bias passed by keyword fails inside a trace)
    bias = params.pop("bias", None)
    return getattr(ops, row.op)(*[b[a] for a in row.arrays], bias, **params)


def _identity(row, b, node):
    return b[row.arrays[0]]


def _chain(row, b, node):
    v = b[row.arrays[0]]
    for op in row.params["ops"].value:
        v = getattr(ops, op)(v)
    return v


def _power(row, b, node):
    x, e = b["self"], b["exponent"]
    if float(e) == 2.0:
        return ops.square(x)
    return ops.pow(x, _broadcast(float(e), _shape(x), _float_dtype([x])))


def _gelu(row, b, node):
    return (ops.gelu_erf if b.get("approximate", "none") == "none" else ops.gelu)(b["self"])


def _clamp(row, b, node):
    x, lo, hi = b["self"], b.get("min"), b.get("max")
    if lo is not None and hi is not None:
        return ops.clamp(x, lo=float(lo), hi=float(hi))
    dtype = _float_dtype([x])
    if lo is not None:
        return ops.maximum(x, _broadcast(float(lo), _shape(x), dtype))
    return ops.minimum(x, _broadcast(float(hi), _shape(x), dtype))


def _dims(b, ndim):
    dim = b.get("dim")
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return None
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted({d % ndim for d in dims})


def _reduce(row, b, node):
    """Reductions over several dims are successive single-axis reductions (highest axis
    first, so the remaining axes keep their numbers); a mean over several axes is a
    mean of means, equal to the flat mean in exact arithmetic (TorchLean's meanSpec is a
    mean of means too).  keepdim reinserts the axes by a reshape."""
    x = b["self"]
    shape = _shape(x)
    dims = _dims(b, max(len(shape), 1))
    keep = bool(b.get("keepdim", False))
    op = getattr(ops, row.op)
    if dims is None or (len(shape) and len(dims) == len(shape) and row.op != "logsumexp"):
        y = op(x, axis=None)
        dims = list(range(len(shape)))
    else:
        y = x
        for d in reversed(dims):
            y = op(y, axis=d)
    if keep:
        y = ops.reshape(y, shape=tuple(1 if i in dims else s for i, s in enumerate(shape)))
    return y


def _linear(row, b, node):
    x, w, bias = b["input"], b["weight"], b.get("bias")
    shape = _shape(x)
    if len(shape) > 2:
        x = ops.reshape(x, shape=(-1, shape[-1]))
    y = ops.linear(x, w, bias) if bias is not None else ops.matmul(x, ops.transpose(w))
    if len(shape) > 2:
        y = ops.reshape(y, shape=shape[:-1] + (_shape(w)[0],))
    return y


def _addmm(row, b, node):
    y = ops.matmul(b["mat1"], b["mat2"])
    return ops.add(y, _broadcast(b["self"], _shape(y), _float_dtype([y])))


def _matmul(row, b, node):
    a, c = b["self"], b["other"]
    sa, sc = _shape(a), _shape(c)
    if len(sa) == len(sc) and len(sa) in (2, 3):
        return ops.matmul(a, c)
    if len(sa) > 3 and sa[:-2] == sc[:-2]:
        y = ops.matmul(ops.reshape(a, shape=(-1,) + sa[-2:]), ops.reshape(c, shape=(-1,) + sc[-2:]))
        return ops.reshape(y, shape=sa[:-1] + sc[-1:])
    if len(sa) > 2 and len(sc) == 2:
        y = ops.matmul(ops.reshape(a, shape=(-1, sa[-1])), c)
        return ops.reshape(y, shape=sa[:-1] + sc[-1:])
    return ops.matmul(a, c)


def _view(row, b, node):
    x = b["self"]
    out = tuple(int(s) for s in node.meta["val"].shape)
    if out == _shape(x):
        return x
    return ops.reshape(x, shape=out)


def _expand(row, b, node):
    x = b["self"]
    out = tuple(int(s) for s in node.meta["val"].shape)
    return _broadcast(x, out, _float_dtype([x]))


def _perm(row, b, node):
    ndim = len(_shape(b["self"]))
    if "dims" in b:
        return [int(d) % ndim for d in b["dims"]]
    perm = list(range(ndim))
    i, j = b["dim0"] % ndim, b["dim1"] % ndim
    perm[i], perm[j] = perm[j], perm[i]
    return perm


def _permute(row, b, node):
    x = b["self"]
    perm = _perm(row, b, node)
    n = len(perm)
    if perm == list(range(n)):
        return x
    if n == 2:
        return ops.transpose(x)
    if perm == list(range(n - 2)) + [n - 1, n - 2]:
        return ops.transpose_last_two(x)
    if perm == [1, 0] + list(range(2, n)):
        return ops.swap_first_two(x)
    return ops.permute(x, dims=tuple(perm))


def _permute_support(row, b):
    ndim = len(_shape(b["self"]))
    if "dims" in b:
        perm = [int(d) % ndim for d in b["dims"]]
    else:
        perm = list(range(ndim))
        i, j = b["dim0"] % ndim, b["dim1"] % ndim
        perm[i], perm[j] = perm[j], perm[i]
    n = len(perm)
    simple = (perm == list(range(n)) or n == 2 or perm == list(range(n - 2)) + [n - 1, n - 2]
              or perm == [1, 0] + list(range(2, n)))
    if not simple and "permute" not in OPS:
        return f"the permutation {perm} needs refrt's general 'permute' op"
    return None


def _cat(row, b, node):
    tensors, dim = list(b["tensors"]), b.get("dim", 0)
    if "concat" in OPS and len(tensors) == 2:
        return ops.concat(tensors[0], tensors[1], axis=dim)
    y = tensors[0]
    for t in tensors[1:]:
        y = ops.concat(y, t, axis=dim)
    return y


def _layer_norm(row, b, node):
    x, shape = b["input"], list(b["normalized_shape"])
    xs = _shape(x)
    dtype = _float_dtype([x])
    k = len(shape)
    d = int(np.prod(shape))
    gamma = b.get("weight") if b.get("weight") is not None else np.ones(shape, dtype)
    beta = b.get("bias") if b.get("bias") is not None else np.zeros(shape, dtype)
    if k > 1:
        x = ops.reshape(x, shape=xs[:-k] + (d,))
        gamma = ops.reshape(gamma, shape=(d,)) if _is_traced(gamma) else gamma.reshape(d)
        beta = ops.reshape(beta, shape=(d,)) if _is_traced(beta) else beta.reshape(d)
    y = ops.layer_norm(x, gamma, beta, eps=float(b["eps"]))
    return ops.reshape(y, shape=xs) if k > 1 else y


def _batch_norm(row, b, node):
    x = b["input"]
    c = _shape(x)[1]
    dtype = _float_dtype([x])
    gamma = b["weight"] if b.get("weight") is not None else np.ones(c, dtype)
    beta = b["bias"] if b.get("bias") is not None else np.zeros(c, dtype)
    if b.get("training"):
        return ops.batch_norm(x, gamma, beta, eps=float(b["eps"]), channel_axis=1)
    return ops.batch_norm_inference(x, b["running_mean"], b["running_var"], gamma, beta,
                                    eps=float(b["eps"]), channel_axis=1)


def _batch_norm_functional(row, b, node):
    """aten._native_batch_norm_legit_functional / _no_training: (y, ...) where the other
    results are saved statistics and the running-statistics update (buffer mutations,
    not part of the graph)."""
    bb = dict(b)
    bb.setdefault("training", row.aten.endswith("functional.default") and b.get("training"))
    y = _batch_norm(row, bb, node)
    n = len(node.meta["val"]) if isinstance(node.meta.get("val"), (tuple, list)) else 3
    return (y,) + (None,) * (n - 1)


def _batch_norm_support(row, b):
    if b.get("training") and "batch_norm" not in OPS:
        return "training-mode batch norm (batch statistics) needs refrt's 'batch_norm' op"
    if not b.get("training") and (b.get("running_mean") is None or b.get("running_var") is None):
        return "eval-mode batch norm without running statistics"
    return None


def _affine_norm(row, b, node):
    """group_norm / instance_norm: a missing weight or bias is 1 or 0 per channel."""
    x = b["input"]
    c = _shape(x)[1]
    dtype = _float_dtype([x])
    gamma = b["weight"] if b.get("weight") is not None else np.ones(c, dtype)
    beta = b["bias"] if b.get("bias") is not None else np.zeros(c, dtype)
    return getattr(ops, row.op)(x, gamma, beta, **_params(row, b))


def _rms_norm(row, b, node):
    x = b["input"]
    dtype = _float_dtype([x])
    d = _shape(x)[-1]
    gamma = b["weight"] if b.get("weight") is not None else np.ones(d, dtype)
    eps = b.get("eps")
    eps = float(np.finfo(dtype).eps) if eps is None else float(eps)
    return ops.rms_norm(x, gamma, eps=eps)


def _rms_norm_support(row, b):
    shape = list(b["normalized_shape"])
    if len(shape) != 1:
        return f"normalized_shape={shape} (refrt's rms_norm normalises the last axis only)"
    return None


def _pool(row, b, node):
    params = {k: v for k, v in _params(row, b).items() if v is not None and v != []}
    return getattr(ops, row.op)(b["self"], **params)


def _sdpa_mask(mask):
    """An ATen attn_mask (a constant) as refrt's bool mask (True = may attend): a bool
    mask as it is (PyTorch's SDPA polarity is refrt's), an additive float mask of 0 and
    -inf as ``mask == 0``; a finite additive bias has no refrt equivalent."""
    if mask is None:
        return None
    if _is_traced(mask):
        raise RefrtError("scaled_dot_product_attention: argument 'attn_mask' expected a "
                         "constant mask (built in forward or a buffer), got a graph input")
    m = np.asarray(mask)
    if m.dtype == bool:
        return m
    if not np.all((m == 0) | (m == -np.inf)):
        raise RefrtError("scaled_dot_product_attention: argument 'attn_mask' expected a bool "
                         "mask or an additive mask of 0 and -inf only, got finite nonzero "
                         "entries (an additive bias)")
    return m == 0


def _sdpa(row, b, node):
    q, k, v = b["query"], b["key"], b["value"]
    mask = _sdpa_mask(b.get("attn_mask"))
    params = {k_: val for k_, val in _params(row, b).items() if val is not None}
    if mask is not None:
        shape = _shape(q)[:-1] + (_shape(k)[-2],)
        mask = np.ascontiguousarray(np.broadcast_to(mask, shape)) if not _is_traced(mask) else mask
        params["mask"] = mask
    return ops.scaled_dot_product_attention(q, k, v, **params)


def _sdpa_support(row, b):
    if b.get("enable_gqa"):
        return "enable_gqa=True (refrt's SDPA needs as many key/value heads as query heads)"
    return None


def _select(row, b, node):
    return ops.select(b["self"], axis=int(b["dim"]), index=int(b["index"]))


def _slice(row, b, node):
    x = b["self"]
    dim = int(b.get("dim", 0)) % len(_shape(x))
    n = _shape(x)[dim]
    start, end, step = b.get("start") or 0, b.get("end"), b.get("step", 1)
    start, end, _ = slice(start, end, step).indices(n)
    if start == 0 and end == n and step == 1:
        return x
    return ops.slice(x, axis=dim, start=start, end=end, step=step)


LOWERINGS = {"": _direct, "elementwise": _elementwise, "identity": _identity,
             "chain": _chain, "power": _power, "gelu": _gelu, "clamp": _clamp,
             "reduce": _reduce, "linear": _linear, "addmm": _addmm, "matmul": _matmul,
             "view": _view, "expand": _expand, "permute": _permute, "cat": _cat,
             "layer_norm": _layer_norm, "batch_norm": _batch_norm, "pool": _pool,
             "optional": _optional, "sdpa": _sdpa, "select": _select, "slice": _slice,
             "batch_norm_functional": _batch_norm_functional,
             "affine_norm": _affine_norm, "rms_norm": _rms_norm}
SUPPORT = {"permute": _permute_support, "batch_norm": _batch_norm_support,
           "batch_norm_functional": _batch_norm_support,
           "sdpa": _sdpa_support, "rms_norm": _rms_norm_support}

from . import lowerings_more  # noqa: E402 -- adds its rows' lowerings to the tables
LOWERINGS.update(lowerings_more.LOWERINGS, compare=_elementwise)   # float 0/1 masks
SUPPORT.update(lowerings_more.SUPPORT)
