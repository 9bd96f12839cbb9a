"""``refrt.ops.<name>(*arrays, backend=None, prec=256, cast=False, threads=None, **params)``.

One function per registry op, generated from ``refrt.registry.OPS``.  The float
kernels are chosen by the input dtype; ``backend="mp"`` evaluates the real-number
formula with mpmath at ``prec`` bits and returns an object array of ``mpmath.mpf``.
"""
from __future__ import annotations

import numpy as np

from . import backends
from ._prepare import bind_optional, check_prec, prepare, resolve_threads
from .backends.mpctx import MPMATH_LOCK, make_context, to_ctx
from .graph import current_trace
from .registry import OPS, get

BACKENDS = ("f32", "f64", "mp")


def evaluate(name, *arrays, backend=None, prec=256, cast=False, threads=None, **params):
    """Evaluate op ``name`` on ``arrays``; see the module docstring."""
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


def split_outputs(spec, res):
    """A multi-output op's stacked result -> the tuple of its results.  Inside a trace
    each one is a ``select`` node on the stacked value, so the tape routes each result's
    cotangent into its block of the op's (stacked) cotangent."""
    if getattr(res, "_trace", None) is not None:
        return tuple(evaluate("select", res, axis=0, index=k)
                     for k in range(len(spec.outputs)))
    return tuple(res[k] for k in range(len(spec.outputs)))


def _make(spec):
    def op(*arrays, backend=None, prec=256, cast=False, threads=None, **params):
        res = evaluate(spec.name, *arrays, backend=backend, prec=prec, cast=cast,
                       threads=threads, **params)
        return split_outputs(spec, res) if spec.outputs else res
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


# generated functions are cached here, not in globals(): an op named like a builtin
# (sum, abs, pow, ...) must not shadow the builtin for this module's own code
_GENERATED: dict = {}


def __getattr__(name):
    if name in OPS:
        fn = _GENERATED.get(name)
        if fn is None:
            fn = _GENERATED[name] = _make(OPS[name])
        return fn
    import difflib
    close = difflib.get_close_matches(name, list(OPS), n=1, cutoff=0.6) \
        or [n for n in OPS if n.replace("_", "") == name.replace("_", "")]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise AttributeError(f"module 'refrt.ops' has no op {name!r}{hint}")


def __dir__():
    return sorted(list(globals()) + list(OPS))
