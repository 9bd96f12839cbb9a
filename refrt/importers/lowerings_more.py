"""Lowerings of recurrent layers, indexing, padding, comparison masks and dropout
(see ``lowerings`` for the conventions)."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..registry import OPS
from ._values import (OPTIONS, _broadcast, _float_dtype, _is_traced, _out_shape, _params,
                      _shape)


def _recurrent(row, b, node):
    """nn.LSTM / nn.GRU / nn.RNN (tanh or relu; batch_first or not; several layers;
    with or without biases) unrolled: per layer and step one cell (``row.op``) in
    PyTorch's gate layout, each layer's outputs the next one's inputs.  Returns what the
    ATen op returns: (output, h_n, c_n) for LSTM, (output, h_n) for GRU/RNN."""
    x = b["input"]
    with_c = len(OPS[row.op].outputs) == 2
    h0, c0 = (b["hx"][0], b["hx"][1]) if with_c else (b["hx"], None)
    params = list(b["params"])
    per_layer = 4 if b["has_biases"] else 2
    layers = int(b["num_layers"])
    batch_first = bool(b["batch_first"])
    extra = _params(row, b)
    dtype = _float_dtype([x])
    steps = _shape(x)[1 if batch_first else 0]
    hs, cs = [], []
    seq = [ops.select(x, axis=1 if batch_first else 0, index=t) for t in range(steps)]
    for layer in range(layers):
        w = params[per_layer * layer: per_layer * (layer + 1)]
        if per_layer == 2:
            w = w + [np.zeros(_shape(w[0])[0], dtype)] * 2
        h = _layer_state(h0, layer)
        c = _layer_state(c0, layer) if with_c else None
        out = []
        for t in range(steps):
            if with_c:
                h, c = getattr(ops, row.op)(seq[t], h, c, *w, **extra)
            else:
                h = getattr(ops, row.op)(seq[t], h, *w, **extra)
            out.append(h)
        seq = out
        hs.append(h)
        cs.append(c)
    output = _stack(seq, 1 if batch_first else 0)
    return (output, _stack(hs, 0)) + ((_stack(cs, 0),) if with_c else ())


def _layer_state(s, layer):
    return ops.select(s, axis=0, index=layer) if _is_traced(s) else np.ascontiguousarray(s[layer])


def _stack(values, axis):
    ex = [ops.reshape(v, shape=_shape(v)[:axis] + (1,) + _shape(v)[axis:]) for v in values]
    y = ex[0]
    for v in ex[1:]:
        y = ops.concat(y, v, axis=axis)
    return y


def _recurrent_support(row, b):
    missing = [op for op in ("select", row.op, "concat") if op not in OPS]
    return f"refrt has no op {', '.join(map(repr, missing))}" if missing else None


# ------------------------------------------------------------------------- indexing
def _take(x, ids, dim):
    """x indexed along ``dim`` by an integer array ``ids`` (any shape): the result has
    x.shape[:dim] + ids.shape + x.shape[dim + 1:] (torch's index_select / x[..., ids]).
    The indexed axis is moved to the front and the others flattened, so the lookup is
    refrt's embedding (rows copied bit for bit; its VJP a scatter-add of the rows);
    then the axes are put back."""
    shape = _shape(x)
    n = len(shape)
    dim %= n
    rest = shape[:dim] + shape[dim + 1:]
    if dim:
        x = _permuted(x, [dim] + [i for i in range(n) if i != dim])
    width = int(np.prod(rest)) if rest else 1
    if _shape(x) != (shape[dim], width):
        x = ops.reshape(x, shape=(shape[dim], width))
    k = len(_shape(ids))
    y = ops.embedding(ids, x)                           # ids.shape + (width,)
    if _shape(y) != _shape(ids) + rest:
        y = ops.reshape(y, shape=_shape(ids) + rest)
    if dim:                                             # (ids..., before..., after...)
        perm = list(range(k, k + dim)) + list(range(k)) + list(range(k + dim, k + n - 1))
        y = _permuted(y, perm)
    return y


def _permuted(x, perm):
    n = len(perm)
    if perm == list(range(n)):
        return x
    if n == 2:
        return ops.transpose(x)
    return ops.permute(x, dims=tuple(perm))


def _index_select(row, b, node):
    return _take(b["self"], b["index"], int(b["dim"]))


def _index(row, b, node):
    idx = list(b["indices"])
    dim = next(i for i, t in enumerate(idx) if t is not None)
    return _take(b["self"], idx[dim], dim)


def _index_support(row, b):
    idx = list(b["indices"])
    given = [(i, t) for i, t in enumerate(idx) if t is not None]
    if len(given) != 1:
        return (f"{len(given)} index tensors (refrt maps indexing by one integer tensor "
                "along one axis)")
    t = given[0][1]
    if getattr(t, "dtype", None) is not None and not _int_dtype(t):
        return f"an index of dtype {t.dtype} (boolean-mask indexing has a data-dependent size)"
    return None


def _int_dtype(t):
    return not t.dtype.is_floating_point and not t.dtype.is_complex and str(t.dtype) != "torch.bool"


def _pad(row, b, node):
    pad = tuple(int(p) for p in b["pad"])
    if not any(pad):
        return b["self"]
    return ops.pad(b["self"], pad=pad, value=float(b.get("value", 0) or 0))


def _pad_support(row, b):
    if any(int(p) < 0 for p in b["pad"]):
        return f"pad={list(b['pad'])} (negative widths crop; refrt's pad only adds cells)"
    return None


def _values_only(row, b, node):
    """ATen ops returning (values, indices): refrt computes the values; the indices are
    integer outputs with no refrt value (a model that reads them is reported)."""
    y = getattr(ops, row.op)(*[b[a] for a in row.arrays],
                             **{k: v for k, v in _params(row, b).items() if v is not None})
    if b.get("keepdim") and "axis" in row.params:
        shape = _shape(b["self"])
        axis = int(b[row.params["axis"]]) % len(shape)
        y = ops.reshape(y, shape=shape[:axis] + (1,) + shape[axis + 1:])
    return (y, None)


def _indices_used(node):
    """True when the FX node's second result (the indices) is read."""
    import operator
    return any(u.target is operator.getitem and u.args[1] == 1 for u in node.users)


def _values_only_support(row, b, node=None):
    if node is not None and _indices_used(node):
        return ("the indices (second result) are used: refrt computes the values only "
                "(it has no argmax op)")
    return None


def _vector_norm(row, b, node):
    """torch.linalg.vector_norm for ord 2 (sqrt of the correctly rounded sum of squares:
    each square rounded, the sum rounded once, then the root), 1 (sum of |x|) and inf
    (max |x|), over ``dim`` (all axes when None), with keepdim.  What torch's
    weight_norm parametrization exports to (with the div and mul around it)."""
    x = b["self"]
    shape = _shape(x)
    n = max(len(shape), 1)
    dim = b.get("dim")
    dims = list(range(len(shape))) if dim is None or (isinstance(dim, (list, tuple))
                                                       and not dim) else \
        sorted({d % n for d in ([dim] if isinstance(dim, int) else dim)})
    order = float(b.get("ord", 2))
    y = ops.square(x) if order == 2 else ops.abs(x)
    reduce = ops.amax if order == np.inf else ops.sum
    if len(dims) == len(shape):
        y = reduce(y, axis=None)
    else:
        for d in reversed(dims):
            y = reduce(y, axis=d)
    if order == 2:
        y = ops.sqrt(y)
    if b.get("keepdim"):
        y = ops.reshape(y, shape=tuple(1 if i in dims else s for i, s in enumerate(shape)))
    return y


def _vector_norm_support(row, b):
    if float(b.get("ord", 2)) not in (1.0, 2.0, np.inf):
        return f"ord={b.get('ord')} (refrt maps the 1, 2 and inf norms)"
    return None


# -------------------------------------------------------------- comparisons, masks
def _compare_support(row, b):
    for a in row.arrays:
        v = b.get(a)
        if hasattr(v, "dtype") and not v.dtype.is_floating_point:
            return (f"{a} of dtype {v.dtype} (refrt's comparisons take float arrays and "
                    "return 0/1 float masks)")
    return None


def _mask_support(row, b):
    for a in row.arrays:
        v = b.get(a)
        if hasattr(v, "dtype") and str(v.dtype) != "torch.bool":
            return (f"{a} of dtype {v.dtype} (refrt maps logical and bitwise ops on bool "
                    "masks only, as 0/1 float masks)")
        if not hasattr(v, "dtype"):
            return f"{a}={v!r} (a Python scalar operand of a logical op)"
    return None


def _mask(row, b, node):
    """Logical ops on masks, which refrt holds as 0/1 floats (its comparisons' results):
    and = mul, or = maximum, xor = ne, not = eq(m, 0), each exact on {0, 1}."""
    vals = [b[a] for a in row.arrays]
    dtype = _float_dtype(vals)
    shape = _out_shape(*vals)
    args = [_broadcast(v, shape, dtype) for v in vals]
    if len(args) == 1:
        args.append(np.zeros(shape, dtype))
    return getattr(ops, row.op)(*args)


def _to_copy(row, b, node):
    """A dtype conversion.  refrt evaluates a graph in one float dtype (the backend's), so
    float -> float is the identity, and so is bool -> float (a mask is already 0/1
    floats); float -> bool is x != 0."""
    x, target = b["self"], b.get("dtype")
    if target is not None and str(target) == "torch.bool" and not _mask_valued(node):
        return ops.ne(x, np.zeros(_shape(x), _float_dtype([x])))
    return x


def _mask_valued(node):
    src = node.args[0].meta.get("val") if node.args else None
    return src is not None and str(src.dtype) == "torch.bool"


def _to_copy_support(row, b):
    src, target = b.get("self"), b.get("dtype")
    if target is None or not hasattr(src, "dtype"):
        return None
    ok = {"float": ("float", "bool"), "bool": ("float", "bool")}
    kind = lambda d: ("bool" if str(d) == "torch.bool" else  # noqa: E731
                      "float" if d.is_floating_point else "int")
    if kind(target) not in ok.get(kind(src), ()):
        return (f"a conversion from {src.dtype} to {target} (refrt converts between float "
                "dtypes and bool masks only)")
    return None


def _nothing(row, b, node):
    return None


def _full_like(row, b, node):
    """A constant of x's shape (its value does not depend on x)."""
    val = node.meta["val"]
    import torch
    dtype = torch.empty(0, dtype=val.dtype).numpy().dtype
    return np.full(tuple(int(s) for s in val.shape), b["fill_value"], dtype)


# ------------------------------------------------------------------------- dropout
DROPOUT_MODES = ("error", "splitmix64")


def _training(row, b):
    train = b.get("train")
    return (train is None or bool(train)) and float(b["p"]) > 0


def _dropout(row, b, node):
    """Eval-mode dropout (or p = 0) is the identity.  Training mode with
    ``from_torch(..., dropout="splitmix64")``: refrt's dropout, TorchLean's SplitMix64
    mask with ``seed=`` and counter = the dropout's position among the model's dropout
    calls; the mask is NOT torch's (see ``_dropout_support``)."""
    x = b["input"]
    if _training(row, b):
        k = sum(1 for n in node.graph.nodes if n is not node and _is_dropout(n)
                and _before(n, node))
        x = ops.dropout(x, p=float(b["p"]), seed=int(OPTIONS.get().get("seed", 0)),
                        counter=k, training=True)
    n = len(node.meta["val"]) if isinstance(node.meta.get("val"), (tuple, list)) else 0
    return (x,) + (None,) * (n - 1) if n else x


def _is_dropout(n):
    return str(n.target) in ("aten.native_dropout.default", "aten.dropout.default")


def _before(a, b):
    for n in b.graph.nodes:
        if n is a:
            return True
        if n is b:
            return False
    return False


def _dropout_support(row, b):
    if not _training(row, b) or OPTIONS.get().get("dropout") == "splitmix64":
        return None
    return (f"training-mode dropout (p={float(b['p'])}): torch draws its mask from its own "
            "generator, refrt's dropout is TorchLean's SplitMix64 mask, so no import can "
            "reproduce torch's mask; call model.eval(), or pass "
            "from_torch(..., dropout='splitmix64', seed=...) for refrt's mask (a different "
            "mask with the same keep probability)")


LOWERINGS = {"recurrent": _recurrent, "index_select": _index_select, "index": _index,
             "pad": _pad, "values_only": _values_only,
             "mask": _mask, "to_copy": _to_copy, "nothing": _nothing,
             "full_like": _full_like, "dropout": _dropout, "vector_norm": _vector_norm}
SUPPORT = {"recurrent": _recurrent_support, "values_only": _values_only_support, "index": _index_support, "pad": _pad_support,
           "compare": _compare_support, "mask": _mask_support,
           "to_copy": _to_copy_support, "dropout": _dropout_support,
           "vector_norm": _vector_norm_support}
