"""``refrt.ops.<name>(*arrays, backend=None, prec=256, cast=False, threads=None, **params)``.

One function per registry op, generated from ``refrt.registry.OPS``.  The float
kernels are chosen by the input dtype; ``backend="mp"`` evaluates the real-number
formula with mpmath at ``prec`` bits and returns an object array of ``mpmath.mpf``.

Design (dispatch cost; bench/bench_dispatch.py measures each layer):

a. Two paths, one result.  The *lean* path serves the common call: only array
   arguments (no keyword at all: default params, backend, cast and threads), every
   input a plain ``np.ndarray`` (not a subclass) of the native float32 or float64 dtype
   (integer class ids: native int64; conditions: bool), C-contiguous, one float dtype.
   Everything else, and anything the lean path is unsure of, takes the *general* path
   (``evaluate``: ``prepare``'s conversions, checks and errors), so errors are exactly
   those of the general path: the lean path never raises on its own.
b. Resolved once per (op, dtype): the spec, the default params checked and rounded to
   the dtype, the binding and, for elementwise ops, the typed kernel entry
   (``backends.FLOAT_LEAN``).  A call then costs the checks, one allocation and the
   kernel (which enters no OpenMP region at 1 thread).
c. Tracing needs no per-call lookup: a trace records a call only when an argument is a
   ``Traced`` placeholder (``Trace.owns``), which the lean path's exact-type test already
   sends to the general path, where the trace hook runs first.
d. Threads.  The lean path runs at 1 thread: ``threads`` omitted (REFRT_NUM_THREADS,
   read once at import, unset or 1) or ``threads=1`` given to ``evaluate``.
e. ``evaluate(name, ...)`` takes the lean path too (the benchmarks call it), after one
   dict lookup by name.
"""
from __future__ import annotations

import builtins

import numpy as np

from . import backends
from ._prepare import _DEFAULT_THREADS, _check_size, bind_optional, check_param, check_prec, \
    prepare, resolve_threads
from .backends.mpctx import MPMATH_LOCK, make_context, to_ctx
from .graph import current_trace
from .registry import OPS, get

BACKENDS = ("f32", "f64", "mp")


def evaluate(name, *arrays, backend=None, prec=256, cast=False, threads=None, **params):
    """Evaluate op ``name`` on ``arrays``; see the module docstring."""
    if backend is None and cast is False and not params and arrays \
            and (threads is None or (threads.__class__ is int and threads == 1)) \
            and type(arrays[0]) is np.ndarray and name in OPS:
        out = _lean(name, _lean_cell(name), arrays)
        if out is not None:
            return out
    spec = get(name)
    arrays, params = bind_optional(spec, arrays, params)
    tr = current_trace()
    if tr is not None and tr.owns(arrays):
        return tr.record(name, arrays, params, backend=backend, cast=cast)
    if backend not in (None,) + BACKENDS:
        raise ValueError(f"{name}: argument 'backend' expected one of None, 'f32', 'f64', "
                         f"'mp', got {backend!r}")
    arrays, params, dtype, out_shape = prepare(spec, arrays, params, backend, cast)
    backends.load()
    if backend == "mp":
        if 0 in out_shape:             # iterate only over elements that exist
            check_prec(spec.name, prec)
            return np.empty(out_shape, dtype=object)
        return evaluate_mp(spec, arrays, params, prec)
    impl = backends.FLOAT.get(spec.name)
    if impl is None:
        raise NotImplementedError(f"{name}: no float kernel is bound")
    out = impl(arrays, params, resolve_threads(threads, name))
    return np.asarray(out).reshape(out_shape)


def evaluate_mp(spec, arrays, params, prec=256):
    """The mp backend on prepared arrays: a fresh private context at ``prec`` bits."""
    check_prec(spec.name, prec)
    backends.load()
    formula = backends.MP[spec.name]
    with MPMATH_LOCK:
        ctx = make_context(prec)
        res = formula(ctx, [to_ctx(ctx, a) for a in arrays], params)
    return np.asarray(res, dtype=object)


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_I64, _BOOL = np.dtype(np.int64), np.dtype(np.bool_)
_LEAN_OK = _DEFAULT_THREADS in (None, 1)          # design note d


def _generic_lean(spec, dtype, defaults):
    """Lean call of a bound float kernel (no typed entry): the general path's steps
    for already-native, contiguous inputs (design note a)."""
    impl = backends.FLOAT[spec.name]
    shape_rule, nd = spec.shape, np.ndarray
    allowed = tuple((dtype, _I64) if a.role == "class_target" else
                    (_BOOL,) if a.role == "condition" else (dtype,) for a in spec.args)

    def call(*arrays):
        for a, ok in zip(arrays, allowed):
            if type(a) is not nd or a.dtype not in ok or not a.flags.c_contiguous:
                return None
        full = dict(defaults)          # shape rules normalise axes in place
        arrays = list(arrays)
        out_shape = shape_rule(spec, arrays, full) if shape_rule else arrays[0].shape
        _check_size(spec, out_shape, dtype, None)
        return np.asarray(impl(arrays, full, 1)).reshape(out_shape)
    return call


def _lean_for(spec, dtype):
    """The cached lean callable of (op, dtype), or False (design note b)."""
    backends.load()
    # index arrays (embedding ids, gather/scatter positions) are range-checked by the
    # general path's prepare; such ops always take it
    if (not _LEAN_OK or spec.name not in backends.FLOAT
            or any(a.role == "index" for a in spec.args)):
        return False
    try:
        defaults = {p.name: check_param(spec, p, p.default, dtype) for p in spec.params}
    except (TypeError, ValueError):     # a default that needs the user's value
        return False
    make = backends.FLOAT_LEAN.get(spec.name)
    if make is not None:
        return make(dtype, defaults)
    return _generic_lean(spec, dtype, defaults)


# op name -> [lean callable for float32, for float64, number of array arguments]: a
# callable is None until first resolved, False where the op has none (design note b);
# shared by the generated function and evaluate
_LEAN: dict = {}


def _lean_cell(name):
    cell = _LEAN.get(name)
    if cell is None:
        cell = _LEAN[name] = [None, None, len(OPS[name].args)]
    return cell


def _lean(name, cell, arrays):
    """The lean path's result for ``arrays`` (arrays[0] a plain ndarray), or None."""
    dt = arrays[0].dtype
    k = 0 if dt is _F32 else 1 if dt is _F64 else -1
    if k < 0 or len(arrays) != cell[2]:
        return None
    fn = cell[k]
    if fn is None:
        fn = cell[k] = _lean_for(OPS[name], dt)
    return fn(*arrays) if fn else None


def split_outputs(spec, res):
    """A multi-output op's stacked result -> the tuple of its results.  Inside a trace
    each one is a ``select`` node on the stacked value, so the tape routes each result's
    cotangent into its block of the op's (stacked) cotangent."""
    if getattr(res, "_trace", None) is not None:
        return tuple(evaluate("select", res, axis=0, index=k)
                     for k in range(len(spec.outputs)))
    return tuple(res[k] for k in range(len(spec.outputs)))


def _make(spec):
    name, nargs = spec.name, len(spec.args)
    nd, f32, f64 = np.ndarray, _F32, _F64
    multi = bool(spec.outputs)         # a stacked result goes back as a tuple
    cell = _lean_cell(name)

    def op(*arrays, backend=None, prec=256, cast=False, threads=None, **params):
        if backend is None and threads is None and cast is False and not params \
                and len(arrays) == nargs and type(arrays[0]) is nd and not multi:
            dt = arrays[0].dtype
            fn = cell[0] if dt is f32 else cell[1] if dt is f64 else False
            if fn is None:
                out = _lean(name, cell, arrays)
            else:
                out = fn(*arrays) if fn else None
            if out is not None:
                return out
        res = evaluate(name, *arrays, backend=backend, prec=prec, cast=cast,
                       threads=threads, **params)
        return split_outputs(spec, res) if multi else res
    op.__name__ = op.__qualname__ = spec.name
    lines = [spec.signature, "", spec.doc, ""]
    if spec.params:
        lines.append("Parameters: " + ", ".join(f"{p.name}={p.default!r}" for p in spec.params))
    lines.append("Domain: " + ", ".join(f"{a.name} in {a.domain}" for a in spec.args))
    if spec.special_cases:
        lines.append("Special cases:")
        lines += [f"  {c.inputs} -> {c.expected!r}" for c in spec.special_cases]
    if spec.vjp:
        lines.append(f"VJP: {spec.vjp}")
    if spec.conventions:
        lines.append(f"Conventions: {spec.conventions}")
    op.__doc__ = "\n".join(lines)
    return op


# generated functions are cached here; an op named like a builtin (sum, abs, pow) stays
# out of globals(), so it cannot shadow the builtin for this module's own code.  Every
# other op is also put in globals() on first use: `refrt.ops.add` is then a plain module
# attribute, with no __getattr__ call (~0.2 us) on every access.  This cannot change
# this module's code: it only reads names that globals() or builtins already hold.
_GENERATED: dict = {}
_BUILTIN_NAMES = frozenset(dir(builtins))


def __getattr__(name):
    if name in OPS:
        fn = _GENERATED.get(name)
        if fn is None:
            fn = _GENERATED[name] = _make(OPS[name])
            if name not in _BUILTIN_NAMES and name not in globals():
                globals()[name] = fn
        return fn
    import difflib
    close = difflib.get_close_matches(name, list(OPS), n=1, cutoff=0.6) \
        or [n for n in OPS if n.replace("_", "") == name.replace("_", "")]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise AttributeError(f"module 'refrt.ops' has no op {name!r}{hint}")


def __dir__():
    return sorted(set(globals()) | set(OPS))
