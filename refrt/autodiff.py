"""Reverse-mode differentiation: ``vjp``, ``grad``, the single VJP entry point
``vjp_op``, the VJP tolerance model, and the numerical checks of VJP rules.

* ``vjp_op(name, arrays, params, out, g, backend)`` calls the backend table entry
  ``FLOAT_VJP[name]`` or ``MP_VJP[name]`` for one op; the tape and the tests use only it.
* ``vjp(fn, *inputs, backend=...) -> (outputs, vjp_fn)``: trace, evaluate, and a function
  that runs the reverse walk (``refrt.tape``) for given output cotangents.
* ``grad(fn, argnums=0)(*inputs, backend=...)``: the gradient of a 0-d output.

The numerical checks (``numerical_vjp``, ``inner_product``) are independent of the VJP
rules: they differentiate the mp *forward* formula on a private high-precision context
(``mpmath.diff`` per element, and a central difference along a random direction).
"""
from __future__ import annotations

import numpy as np

from . import backends
from ._prepare import prepare, resolve_threads
from .errors import bad_type, bad_value
from .backends.mpctx import MPMATH_LOCK, make_context, to_ctx
from .graph import BACKEND_DTYPE, trace
from .metrics import ulp_distance
from .registry import get
from . import tape

# --------------------------------------------------------------------------- one op
def vjp_op(name, arrays, params, out, g, backend=None, *, prec=256, ctx=None, threads=None,
           prepared=False):
    """Input cotangents of op ``name`` for the upstream cotangent ``g``: a tuple with one
    entry per input (an array of that input's shape, or ``None`` for class ids).

    backend: "f32"/"f64" (float kernels; default from the inputs' dtype) or "mp" (the mp
    rule on a private context of ``prec`` bits, or on ``ctx``; float inputs, ``out`` and
    ``g`` are converted exactly).  ``out=None`` computes the forward first.  With
    ``prepared=True`` the arrays and params are taken as already validated (the tape).
    """
    spec = get(name)
    backends.load()
    if backend == "mp":
        with MPMATH_LOCK:  # see mpctx.MPMATH_LOCK
            return _vjp_op_mp(spec, arrays, params, out, g, prec, ctx, prepared)
    return _vjp_op_float(spec, arrays, params, out, g, backend, threads, prepared)


def _vjp_op_mp(spec, arrays, params, out, g, prec, ctx, prepared):
    name = spec.name
    ctx = ctx if ctx is not None else make_context(prec)
    if not prepared:
        arrays, params, _, shape = prepare(spec, arrays, params)
        arrays = [to_ctx(ctx, a) for a in arrays]
    conv = lambda a: a if a.dtype == object else to_ctx(ctx, np.asarray(a, order="C"))
    if out is None:
        out = np.asarray(backends.MP[name](ctx, arrays, params), dtype=object)
    rule = backends.MP_VJP.get(name)
    if rule is None:
        raise NotImplementedError(f"{name}: no mp VJP is bound (MP_VJP[{name!r}])")
    res = rule(ctx, arrays, params, out, conv(np.asarray(g)).reshape(np.shape(out)))
    return _checked(spec, arrays, res)


def _vjp_op_float(spec, arrays, params, out, g, backend, threads, prepared):
    name = spec.name
    if backend not in (None, "f32", "f64"):
        raise ValueError(f"{name}: argument 'backend' expected 'f32', 'f64' or 'mp', "
                         f"got {backend!r}")
    if not prepared:
        arrays, params, dtype, shape = prepare(spec, arrays, params, backend)
        if out is None:
            with np.errstate(all="ignore"):
                out = backends.FLOAT[name](arrays, params, resolve_threads(threads, name))
        out = np.asarray(out).reshape(shape)
    dtype = out.dtype
    g = np.asarray(g)
    if g.shape != out.shape:
        raise ValueError(f"{name}: argument 'g' expected shape {out.shape} (the output's "
                         f"shape), got {g.shape}")
    rule = backends.FLOAT_VJP.get(name)
    if rule is None:
        raise NotImplementedError(f"{name}: no float VJP kernel is bound (FLOAT_VJP[{name!r}])")
    with np.errstate(all="ignore"):
        res = rule(arrays, params, out, np.asarray(g, dtype=dtype, order="C"),
                   resolve_threads(threads, name) if not prepared else (threads or 1))
    return _checked(spec, arrays, res)


def _checked(spec, arrays, res):
    """The VJP contract: one cotangent (or None) per input, of that input's shape."""
    name = spec.name
    res = tuple(res)
    if len(res) != len(arrays):
        raise RuntimeError(f"{name}: the VJP returned {len(res)} cotangents for "
                           f"{len(arrays)} inputs")
    for arg, a, r in zip(spec.args, arrays, res):
        if r is not None and np.shape(r) != np.shape(a):
            raise RuntimeError(f"{name}: the VJP returned shape {np.shape(r)} for input "
                               f"'{arg.name}' of shape {np.shape(a)}")
    return res


# --------------------------------------------------------------------- functions
def vjp(fn, *inputs, backend=None, prec=256, threads=None, **params):
    """``(outputs, vjp_fn)``: ``fn``'s outputs on ``backend`` and a function mapping one
    cotangent per output to one cotangent per input (``None`` for integer inputs).
    ``vjp_fn.violations`` lists the TorchLean preconditions the evaluation did not meet,
    as ``Violation(node, location, precondition)``; ``vjp_fn.graph`` is the trace."""
    graph = trace(fn, *inputs, threads=threads, **params)
    run = graph.example_run
    if not (backend is None or (backend != "mp" and BACKEND_DTYPE[backend] == run.dtype)):
        run = graph.run(*inputs, backend=backend, prec=prec, threads=threads)

    def vjp_fn(*cotangents):
        return tape.backward(run, cotangents)

    vjp_fn.violations, vjp_fn.graph, vjp_fn.run = run.violations, graph, run
    return run.outputs, vjp_fn


def grad(fn, argnums=0):
    """``grad(fn, argnums)(*inputs, backend=None, prec=256, threads=None, **params)``: the
    gradient of ``fn``'s 0-d output with respect to input ``argnums`` (an int, or a tuple
    of ints for a tuple of gradients)."""
    name = getattr(fn, "__name__", "fn")
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else argnums
    if isinstance(argnums, (bool, np.bool_)) or not isinstance(nums, tuple) or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)) for i in nums):
        raise bad_type("grad", "argnums", "an int or a tuple of ints", repr(argnums))

    def grad_fn(*inputs, backend=None, prec=256, threads=None, **params):
        if backend not in (None, "f32", "f64", "mp"):
            raise bad_value("grad", "backend", "one of None, 'f32', 'f64', 'mp'", repr(backend))
        bad = [i for i in nums if not -len(inputs) <= i < len(inputs)]
        if bad:
            raise bad_value("grad", "argnums", f"indices of {name}'s {len(inputs)} inputs "
                            f"(-{len(inputs)} .. {len(inputs) - 1})", repr(argnums))
        outputs, vjp_fn = vjp(fn, *inputs, backend=backend, prec=prec, threads=threads,
                              **params)
        if isinstance(outputs, tuple) or np.shape(outputs) != ():
            got = (f"{len(outputs)} outputs" if isinstance(outputs, tuple)
                   else f"an output of shape {np.shape(outputs)}")
            raise ValueError(f"grad: {name} expected to return one 0-d (scalar) value, got "
                             f"{got}; reduce it (e.g. refrt.ops.sum) or use refrt.vjp with "
                             "an explicit cotangent")
        grads = vjp_fn(tape.seed_like(vjp_fn.run, outputs))
        if isinstance(argnums, (int, np.integer)):
            return grads[argnums]
        return tuple(grads[i] for i in argnums)

    grad_fn.__name__ = f"grad_{getattr(fn, '__name__', 'fn')}"
    return grad_fn


# ---------------------------------------------------------------- tolerance model
# The one place that decides how close a float VJP kernel must be to the exact VJP
# rounded to its dtype.
#
# ulps: ``OpSpec.vjp_tol`` when declared, else the forward budget doubled plus 4 ulps (a
#   VJP re-reads the rounded forward output and multiplies by g).  Every component must
#   be within ``ulps`` of the exact value, with two documented exceptions:
# condition-number budget (``OpSpec.vjp_terms``, refrt/registry/_terms.py): where a
#   component is a difference of terms that cancel for some inputs (p_j sum(t) - t_j with
#   soft targets, g_i - p_i sum(g), y_i (g_i - <g, y>), log t + 1 - lp), the exact
#   problem is ill-conditioned there and a component also passes when
#       |got - want| <= ulps * eps * terms_i,
#   terms_i = |a| + |b| of that component's terms: ``ulps`` ulps of the terms, i.e.
#   ``ulps * kappa_i`` ulps of the result with kappa_i the relative condition number of
#   the last subtraction.  The kernels use stable forms (the dominant class' p_a - 1 =
#   -sum_{j != a} p_j, exp(x_j - m) with the shift's rounding compensated, sigmoid(x) - t
#   as one fma over 1 + e), so where the terms do not cancel this is the plain budget.
# absolute floor (``OpSpec.vjp_floor``, in eps * scale, scale = max(max|want|,
#   J max|g|), J = 1 for the softmax kind): the former default for every non-elementwise
#   kind (16), removed wherever a stable formula exists; declared only where one does
#   not exist yet (see the registry entries that set it, and docs/vjp_accuracy.md).
# mp numbers have no signed zero: where an input is +-0 and both results are infinite,
#   the sign of the infinity (IEEE: g / -0 = -inf) is not checked.
ELEMENTWISE_KINDS = ("unary", "binary")


def vjp_tolerance(spec, dtype):
    """``(ulps, floor)`` for ``spec``'s float VJP at ``dtype``: see the comment above."""
    dtype = np.dtype(dtype)
    ulps = spec.vjp_tol[dtype] if spec.vjp_tol is not None else 2 * spec.tol[dtype] + 4
    floor = getattr(spec, "vjp_floor", None)
    return float(ulps), float(floor or 0.0)


def vjp_error(got, want, dtype, spec, g=None, zero_inputs=None, terms=None):
    """Per-component error in ulps of ``dtype`` under the model above (0 where the
    condition-number budget, the absolute floor or the signed-zero rule accepts the
    component).  ``terms``: this input's entry of ``spec.vjp_terms``."""
    dtype = np.dtype(dtype)
    ulps, floor = vjp_tolerance(spec, dtype)
    eps = float(np.finfo(dtype).eps)
    got = np.asarray(got, dtype=dtype)
    want = np.asarray(want, dtype=dtype)
    d = ulp_distance(got, want, dtype)
    if zero_inputs is not None:
        d = np.where(zero_inputs & np.isinf(got) & np.isinf(want), 0.0, d)
    if not d.size:
        return d
    with np.errstate(all="ignore"):
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    fin = np.isfinite(want) & np.isfinite(got)
    if terms is not None:
        t = np.broadcast_to(np.asarray(terms, dtype=np.float64), d.shape)
        ok = fin & np.isfinite(t) & (err <= ulps * eps * t)
        d = np.where(ok, 0.0, d)
    if floor:
        finw = np.isfinite(want)
        scale = float(np.max(np.abs(want[finw].astype(np.float64)))) if finw.any() else 0.0
        if spec.kind == "softmax" and g is not None:
            gf = np.abs(np.asarray(g, dtype=np.float64))
            gf = gf[np.isfinite(gf)]
            scale = max(scale, float(gf.max()) if gf.size else 0.0)
        d = np.where(fin & (err <= floor * eps * scale), 0.0, d)
    return d


def vjp_terms(spec, arrays, params, g):
    """``spec.vjp_terms`` on prepared inputs (a tuple with one entry per input, None
    where the op declares no condition-number budget)."""
    if spec.vjp_terms is None:
        return (None,) * len(spec.args)
    return tuple(spec.vjp_terms(arrays, params, g))


def graph_tolerance(graph, dtype):
    """Relative-to-max budget for a whole graph's gradient against the mp reference:
    every node's forward and VJP budget, in units of eps, summed (each node can pass on
    its rounding error to the next), times a cancellation allowance of 4."""
    eps = float(np.finfo(np.dtype(dtype)).eps)
    total = 0.0
    for node in graph.nodes:
        spec = get(node.op)
        ulps, floor = vjp_tolerance(spec, dtype)
        total += spec.tol[dtype] + ulps + floor
    return 4 * eps * max(total, 1.0)


# ------------------------------------------------------------- numerical checks
def _locked(fn):
    """Hold ``mpctx.MPMATH_LOCK`` for the whole of an mp computation."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with MPMATH_LOCK:
            return fn(*args, **kwargs)
    return wrapper


def _mp_inputs(spec, arrays, params, prec):
    prepared, full, _, _ = prepare(spec, arrays, params)
    ctx = make_context(prec)
    return ctx, prepared, full, [to_ctx(ctx, a) for a in prepared]


def _dot(ctx, a, b):
    return ctx.fsum(x * y for x, y in zip(np.ravel(a), np.ravel(b)))


@_locked
def numerical_vjp(name, arrays, params, g, argnums, prec=160):
    """Jᵀg for the inputs ``argnums`` by ``mpmath.diff`` of the mp forward, per element:
    d/dt <g, F(x with x_i = t)> at t = x_i (central difference with a step of
    2**-(prec+10) relative to |x_i|, evaluated at twice the precision).  Returns a dict
    argnum -> object array; a private context, never ``mpmath.mp``."""
    spec = get(name)
    backends.load()
    ctx, _, full, xs = _mp_inputs(spec, arrays, params, prec)
    gm = to_ctx(ctx, np.asarray(g, dtype=np.float64, order="C"))
    forward = backends.MP[name]
    result = {}
    for k in argnums:
        base = xs[k]
        res = np.empty(base.shape, dtype=object)
        for i in range(base.size):
            def phi(t, i=i):
                xk = base.copy()
                xk.reshape(-1)[i] = t
                ins = list(xs)
                ins[k] = xk
                return _dot(ctx, gm, np.asarray(forward(ctx, ins, full), dtype=object))
            x0 = base.reshape(-1)[i]
            res.reshape(-1)[i] = ctx.diff(phi, x0, relative=bool(x0 != 0))
        result[k] = res
    return result


@_locked
def inner_product(name, arrays, params, argnums, seed=0, prec=256, backend="mp"):
    """JAX's adjoint test: ``lhs`` = <J u, v> and ``rhs`` = <u, Jᵀ v> for random u (one per input in
    ``argnums``) and v.  J u is a central difference of the mp forward with step 2**-64
    at ``prec`` bits (error ~2**-128 relative); Jᵀv comes from ``vjp_op`` on ``backend``
    ("mp": the exact rule; "f32"/"f64": the float kernel, its result taken exactly).
    Both sides are mp numbers of a private context.  Also returned, to scale the float
    kernel's error bound: ``abs_terms`` = sum|u_i (Jᵀv)_i|, ``l1_u`` = sum|u|,
    ``max_cot`` = max|Jᵀv|, ``max_v`` = max|v|."""
    spec = get(name)
    backends.load()
    ctx, prepared, full, xs = _mp_inputs(spec, arrays, params, prec)
    rng = np.random.default_rng(seed)
    dtype = next((a.dtype for a in prepared if a.dtype.kind == "f"), np.dtype(np.float64))
    us = {k: rng.standard_normal(prepared[k].shape).astype(dtype) for k in argnums}
    forward = backends.MP[name]
    out = np.asarray(forward(ctx, xs, full), dtype=object)
    v = rng.standard_normal(out.shape).astype(dtype)
    h = ctx.ldexp(1, -64)

    def shifted(sign):
        ins = list(xs)
        for k, u in us.items():
            ins[k] = xs[k] + to_ctx(ctx, u) * (sign * h)
        return np.asarray(forward(ctx, ins, full), dtype=object)

    ju = (shifted(1) - shifted(-1)) / (2 * h)
    lhs = _dot(ctx, ju, to_ctx(ctx, v))
    if backend == "mp":
        cot = vjp_op(name, xs, full, out, to_ctx(ctx, v), "mp", ctx=ctx, prepared=True)
    else:
        cot = vjp_op(name, prepared, full, None, v, backend)
        cot = [None if c is None else to_ctx(ctx, np.asarray(c)) for c in cot]
    rhs = ctx.fsum(_dot(ctx, to_ctx(ctx, u), cot[k]) for k, u in us.items())
    scale = ctx.fsum(ctx.fabs(a * b) for k, u in us.items()
                     for a, b in zip(to_ctx(ctx, u).ravel(), cot[k].ravel()))
    l1_u = ctx.fsum(ctx.fabs(a) for u in us.values() for a in to_ctx(ctx, u).ravel())
    max_c = max([ctx.fabs(c) for k in us for c in cot[k].ravel()], default=ctx.zero)
    return {"lhs": lhs, "rhs": rhs, "abs_terms": scale, "l1_u": l1_u, "max_cot": max_c,
            "max_v": float(np.max(np.abs(v))) if v.size else 0.0}


# ------------------------------------------------------------------ measurement
def cotangent(name, shape, dtype, key=""):
    """A deterministic N(0, 1) upstream cotangent for op ``name`` (seeded by name/key)."""
    import zlib
    rng = np.random.default_rng(zlib.crc32(f"{name}/{np.dtype(dtype).name}/{key}/g".encode()))
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


# The certified reference's precision cap for the VJP tables: the whole gradient is one
# unit, so an element that needs more (an exact tie reached through exp/log, or a value
# within 2^-4096 of a midpoint) would re-run the whole draw up to the cap; past it the
# element is compared with the 1024-bit mp VJP instead and logged here.
CERTIFIED_MAX_PREC = 4096
UNDECIDED_LOG = []


def measure_vjp(spec, dtype, family, seed=0, prec=256, reference="mp"):
    """Float VJP kernel vs the exact VJP rounded to ``dtype``, on one family draw.

    Returns ``{arg name: (max raw ulps, max ulps under the tolerance model)}`` for every
    input that receives a cotangent; raises AssertionError if the float and mp rules
    disagree on which inputs get one.  ``reference="certified"``: ``refrt.oracle.vjp``
    (the mp VJP rule in the interval context under the Ziv loop; an element it cannot
    decide is NaN and counts as a maximal error), used for docs/vjp_accuracy.md.
    ``"mp"`` (default, the generic tests: ~1-3x faster and never climbs to 2^16 bits on a
    whole draw): the plain mp VJP at ``prec`` bits rounded once (uncertified)."""
    from . import families
    dtype = np.dtype(dtype)
    arrays, params = families.generate(spec, family, dtype, seed)
    return vjp_errors(spec, arrays, params, dtype, key=f"{family}/{seed}", prec=prec,
                      reference=reference)


def vjp_errors(spec, arrays, params, dtype, g=None, key="", prec=256, reference="mp"):
    """``measure_vjp`` on given inputs (the hypothesis hunt): ``g`` defaults to the
    seeded cotangent of ``cotangent(spec.name, shape, dtype, key)``."""
    from .rounding import round_array
    dtype = np.dtype(dtype)
    backend = {"float32": "f32", "float64": "f64"}[dtype.name]
    prepared, full, _, shape = prepare(spec, arrays, params, backend)
    if g is None:
        g = cotangent(spec.name, shape, dtype, key)
    with np.errstate(all="ignore"):
        got = vjp_op(spec.name, prepared, full, None, g, backend)
    if reference == "certified":
        from . import oracle
        certified, masks = oracle.vjp(spec.name, *prepared, cotangent=np.asarray(g, np.float64),
                                      dtype=dtype, max_prec=CERTIFIED_MAX_PREC,
                                      on_undecided="nan", return_undecided=True, **full)
        want = [None if c is None else np.asarray(c, dtype=object) for c in certified]
        if any(m is not None and m.any() for m in masks):
            # elements undecided under the cap: the plain mp VJP at 1024 bits, rounded
            # once (counted in UNDECIDED_LOG for the docs)
            from .rounding import round_array as _ra
            plain = vjp_op(spec.name, prepared, full, None, g, "mp", prec=1024)
            for k, m in enumerate(masks):
                if m is not None and m.any():
                    w = np.asarray(want[k], dtype=dtype)
                    w[m] = _ra(plain[k], dtype)[m]
                    want[k] = w
                    UNDECIDED_LOG.append((spec.name, dtype.name, key, int(m.sum())))
    else:
        want = vjp_op(spec.name, prepared, full, None, g, "mp", prec=prec)
    terms = vjp_terms(spec, prepared, full, g)
    result = {}
    for k, (arg, a, b) in enumerate(zip(spec.args, got, want)):
        assert (a is None) == (b is None), (
            f"{spec.name}: input '{arg.name}': the float VJP returns "
            f"{'None' if a is None else 'a cotangent'}, the mp VJP "
            f"{'None' if b is None else 'a cotangent'}")
        if a is None:
            continue
        ref = np.asarray(b, dtype=dtype) if reference == "certified" else round_array(b, dtype)
        raw = ulp_distance(a, ref, dtype)
        zeros = np.zeros(np.shape(a), bool)
        for x in prepared:
            if x.shape == zeros.shape and x.dtype.kind == "f":
                zeros |= x == 0
        model = vjp_error(a, ref, dtype, spec, g, zeros, terms[k])
        result[arg.name] = (float(raw.max()) if raw.size else 0.0,
                            float(model.max()) if model.size else 0.0)
    return result


def vjp_table(specs, dtypes=("float32", "float64"), seeds=(0, 1), reference="certified"):
    """``{(op, dtype): (max raw ulps, max ulps under the model, budget, worst family)}``
    over each op's families and ``seeds`` (ops without a bound VJP are left out)."""
    backends.load()
    rows = {}
    for spec in specs:
        if spec.vjp is None or spec.name not in backends.FLOAT_VJP or spec.name not in backends.MP_VJP:
            continue
        for dt in dtypes:
            raw_max, model_max, worst = 0.0, 0.0, ""
            for family in spec.families:
                for seed in seeds:
                    try:
                        res = measure_vjp(spec, dt, family, seed, reference=reference)
                    except Exception as err:  # a binding that cannot run this family
                        res, worst = {}, f"{family}: {type(err).__name__}"
                    for raw, model in res.values():
                        raw_max = max(raw_max, raw)
                        if model > model_max:
                            model_max, worst = model, family
            rows[(spec.name, dt)] = (raw_max, model_max, vjp_tolerance(spec, dt)[0], worst)
    return rows
