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
from ..graph import Graph, at_location, current_trace, trace
from ..registry import OPS
from .aten_table import TABLE
from ._values import OPTIONS, _is_traced
from .lowerings import LOWERINGS, SUPPORT

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
    why = _integer_operand(row, bound)
    if why is not None:
        return why
    check = SUPPORT.get(row.lower)
    if check is None:
        return None
    return check(row, bound, node) if row.lower in _NODE_CHECKS else check(row, bound)


_NODE_CHECKS = ("values_only",)     # support checks that also read the node's users


# ATen arguments that hold integers or bools by design, and the rows that read masks
_INTEGER_ARGS = ("index", "indices", "target", "condition")
_MASK_LOWERINGS = ("mask", "to_copy", "nothing", "full_like", "compare")


def _integer_operand(row, bound):
    """refrt's ops compute on float arrays: an integer tensor where a row expects a float
    one (slicing or adding integer ids in the model) is reported, not traced."""
    if row.lower in _MASK_LOWERINGS:
        return None
    for name in row.arrays:
        v = bound.get(name)
        vals = v if isinstance(v, (list, tuple)) else [v]
        for t in vals:
            dt = getattr(t, "dtype", None)
            if (name not in _INTEGER_ARGS and dt is not None and hasattr(dt, "is_floating_point")
                    and not dt.is_floating_point and str(dt) != "torch.bool"):
                return (f"{name} is an integer tensor ({dt}); refrt's ops compute on float "
                        "arrays, integer arithmetic on indices is not mapped")
    return None


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


def from_torch(module_or_fn, *example_inputs, loss=None, name=None, dropout="error", seed=0):
    """Import ``module_or_fn`` (an ``nn.Module`` or a function of tensors) traced on
    ``example_inputs`` as an ``ImportedGraph``.

    ``loss``: a callable ``loss(output, target)`` (e.g. ``nn.CrossEntropyLoss()``);
    the last example input is then the target and the graph returns the loss.
    ``dropout``: what a training-mode dropout becomes.  ``"error"`` (the default): it is
    reported, because torch's mask comes from torch's generator and refrt's dropout is
    TorchLean's SplitMix64 mask, which cannot reproduce it.  ``"splitmix64"``: refrt's
    dropout with ``seed`` and counter = the call's position among the model's dropouts
    (a different mask from torch's, with the same keep probability; the graph is then
    deterministic).  Eval-mode dropout is the identity either way.
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
    from .lowerings_more import DROPOUT_MODES
    if dropout not in DROPOUT_MODES:
        raise RefrtError(f"from_torch: argument 'dropout' expected one of "
                         f"{', '.join(map(repr, DROPOUT_MODES))}, got {dropout!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RefrtError(f"from_torch: argument 'seed' expected a non-negative int, got "
                         f"{seed!r}")
    module = _as_module(module_or_fn, loss, len(example_inputs))
    names = _input_names(module_or_fn, len(example_inputs), loss is not None)
    with warnings.catch_warnings():
        # torch 2.13's own pytree deprecation notice, raised inside torch.export
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        # nn.RNN/GRU/LSTM re-assign their _flat_weights list while exporting; the
        # parameters themselves are recorded (torch 2.13's notice)
        warnings.filterwarnings("ignore", message=".*_flat_weights.*were assigned during export")
        strict = module is not module_or_fn
        exported = _lowered(_export(module, example_inputs, strict=strict))
    token = OPTIONS.set({"dropout": dropout, "seed": int(seed)})
    try:
        return _build(exported, example_inputs, name or _name(module_or_fn), names)
    finally:
        OPTIONS.reset(token)


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
