"""Tracing: record a computation written with ``refrt.ops`` once, evaluate it anywhere.

``trace(fn, *example_inputs, **params)`` calls ``fn`` with ``Traced`` placeholders.  Each
``refrt.ops.<name>`` call on a placeholder is recorded as a ``Node`` (op name, input
slots, parameters, output shape and dtype, and the caller's ``file:line``) and is also
evaluated on the example values with the float kernels, so shape errors surface at the
user's line and the example run doubles as the first forward pass.

A ``Graph`` is shape-specialised and backend-free: ``graph.evaluate(*inputs,
backend="f32" | "f64" | "mp")`` runs it on the float kernels (inputs cast to the dtype)
or on the mp formulas (float inputs converted exactly, a private mpmath context).  The
reverse walk lives in ``refrt.tape``; this module holds no math.

Slots: every value has an integer slot; the graph inputs come first, then the constant
arrays that ``fn`` closed over, then one slot per node output.

Hook (in ``refrt.ops.evaluate``)::

    tr = current_trace()
    if tr is not None and tr.owns(arrays):
        return tr.record(name, arrays, params, backend=backend, cast=cast)
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import backends
from ._prepare import prepare, resolve_threads
from .backends.mpctx import MPMATH_LOCK, make_context, to_ctx
from .registry import OPS, get

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STATE = threading.local()
BACKEND_DTYPE = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}


class TraceError(TypeError):
    """A traced function did something that cannot be recorded (names the user's line)."""


# modules of the package that hold user-level programs (the BugZoo's refrt programs):
# their lines are the user's lines
_USER_FILES = (os.path.join(_PKG_DIR, "bugzoo.py"),)


def _inside(filename):
    path = os.path.abspath(filename)
    return path.startswith(_PKG_DIR) and path not in _USER_FILES


def user_location() -> str:
    """``file:line`` of the innermost frame outside the refrt package (the user's call),
    or the location set by ``at_location`` (an importer replaying a model's lines)."""
    override = getattr(_STATE, "location", None)
    if override is not None:
        return override
    frame = sys._getframe(1)
    while frame is not None and _inside(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


@contextmanager
def at_location(location):
    """Within the block, ops recorded on this thread (and errors raised by them) carry
    ``location`` instead of the calling frame's line: the importers replay a model
    whose source lines are known (``refrt.importers``)."""
    prev = getattr(_STATE, "location", None)
    _STATE.location = location
    try:
        yield
    finally:
        _STATE.location = prev


def current_trace():
    """The innermost active trace on this thread, or None."""
    stack = getattr(_STATE, "stack", None)
    return stack[-1] if stack else None


# numpy ufuncs that map onto refrt ops when a Traced value meets an ndarray
_UFUNC_OPS = {"add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div",
              "matmul": "matmul", "negative": "neg"}


class Traced:
    """A placeholder for a value inside ``trace``.  Only ``refrt.ops`` (and the operators
    ``+ - * / @`` and unary ``-``, mapped to add/sub/mul/div/matmul/neg) can use it."""

    __slots__ = ("_trace", "slot", "shape", "dtype")
    __array_priority__ = 1000

    def __init__(self, trace, slot, shape, dtype):
        self._trace, self.slot, self.shape, self.dtype = trace, slot, tuple(shape), dtype

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape)) if self.shape else 1

    def __len__(self):
        if not self.shape:
            raise TraceError(f"{user_location()}: len() of a 0-d traced value")
        return self.shape[0]

    def __repr__(self):
        return f"Traced(%{self.slot}, shape={self.shape}, dtype={self.dtype})"

    def _fail(self, what, hint):
        raise TraceError(f"{user_location()}: {what} on a traced value {self!r}; {hint}")

    def __bool__(self):
        self._fail("Python control flow (bool())", "a graph is recorded once, so branches "
                   "cannot depend on traced values; use refrt ops such as maximum/clamp")

    def __float__(self):
        self._fail("float()", "traced values have no concrete value while recording")

    def __int__(self):
        self._fail("int()", "traced values have no concrete value while recording")

    __complex__ = __float__

    def __index__(self):
        self._fail("use as an index", "traced values have no concrete value while recording")

    def __iter__(self):
        self._fail("iteration", "refrt graphs have no indexing op; use reshape/concat")

    def __getitem__(self, key):
        self._fail("indexing", "refrt graphs have no indexing op; use reshape/concat")

    def __array__(self, *args, **kwargs):
        self._fail("conversion to a NumPy array", "only refrt.ops can consume traced values "
                   "(a NumPy function, or a traced value used outside its trace)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = _UFUNC_OPS.get(ufunc.__name__)
        if name is None or method != "__call__" or kwargs:
            self._fail(f"NumPy operation np.{ufunc.__name__}", "use the refrt op instead "
                       "(refrt.ops.<name>) so it is recorded")
        return self._apply(name, *inputs)

    def __array_function__(self, func, types, args, kwargs):
        self._fail(f"NumPy function np.{func.__name__}", "use the refrt op instead "
                   "(refrt.ops.<name>) so it is recorded")

    def _apply(self, name, *operands):
        if name == "mul" and len(operands) == 2 and "scale" in OPS:
            a, b = operands
            c = b if isinstance(a, Traced) else a
            if isinstance(c, (int, float, np.floating, np.integer)) and not isinstance(c, bool):
                from . import ops
                return ops.scale(a if isinstance(a, Traced) else b, c=float(c))
        for v in operands:
            if not isinstance(v, (Traced, np.ndarray)):
                raise TraceError(
                    f"{user_location()}: operator {name!r} with a Python scalar {v!r}; refrt "
                    "has no implicit broadcasting: only `constant * x` is mapped (to "
                    "refrt.ops.scale); otherwise pass an array of the traced value's shape")
        from . import ops
        return getattr(ops, name)(*operands)

    def __add__(self, o): return self._apply("add", self, o)
    def __radd__(self, o): return self._apply("add", o, self)
    def __sub__(self, o): return self._apply("sub", self, o)
    def __rsub__(self, o): return self._apply("sub", o, self)
    def __mul__(self, o): return self._apply("mul", self, o)
    def __rmul__(self, o): return self._apply("mul", o, self)
    def __truediv__(self, o): return self._apply("div", self, o)
    def __rtruediv__(self, o): return self._apply("div", o, self)
    def __matmul__(self, o): return self._apply("matmul", self, o)
    def __rmatmul__(self, o): return self._apply("matmul", o, self)
    def __neg__(self): return self._apply("neg", self)

    def _compare(self, other):
        self._fail("comparison", "a graph is recorded once, so comparisons that steer Python "
                   "control flow cannot depend on traced values")

    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = _compare
    __hash__ = object.__hash__


@dataclass
class Node:
    """One recorded op call: ``output = op(*inputs, **params)`` at ``location``."""

    index: int
    op: str
    inputs: tuple          # input slots
    params: dict           # the user's parameters (validated per dtype at evaluation)
    output: int            # output slot
    shape: tuple
    dtype: np.dtype        # dtype of the example run
    location: str
    requires_grad: bool = True
    _full: dict = field(default_factory=dict, repr=False)

    def __str__(self):
        args = ", ".join(f"%{s}" for s in self.inputs)
        kw = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"%{self.output} = {self.op}({args}{kw})  # {self.shape}  at {self.location}"


@dataclass(frozen=True)
class Violation:
    """A TorchLean precondition that an evaluation did not meet (reported, not raised)."""

    node: Node
    location: str
    precondition: object

    def __str__(self):
        return (f"{self.location}: {self.node.op} precondition {self.precondition.name!r} "
                f"violated ({self.precondition.description})")


@dataclass
class Run:
    """One evaluation of a graph: what the reverse walk needs."""

    graph: "Graph"
    backend: str
    dtype: np.dtype
    values: list           # slot -> value (ndarray, or object array for mp)
    saved: list            # node index -> (prepared arrays, full params, output)
    violations: list
    threads: int = 1
    ctx: object = None

    @property
    def outputs(self):
        outs = [self.values[s] for s in self.graph.output_slots]
        return outs[0] if self.graph.single_output else tuple(outs)


class Graph:
    """A recorded computation; see the module docstring."""

    def __init__(self, name, input_shapes, input_dtypes):
        self.name = name
        self.input_shapes = list(input_shapes)
        self.input_dtypes = list(input_dtypes)
        self.input_slots = list(range(len(input_shapes)))
        self.constants = {}            # slot -> ndarray
        self.nodes = []
        self.output_slots = []
        self.single_output = True
        self.nslots = len(input_shapes)
        self.violations = []           # from the most recent evaluate()
        self.example_run = None        # the run made while tracing

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.input_slots)} inputs, {len(self.nodes)} nodes>"

    def __str__(self):
        ins = ", ".join(f"%{s}: {shp}" for s, shp in zip(self.input_slots, self.input_shapes))
        lines = [f"graph {self.name}({ins})"]
        lines += [f"  %{s} = constant {c.shape} {c.dtype}" for s, c in self.constants.items()]
        lines += [f"  {n}" for n in self.nodes]
        lines.append("  return " + ", ".join(f"%{s}" for s in self.output_slots))
        return "\n".join(lines)

    # -- evaluation -------------------------------------------------------------------
    def _check_inputs(self, inputs):
        if len(inputs) != len(self.input_slots):
            raise TypeError(f"graph {self.name}: expected {len(self.input_slots)} inputs, "
                            f"got {len(inputs)}")
        arrays = []
        for i, (v, shape) in enumerate(zip(inputs, self.input_shapes)):
            a = np.asarray(v)
            if a.shape != shape:
                raise ValueError(f"graph {self.name}: input {i} expected shape {shape} (the "
                                 f"traced shape; graphs are shape-specialised), got {a.shape}")
            arrays.append(a)
        return arrays

    def run(self, *inputs, backend=None, prec=256, threads=None) -> Run:
        """Evaluate and keep everything the reverse walk needs (see ``Run``)."""
        arrays = self._check_inputs(inputs)
        floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
        if backend is None:
            backend = "f32" if floats and all(d == np.float32 for d in floats) else "f64"
        if backend not in ("f32", "f64", "mp"):
            raise ValueError(f"graph {self.name}: argument 'backend' expected 'f32', 'f64' "
                             f"or 'mp', got {backend!r}")
        backends.load()
        if backend == "mp":
            dtype = max(floats, key=lambda d: d.itemsize) if floats else np.dtype(np.float64)
            ctx = make_context(prec)
            conv = lambda a: to_ctx(ctx, np.asarray(a, order="C")) if a.dtype.kind == "f" else a
            threads, step = 1, lambda node, ins: _mp_node(node, ins, dtype, ctx)
        else:
            dtype, ctx = BACKEND_DTYPE[backend], None
            conv = lambda a: np.asarray(a, dtype=dtype, order="C") if a.dtype.kind == "f" else a
            threads = resolve_threads(threads)
            step = lambda node, ins: _float_node(node, ins, backend, threads)
        values = [None] * self.nslots
        for s, a in zip(self.input_slots, arrays):
            values[s] = conv(a)
        for s, c in self.constants.items():
            values[s] = conv(c)
        saved, violations = [], []
        with np.errstate(all="ignore"), MPMATH_LOCK:  # see mpctx.MPMATH_LOCK
            for node in self.nodes:
                prepared, full, out = step(node, [values[s] for s in node.inputs])
                values[node.output] = out
                saved.append((prepared, full, out))
                violations += _violations(node, prepared, full, backend)
        self.violations = violations
        return Run(self, backend, dtype, values, saved, violations, threads, ctx)

    def evaluate(self, *inputs, backend=None, prec=256, threads=None):
        """The graph's output(s) on ``backend`` ("f32", "f64", "mp"; default from the
        inputs' dtype).  Precondition violations are left in ``graph.violations``."""
        return self.run(*inputs, backend=backend, prec=prec, threads=threads).outputs


def _full_params(node, dtype, arrays_like):
    """Validated params for ``node`` at ``dtype`` (eps rounded to it, axes normalised)."""
    full = node._full.get(dtype.name)
    if full is None:
        dummies = [np.zeros(a.shape, np.int64 if a.dtype.kind in "iu" else dtype)
                   for a in arrays_like]
        _, full, _, _ = prepare(get(node.op), dummies, dict(node.params))
        node._full[dtype.name] = full
    return full


def _float_node(node, ins, backend, threads):
    spec = get(node.op)
    prepared, full, _, shape = prepare(spec, ins, dict(node.params), backend)
    kernel = backends.FLOAT.get(node.op)
    if kernel is None:
        raise NotImplementedError(f"{node.op}: no float kernel is bound")
    out = np.asarray(kernel(prepared, full, threads)).reshape(shape)
    return prepared, full, out


def _mp_node(node, ins, dtype, ctx):
    full = _full_params(node, dtype, [np.empty(a.shape, a.dtype) for a in ins])
    formula = backends.MP.get(node.op)
    if formula is None:
        raise NotImplementedError(f"{node.op}: no mp formula is bound")
    out = np.asarray(formula(ctx, list(ins), full), dtype=object)
    return list(ins), full, out.reshape(node.shape)


def _violations(node, prepared, full, backend):
    pre = get(node.op).preconditions
    if not pre:
        return []
    if backend == "mp":  # the predicates are written for float arrays
        from .rounding import round_array
        prepared = [round_array(a, "float64") if a.dtype == object else a for a in prepared]
    return [Violation(node, node.location, p) for p in pre if p.violated(prepared, full)]


class Trace:
    """The recorder behind ``trace``: ``refrt.ops.evaluate`` hands it op calls whose
    arguments include a ``Traced`` value."""

    def __init__(self, graph, example_values, threads):
        self.graph = graph
        self.values = list(example_values)        # example value per slot
        self.saved = []
        self.violations = []
        self.threads = threads
        self._const_ids = {}
        self._requires = [True] * len(example_values)

    def owns(self, arrays) -> bool:
        return any(isinstance(a, Traced) for a in arrays)

    def _slot(self, value, dtype=None):
        if isinstance(value, Traced):
            if value._trace is not self:
                raise TraceError(f"{user_location()}: a traced value from another trace "
                                 "(it escaped the function that created it)")
            return value.slot
        key = id(value)
        if key in self._const_ids:
            return self._const_ids[key][0]
        arr = np.array(value)          # a private copy: later edits by the user don't leak
        # a float constant takes the dtype of the traced values it meets (graph.run casts
        # it to the backend's dtype in the same way)
        example = arr.astype(dtype) if dtype is not None and arr.dtype.kind == "f" else arr
        slot = self._new_slot(example, requires=False)
        self.graph.constants[slot] = arr
        self._const_ids[key] = (slot, value)  # keep value alive so id() stays unique
        return slot

    def _new_slot(self, value, requires):
        self.values.append(value)
        self._requires.append(requires)
        self.graph.nslots += 1
        return self.graph.nslots - 1

    def record(self, name, arrays, params, backend=None, cast=False, **_ignored):
        loc = user_location()
        if backend is not None or cast:
            raise TraceError(f"{loc}: {name}: 'backend'/'cast' cannot be set inside a traced "
                             "function (graph.evaluate(backend=...) chooses the backend)")
        spec = get(name)
        traced = [self.values[a.slot].dtype for a in arrays
                  if isinstance(a, Traced) and a.dtype.kind == "f"]
        slots = tuple(self._slot(a, traced[0] if traced else None) for a in arrays)
        node = Node(len(self.graph.nodes), spec.name, slots, dict(params), -1, (), None, loc,
                    any(self._requires[s] for s in slots))
        backend = "f32" if any(self.values[s].dtype == np.float32 for s in slots) else "f64"
        try:
            with np.errstate(all="ignore"):
                prepared, full, out = _float_node(node, [self.values[s] for s in slots],
                                                  backend, self.threads)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{loc}: {err}") from err
        node.output = self._new_slot(out, node.requires_grad)
        node.shape, node.dtype = out.shape, out.dtype
        node._full[out.dtype.name] = full
        self.graph.nodes.append(node)
        self.saved.append((prepared, full, out))
        self.violations += _violations(node, prepared, full, backend)
        return Traced(self, node.output, out.shape, out.dtype)


def trace(fn, *example_inputs, threads=None, **params) -> Graph:
    """Record ``fn(*example_inputs, **params)`` as a ``Graph``.

    ``params`` are passed to ``fn`` as Python constants.  ``fn`` must return a traced
    value or a tuple/list of them.  Arrays that ``fn`` closes over become constants.
    """
    arrays = []
    for i, v in enumerate(example_inputs):
        a = np.asarray(v)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"trace: input {i} expected a float array (or integer class ids), "
                            f"got dtype {a.dtype}")
        arrays.append(np.asarray(a, a.dtype.newbyteorder("="), order="C"))
    backends.load()
    name = getattr(fn, "__name__", "fn")
    graph = Graph(name, [a.shape for a in arrays], [a.dtype for a in arrays])
    tr = Trace(graph, arrays, resolve_threads(threads))
    placeholders = [Traced(tr, i, a.shape, a.dtype) for i, a in enumerate(arrays)]
    stack = getattr(_STATE, "stack", None)
    if stack is None:
        stack = _STATE.stack = []
    stack.append(tr)
    try:
        result = fn(*placeholders, **params)
    finally:
        stack.pop()
    outs = result if isinstance(result, (tuple, list)) else (result,)
    graph.single_output = not isinstance(result, (tuple, list))
    for k, o in enumerate(outs):
        if not isinstance(o, Traced) or o._trace is not tr:
            raise TraceError(f"trace: {name} must return traced values computed with "
                             f"refrt.ops from its inputs; output {k} is {type(o).__name__}")
        graph.output_slots.append(o.slot)
    backend = "f32" if arrays and all(a.dtype != np.float64 for a in arrays
                                      if a.dtype.kind == "f") else "f64"
    graph.example_run = Run(graph, backend, BACKEND_DTYPE[backend], tr.values, tr.saved,
                            tr.violations, tr.threads)
    graph.violations = tr.violations
    graph._requires = tr._requires
    return graph
