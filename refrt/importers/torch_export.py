"""``from_torch``: a PyTorch module or function as a refrt ``Graph``.

Flow:
a. ``torch.export.export`` records the program (the supported exporter; TorchScript is
   deprecated); data-dependent control flow fails there, and its reason is rephrased
   with the user's line (``DataDependentError``).
b. ``run_decompositions`` lowers it to Core ATen, keeping the composite ops that refrt
   has a fused, stable kernel for (``aten_table.Row.preserved``).
c. Every ``call_function`` node is looked up in ``aten_table.TABLE``; all the ops that
   have no row, whose row needs a refrt op the registry does not have, or whose
   arguments the row does not support are reported together (``UnsupportedOpError``),
   each with its line in the user's module.
d. The program is interpreted inside ``refrt.trace``: parameters and buffers are graph
   inputs (named, their values kept in ``graph.state``), nodes whose inputs are all
   constants are folded with torch (masks built in ``forward``, ``torch.zeros`` initial
   states), and every other node becomes refrt op calls recorded at the user's line
   (``refrt.graph.at_location``) with its module path (``graph.layers``).

The result is an ``ImportedGraph``: a ``Graph`` (``evaluate``/``run`` on f32, f64, mp)
that is also callable inside a trace, so ``refrt.grad``, ``refrt.vjp`` and
``refrt.check`` take it like any function written with ``refrt.ops``.
"""
from __future__ import annotations

import operator
import os
import re
import warnings
from contextlib import contextmanager, redirect_stderr

import numpy as np

from .. import ops
from ..errors import RefrtError
from ..graph import Graph, Traced, at_location, current_trace, trace
from ..registry import OPS
from .aten_table import TABLE, Fixed

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


class UnsupportedOpError(RefrtError):
    """The model uses ATen ops refrt cannot run; ``.ops`` lists ``(aten, location, why)``."""

    def __init__(self, message, entries):
        super().__init__(message)
        self.ops = entries


class DataDependentError(RefrtError):
    """torch.export could not record the model: its control flow depends on tensor values."""


# ------------------------------------------------------------------ locations
def _torch_dir():
    import torch
    return os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def _user_frame(frames, skip):
    """The innermost (file, line) outside the torch and refrt packages."""
    for filename, line in reversed(frames):
        path = os.path.abspath(filename)
        if not any(path.startswith(d) for d in skip):
            return f"{filename}:{line}"
    return None


_REFRT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def node_location(node):
    """``file:line`` of the user's source line that produced an FX node."""
    frames = [(f, int(n)) for f, n in _FRAME.findall(node.meta.get("stack_trace") or "")]
    loc = _user_frame(frames, (_torch_dir(), _REFRT_DIR))
    return loc or f"<{node.name}>"     # e.g. the loss= call, made by refrt's wrapper


def node_layer(node):
    """The module path of an FX node, ``"fc1 (Linear)"``; ``""`` for the top module."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, cls = list(stack.values())[-1]
    cls = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    path = _strip_wrapper(path)
    return f"{path} ({cls.rsplit('.', 1)[-1]})" if path else ""


def _strip_wrapper(path):
    path = path.replace("L['self'].", "").replace("L__self__.", "")
    for prefix in ("_refrt_model.", "_refrt_model"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path


# ------------------------------------------------------------------- export
def _as_module(module_or_fn, loss, n_inputs):
    import torch

    if loss is None and isinstance(module_or_fn, torch.nn.Module):
        return module_or_fn

    class _Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if isinstance(module_or_fn, torch.nn.Module):
                self._refrt_model = module_or_fn
            if isinstance(loss, torch.nn.Module):
                self._refrt_loss = loss

        def forward(self, *args):
            model = getattr(self, "_refrt_model", module_or_fn)
            if loss is None:
                return model(*args)
            return loss(model(*args[:-1]), args[-1])

    return _Wrapped()


def _export(module, example_inputs, strict=False):
    """torch.export, non-strict for modules (their stack traces name the user's lines);
    strict (TorchDynamo) for plain functions and loss= wrappers, whose lines non-strict
    export does not record (it keeps only module ``forward`` frames)."""
    import io
    import sys
    import torch
    captured = io.StringIO()
    try:
        # torch.export prints the partial graph of a failed export to sys.stderr; it is
        # dropped for the data-dependent failures rephrased below, and passed on otherwise
        with _quiet_torch_logs(), redirect_stderr(captured):
            exported = torch.export.export(module, tuple(example_inputs), strict=strict)
        sys.stderr.write(captured.getvalue())
        return exported
    except Exception as err:  # noqa: BLE001 -- rephrased below, original chained
        text = str(err)
        data_dependent = ("data-dependent" in text.lower() or "data dependent" in text.lower())
        if not data_dependent:
            sys.stderr.write(captured.getvalue())
        if not data_dependent and strict:
            # TorchDynamo cannot trace every program (code run by exec, some globals):
            # non-strict export records the same graph, without the function's lines
            return _export(module, example_inputs, strict=False)
        if not data_dependent:
            raise
        where, code = _raised_at(text, err)
        shown = f" (`{code}`)" if code else ""
        first = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
        raise DataDependentError(
            f"from_torch: {where}{shown}: the model's control flow depends on the value of "
            "a tensor, which torch.export cannot record (it traces one path through the "
            "program with symbolic values). Write the branch as data (torch.where, "
            f"torch.clamp, a mask) or use torch.cond; torch.export said: {first}") from err


@contextmanager
def _quiet_torch_logs():
    """torch.export logs the partial graph and symbolic-shape warnings when it fails;
    the error that from_torch raises says what matters."""
    import logging
    names = ["torch"] + [n for n in logging.root.manager.loggerDict if n.startswith("torch.")]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _raised_at(text, err):
    """(file:line, code) of the user's line in a torch.export error: non-strict export
    writes 'The following call raised this error:', strict export 'from user code:'."""
    for marker in ("The following call raised this error:", "from user code:"):
        if marker in text:
            tail = text.split(marker, 1)[1]
            found = list(re.finditer(r'File "([^"]+)", line (\d+)[^\n]*\n?([^\n]*)', tail))
            found = [m for m in found if not _inside(m.group(1))] or found
            if found:
                m = found[-1]
                code = m.group(3).strip()
                if code.startswith("File ") or code.startswith("^"):
                    code = ""
                return f"{m.group(1)}:{m.group(2)}", code
    import traceback
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(err.__traceback__)]
    return _user_frame(frames, (_torch_dir(), _REFRT_DIR)) or "<unknown>", ""


def _inside(filename):
    path = os.path.abspath(filename)
    return path.startswith(_torch_dir()) or path.startswith(_REFRT_DIR)


def _lowered(exported):
    import torch
    table = torch.export.default_decompositions()
    for name, row in TABLE.items():
        if row.preserved:
            op = _aten(name)
            if op is not None:
                table.pop(op, None)
    return exported.run_decompositions(table)


def _aten(name):
    import torch
    _, op, overload = name.split(".")
    packet = getattr(torch.ops.aten, op, None)
    return getattr(packet, overload, None) if packet is not None else None


# ----------------------------------------------------------------- arguments
def _bind(node, env):
    """ATen schema argument name -> value (the node's args, kwargs, then defaults)."""
    schema = node.target._schema
    bound = {}
    for arg, value in zip(schema.arguments, node.args):
        bound[arg.name] = _value(value, env)
    for k, v in node.kwargs.items():
        bound[k] = _value(v, env)
    for arg in schema.arguments:
        if arg.name not in bound and arg.has_default_value():
            bound[arg.name] = arg.default_value
    return bound


def _value(v, env):
    import torch.fx as fx
    if isinstance(v, fx.Node):
        return env[v]
    if isinstance(v, (list, tuple)):
        return type(v)(_value(x, env) for x in v)
    return v


def _meta_bind(node):
    """``_bind`` on the example values in the node's metadata (for the support scan)."""
    import torch.fx as fx
    env = {}
    stack = list(node.args) + list(node.kwargs.values())
    while stack:
        v = stack.pop()
        if isinstance(v, fx.Node):
            env[v] = v.meta.get("val")
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return _bind(node, env)


def _same(a, b):
    try:
        return a == b or (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
                          and list(a) == list(b))
    except Exception:  # noqa: BLE001 -- tensors compare elementwise
        return False


def _why_unsupported(node):
    """None when the table can run ``node``, else the reason (one line)."""
    name = str(node.target)
    row = TABLE.get(name)
    if row is None:
        return "no row in refrt.importers.aten_table"
    missing = [op for op in row.ops if op and op not in OPS]
    if missing:
        return f"refrt has no op {', '.join(repr(m) for m in missing)}"
    bound = _meta_bind(node)
    for arg, allowed in row.require.items():
        if arg in bound and not any(_same(bound[arg], a) for a in allowed):
            show = _REDUCTIONS.get if arg == "reduction" else repr
            return (f"{arg}={show(bound[arg])} (refrt supports "
                    f"{', '.join(show(a) for a in allowed)})")
    check = SUPPORT.get(row.lower)
    return check(row, bound) if check is not None else None


_REDUCTIONS = {0: "'none'", 1: "'mean'", 2: "'sum'"}   # at::Reduction


def _scan(graph_module):
    bad = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if _constant_only(node):
            continue
        why = _why_unsupported(node)
        if why is not None:
            bad.append((str(node.target), node_location(node), why))
    if bad:
        lines = [f"  {aten} at {loc}: {why}" for aten, loc, why in bad]
        names = sorted({b[0] for b in bad})
        raise UnsupportedOpError(
            f"from_torch: {len(bad)} call(s) of {len(names)} ATen op(s) cannot be mapped to "
            "refrt ops:\n" + "\n".join(lines), bad)


def _constant_only(node):
    """True when ``node`` reads no graph input (it is folded with torch at import)."""
    return not node.meta.get("_refrt_live", False)


def _mark_live(graph_module, live_names):
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            node.meta["_refrt_live"] = node.name in live_names
        elif node.op == "call_function":
            node.meta["_refrt_live"] = any(a.meta.get("_refrt_live", False)
                                           for a in node.all_input_nodes)


# ------------------------------------------------------------------ lowering helpers
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
        arr = np.asarray(v)
        if arr.dtype.kind in "fiu" and arr.dtype.kind != "b":
            arr = arr.astype(dtype) if arr.dtype.kind != "b" else arr
        return np.ascontiguousarray(np.broadcast_to(arr, shape))
    if tuple(v.shape) == tuple(shape):
        return v
    return ops.broadcast_to(v, shape=tuple(shape))


def _out_shape(*values):
    return tuple(np.broadcast_shapes(*[_shape(v) for v in values]))


def _scalar(v):
    return not _is_traced(v) and np.ndim(v) == 0


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


def _params(row, b):
    out = {}
    for name, src in row.params.items():
        out[name] = src.value if isinstance(src, Fixed) else b.get(src)
    return out


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


def _lstm(row, b, node):
    """nn.LSTM (batch_first or not) unrolled: per layer and step one lstm_cell in
    PyTorch's gate layout; returns (output, h_n, c_n) as aten.lstm does."""
    x = b["input"]
    h0, c0 = b["hx"]
    params = list(b["params"])
    layers = int(b["num_layers"])
    batch_first = bool(b["batch_first"])
    xs = _shape(x)
    steps = xs[1] if batch_first else xs[0]
    hs, cs = [], []
    seq = [ops.select(x, axis=1 if batch_first else 0, index=t) for t in range(steps)]
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = params[4 * layer: 4 * layer + 4]
        h = ops.select(h0, axis=0, index=layer) if _is_traced(h0) else np.ascontiguousarray(h0[layer])
        c = ops.select(c0, axis=0, index=layer) if _is_traced(c0) else np.ascontiguousarray(c0[layer])
        out = []
        for t in range(steps):
            h, c = ops.lstm_cell(seq[t], h, c, w_ih, w_hh, b_ih, b_hh)
            out.append(h)
        seq = out
        hs.append(h)
        cs.append(c)
    stack_axis = 1 if batch_first else 0
    output = _stack(seq, stack_axis)
    return output, _stack(hs, 0), _stack(cs, 0)


def _stack(values, axis):
    ex = [ops.reshape(v, shape=_shape(v)[:axis] + (1,) + _shape(v)[axis:]) for v in values]
    y = ex[0]
    for v in ex[1:]:
        y = ops.concat(y, v, axis=axis)
    return y


def _lstm_support(row, b):
    missing = [op for op in ("select", "lstm_cell", "concat") if op not in OPS]
    return f"refrt has no op {', '.join(map(repr, missing))}" if missing else None


LOWERINGS = {"": _direct, "elementwise": _elementwise, "identity": _identity,
             "chain": _chain, "power": _power, "gelu": _gelu, "clamp": _clamp,
             "reduce": _reduce, "linear": _linear, "addmm": _addmm, "matmul": _matmul,
             "view": _view, "expand": _expand, "permute": _permute, "cat": _cat,
             "layer_norm": _layer_norm, "batch_norm": _batch_norm, "pool": _pool,
             "optional": _optional, "sdpa": _sdpa, "select": _select, "slice": _slice,
             "lstm": _lstm, "batch_norm_functional": _batch_norm_functional,
             "affine_norm": _affine_norm, "rms_norm": _rms_norm}
SUPPORT = {"permute": _permute_support, "batch_norm": _batch_norm_support,
           "batch_norm_functional": _batch_norm_support,
           "sdpa": _sdpa_support, "lstm": _lstm_support, "rms_norm": _rms_norm_support}


# --------------------------------------------------------------------- the graph
class ImportedGraph(Graph):
    """A ``Graph`` made by ``from_torch``; see the module docstring.

    ``input_names`` / ``input_kinds`` ("parameter", "buffer", "input") name every graph
    input in order; ``state`` maps the parameter and buffer names to their values;
    ``layers[i]`` is node i's module path; ``inputs(*user_inputs)`` is the full input
    tuple with the stored parameters; ``argnums(*names)`` their positions (for
    ``refrt.grad``)."""

    def inputs(self, *user_inputs):
        users = [n for n, k in zip(self.input_names, self.input_kinds) if k == "input"]
        if len(user_inputs) != len(users):
            raise TypeError(f"graph {self.name}: expected {len(users)} input(s) "
                            f"({', '.join(users)}), got {len(user_inputs)}")
        it = iter(user_inputs)
        return tuple(next(it) if k == "input" else self.state[n]
                     for n, k in zip(self.input_names, self.input_kinds))

    def argnums(self, *names):
        if not names:
            names = tuple(n for n, k in zip(self.input_names, self.input_kinds)
                          if k == "parameter")
        missing = [n for n in names if n not in self.input_names]
        if missing:
            raise KeyError(f"graph {self.name}: no input named {missing[0]!r} (inputs: "
                           f"{', '.join(self.input_names)})")
        return tuple(self.input_names.index(n) for n in names)

    @property
    def parameter_names(self):
        return tuple(n for n, k in zip(self.input_names, self.input_kinds) if k == "parameter")

    def __call__(self, *inputs):
        if current_trace() is None:
            return self.evaluate(*inputs)
        return replay(self, *inputs)


def replay(graph, *inputs):
    """Re-issue ``graph``'s nodes as refrt op calls on ``inputs`` (traced values inside
    an enclosing trace), each at its recorded location."""
    values = [None] * graph.nslots
    for s, v in zip(graph.input_slots, inputs):
        values[s] = v
    for s, c in graph.constants.items():
        values[s] = c
    for node in graph.nodes:
        with at_location(node.location):
            values[node.output] = ops.evaluate(node.op, *[values[s] for s in node.inputs],
                                               **node.params)
    outs = [values[s] for s in graph.output_slots]
    return outs[0] if graph.single_output else tuple(outs)


def from_torch(module_or_fn, *example_inputs, loss=None, name=None):
    """Import ``module_or_fn`` (an ``nn.Module`` or a function of tensors) traced on
    ``example_inputs`` as an ``ImportedGraph``.

    ``loss``: a callable ``loss(output, target)`` (e.g. ``nn.CrossEntropyLoss()``);
    the last example input is then the target and the graph returns the loss.
    """
    import torch

    if not (isinstance(module_or_fn, torch.nn.Module) or callable(module_or_fn)):
        raise RefrtError(f"from_torch: argument 'module_or_fn' expected a torch.nn.Module "
                         f"or a callable, got {type(module_or_fn).__name__}")
    if loss is not None and not callable(loss):
        raise RefrtError(f"from_torch: argument 'loss' expected a callable loss(output, "
                         f"target), got {type(loss).__name__}")
    if loss is not None and len(example_inputs) < 2:
        raise RefrtError("from_torch: argument 'example_inputs' expected the model's inputs "
                         f"followed by the target (loss= is set), got {len(example_inputs)}")
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise RefrtError(f"from_torch: argument 'example_inputs[{i}]' expected a "
                             f"torch.Tensor, got {type(x).__name__}")
        if x.dtype.is_floating_point and x.dtype not in (torch.float32, torch.float64):
            raise RefrtError(f"from_torch: argument 'example_inputs[{i}]' expected a float32 "
                             f"or float64 tensor (or integer ids), got {x.dtype}")
    module = _as_module(module_or_fn, loss, len(example_inputs))
    names = _input_names(module_or_fn, len(example_inputs), loss is not None)
    with warnings.catch_warnings():
        # torch 2.13's own pytree deprecation notice, raised inside torch.export
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        strict = module is not module_or_fn
        exported = _lowered(_export(module, example_inputs, strict=strict))
    return _build(exported, example_inputs, name or _name(module_or_fn), names)


def _input_names(fn, n, with_target):
    """The user inputs' names: the parameters of ``forward`` / the function (and
    "target" for loss=), else torch.export's placeholder names."""
    import inspect
    import torch
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        params = [p.name for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    params = params + (["target"] if with_target else [])
    return params[:n] if len(params) >= n and len(set(params[:n])) == n else None


def _name(obj):
    return getattr(obj, "__name__", None) or type(obj).__name__


def _to_numpy(t):
    import torch
    t = t.detach()
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        t = t.float()
    return np.ascontiguousarray(t.cpu().numpy())


def _build(exported, example_inputs, name, user_names=None):
    import torch
    from torch.export.graph_signature import InputKind, OutputKind

    sig = exported.graph_signature
    gm = exported.graph_module
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    state = dict(exported.state_dict)
    state.update(getattr(exported, "constants", {}) or {})
    live, names, kinds, values, const = [], [], [], [], {}
    user = iter(example_inputs)
    user_names = iter(user_names) if user_names is not None else None
    for spec, ph in zip(sig.input_specs, placeholders):
        if spec.kind == InputKind.USER_INPUT:
            arr = _to_numpy(next(user))
            names.append(next(user_names) if user_names is not None else spec.arg.name)
            kinds.append("input")
        else:
            arr = _to_numpy(state[spec.target])
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) and arr.dtype.kind == "f":
                names.append(_strip_wrapper(spec.target))
                kinds.append("parameter" if spec.kind == InputKind.PARAMETER else "buffer")
            else:
                const[ph.name] = arr
                continue
        live.append(ph.name)
        values.append(arr)
    _mark_live(gm, set(live))
    _scan(gm)
    outputs = [i for i, o in enumerate(sig.output_specs) if o.kind == OutputKind.USER_OUTPUT]
    layers = []

    def interpret(*args):
        env = {}
        it = iter(args)
        for ph in placeholders:
            env[ph] = const[ph.name] if ph.name in const else next(it)
        tr = current_trace()
        result = None
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                result = node.args[0]
                break
            before = len(tr.graph.nodes)
            env[node] = _run(node, env)
            layers.extend([node_layer(node)] * (len(tr.graph.nodes) - before))
        outs = [_value(result[i], env) for i in outputs]
        for k, o in enumerate(outs):
            if not _is_traced(o):
                raise RefrtError(f"from_torch: output {k} of {name} does not depend on the "
                                 "inputs or parameters (a constant); refrt graphs return "
                                 "values computed from their inputs")
        return outs[0] if len(outs) == 1 else tuple(outs)

    interpret.__name__ = name
    with torch.no_grad():
        g = trace(interpret, *values)
    imported = ImportedGraph.__new__(ImportedGraph)
    imported.__dict__.update(g.__dict__)
    imported.input_names = names
    imported.input_kinds = kinds
    imported.state = {n: v for n, k, v in zip(names, kinds, values) if k != "input"}
    imported.layers = layers
    imported.exported = exported
    return imported


def _run(node, env):
    if node.target is operator.getitem:
        seq, idx = _value(node.args[0], env), node.args[1]
        return seq[idx]
    if not node.meta.get("_refrt_live", False):
        return _fold(node, env)
    row = TABLE[str(node.target)]
    bound = _bind(node, env)
    with at_location(node_location(node)):
        return LOWERINGS[row.lower](row, bound, node)


def _fold(node, env):
    """Evaluate a node that reads no graph input with torch (a constant)."""
    import torch

    def to_torch(v):
        if isinstance(v, np.ndarray):
            return torch.from_numpy(np.array(v))
        if isinstance(v, (list, tuple)):
            return type(v)(to_torch(x) for x in v)
        return v
    args = to_torch(_value(tuple(node.args), env))
    kwargs = {k: to_torch(_value(v, env)) for k, v in node.kwargs.items()}
    out = node.target(*args, **kwargs)

    def to_np(v):
        if isinstance(v, torch.Tensor):
            return _to_numpy(v)
        if isinstance(v, (list, tuple)):
            return type(v)(to_np(x) for x in v)
        return v
    return to_np(out)
