"""Every op with a VJP x dtype: the float VJP kernel and the mp VJP rule checked against
independent references.

1. float VJP vs the mp VJP rounded to the dtype, in ulps of the dtype (float32 checked
   in float32), within ``refrt.autodiff.vjp_tolerance`` (registry ``vjp_tol`` or the one
   documented default);
2. the mp VJP vs ``mpmath.diff`` of the mp *forward* per element (private context);
3. JAX's inner-product test <J u, v> = <u, Jᵀ v> with J u from a high-precision central
   difference of the mp forward, for the mp rule (to ~2**-100) and the float kernel
   (within the same tolerance model);
4. the conventions at kinks (relu'(0) = 0, abs'(0) = 0, sqrt_clamp' = 0 for x <= 0,
   clamp' = 1 only on the open interval, ties split 0.5/0.5) in every backend;
5. the TorchLean catalog's inconsistent backward formulas (§6.1) disagree with the
   derivative of the forward, while refrt's rule agrees.
"""
import mpmath
import numpy as np
import pytest

from refrt import backends, families
from refrt._prepare import prepare
from refrt.autodiff import (inner_product, measure_vjp, numerical_vjp, vjp_op,
                            vjp_tolerance, cotangent)
from refrt.backends.mpctx import make_context
from refrt.registry import OPS

from conftest import op_params

VJP_OPS = op_params(lambda spec: spec.vjp is not None)
ORACLE_CASES = [pytest.param(p.values[0], fam, id=f"{p.id}-{fam}")
                for p in VJP_OPS for fam in p.values[0].families]
BACKENDS = {"float32": "f32", "float64": "f64"}


def _require_bound(spec):
    missing = [t for t, table in (("FLOAT_VJP", backends.FLOAT_VJP), ("MP_VJP", backends.MP_VJP),
                                  ("FLOAT", backends.FLOAT), ("MP", backends.MP))
               if spec.name not in table]
    if missing:
        pytest.skip(f"{spec.name}: not bound yet in {', '.join(missing)} "
                    "(test_vjp_is_bound reports it)")


def _float_args(spec, arrays):
    """Inputs that are differentiable float arrays (perturbed by the numerical checks)."""
    return [k for k, (arg, a) in enumerate(zip(spec.args, arrays))
            if arg.differentiable and a.dtype.kind == "f"]


@pytest.mark.parametrize("spec", VJP_OPS)
def test_vjp_is_bound(spec):
    """An op that declares a VJP contract binds it in both backends."""
    assert spec.name in backends.FLOAT_VJP, f"{spec.name}: no float VJP kernel (FLOAT_VJP)"
    assert spec.name in backends.MP_VJP, f"{spec.name}: no mp VJP rule (MP_VJP)"


@pytest.mark.parametrize("spec,family", ORACLE_CASES)
def test_vjp_matches_mp_oracle(spec, family, dtype):
    """Float VJP within the tolerance model of the mp VJP rounded to the dtype."""
    _require_bound(spec)
    ulps, floor = vjp_tolerance(spec, dtype)
    for seed in (0, 1):
        for arg, (raw, model) in measure_vjp(spec, dtype, family, seed).items():
            assert model <= ulps, (
                f"{spec.name} {dtype.name} {family} seed={seed} input '{arg}': {model:g} ulp "
                f"> {ulps:g} (raw {raw:g} ulp, absolute floor {floor:g} eps*max|grad|)")


def _normal_draw(spec, dtype):
    family = "normal" if "normal" in spec.families else spec.families[0]
    return families.generate(spec, family, dtype, 0)


@pytest.mark.parametrize("spec", VJP_OPS)
def test_mp_vjp_matches_numerical_derivative(spec, dtype):
    """The mp VJP rule equals mpmath.diff of the mp forward, element by element."""
    _require_bound(spec)
    arrays, params = _normal_draw(spec, dtype)
    argnums = _float_args(spec, arrays)
    if not argnums:
        pytest.skip(f"{spec.name}: no differentiable float input")
    prec = 160
    prepared, full, _, shape = prepare(spec, arrays, params)
    g = cotangent(spec.name, shape, np.float64, "numerical")
    rule = vjp_op(spec.name, prepared, full, None, g, "mp", prec=prec)
    numeric = numerical_vjp(spec.name, prepared, full, g, argnums, prec=prec)
    ctx = make_context(prec)
    for k in argnums:
        want, got = numeric[k], rule[k]
        finite = [i for i, w in enumerate(want.ravel()) if ctx.isfinite(w)]
        assert finite, f"{spec.name}: no finite numerical derivative for '{spec.args[k].name}'"
        scale = max(abs(want.ravel()[i]) for i in finite) + 1
        worst = max(abs(got.ravel()[i] - want.ravel()[i]) for i in finite) / scale
        assert worst < ctx.ldexp(1, -100), (
            f"{spec.name} '{spec.args[k].name}': mp VJP differs from mpmath.diff by "
            f"{mpmath.nstr(worst, 5)} (relative to max|grad| + 1)")


@pytest.mark.parametrize("spec", VJP_OPS)
def test_inner_product_identity(spec, dtype):
    """<J u, v> = <u, Jᵀ v>: exactly (to 2**-100) for the mp rule, within the tolerance
    model for the float kernel."""
    _require_bound(spec)
    arrays, params = _normal_draw(spec, dtype)
    argnums = _float_args(spec, arrays)
    if not argnums:
        pytest.skip(f"{spec.name}: no differentiable float input")
    r = inner_product(spec.name, arrays, params, argnums, seed=1)
    assert abs(r["lhs"] - r["rhs"]) <= mpmath.ldexp(1, -100) * (r["abs_terms"] + 1), (
        f"{spec.name}: mp rule <Ju,v> = {mpmath.nstr(r['lhs'], 20)} but <u,J^T v> = "
        f"{mpmath.nstr(r['rhs'], 20)}")
    # the float kernel: each component within the tolerance model of vjp_tolerance
    ulps, floor = vjp_tolerance(spec, dtype)
    f = inner_product(spec.name, arrays, params, argnums, seed=1, backend=BACKENDS[dtype.name])
    scale = max(float(f["max_cot"]), f["max_v"] if spec.kind == "softmax" else 0.0)
    eps = float(np.finfo(dtype).eps)
    bound = eps * (ulps * float(f["abs_terms"]) + floor * float(f["l1_u"]) * scale) + 1e-300
    diff = abs(float(f["lhs"] - f["rhs"]))
    assert diff <= bound, (
        f"{spec.name} {dtype.name}: float kernel <u,J^T v> = {float(f['rhs'])!r}, "
        f"<Ju,v> = {float(f['lhs'])!r}, |diff| {diff:g} > {bound:g}")


# (op, inputs, params, expected cotangents for g = 1): the conventions at kinks
KINKS = [
    ("relu", ([0.0, -0.0, 1.0, -1.0],), {}, ([0.0, 0.0, 1.0, 0.0],)),
    ("abs", ([0.0, -0.0, 2.0, -2.0],), {}, ([0.0, 0.0, 1.0, -1.0],)),
    ("sqrt_clamp", ([0.0, -0.0, -1.0, 4.0],), {}, ([0.0, 0.0, 0.0, 0.25],)),
    ("clamp", ([-1.0, 1.0, 0.0, 2.0, -2.0],), {"lo": -1.0, "hi": 1.0},
     ([0.0, 0.0, 1.0, 0.0, 0.0],)),
    ("maximum", ([1.0, 2.0, 0.0], [1.0, 1.0, 3.0]), {}, ([0.5, 1.0, 0.0], [0.5, 0.0, 1.0])),
    ("minimum", ([1.0, 2.0, 0.0], [1.0, 1.0, 3.0]), {}, ([0.5, 0.0, 1.0], [0.5, 1.0, 0.0])),
    ("amax", ([1.0, 3.0, 3.0, 2.0],), {"axis": None}, ([0.0, 0.5, 0.5, 0.0],)),
    ("amin", ([1.0, 3.0, 1.0, 2.0],), {"axis": None}, ([0.5, 0.0, 0.5, 0.0],)),
]


@pytest.mark.parametrize("name,inputs,params,expected", KINKS, ids=[k[0] for k in KINKS])
@pytest.mark.parametrize("backend", ["f32", "f64", "mp"])
def test_conventions_at_kinks(name, inputs, params, expected, backend):
    """The documented conventions hold exactly in every backend."""
    spec = OPS.get(name)
    if spec is None:
        pytest.skip(f"{name} is not in the registry")
    _require_bound(spec)
    dtype = np.float32 if backend == "f32" else np.float64
    arrays = [np.array(v, dtype=dtype) for v in inputs]
    _, _, _, shape = prepare(spec, arrays, dict(params))
    g = np.ones(shape, dtype=dtype)
    got = vjp_op(name, arrays, params, None, g, backend, prec=64)
    for arg, gi, want in zip(spec.args, got, expected):
        values = [float(v) for v in np.ravel(gi)]
        assert values == want, f"{name} {backend} '{arg.name}': got {values}, want {want}"


# ------------------------------------------------------------------ catalog §6.1
def _private(prec=200):
    return make_context(prec)


def test_catalog_cosine_derivative_is_wrong():
    """Catalog §6.1(4): TorchLean's cosine-similarity derivative uses ‖p‖²‖t‖; the
    derivative of 1 - <p,t>/(‖p‖‖t‖) needs ‖p‖³‖t‖ (mpmath.diff decides)."""
    ctx = _private()
    p = [ctx.mpf(v) for v in (0.5, -1.25, 2.0)]
    t = [ctx.mpf(v) for v in (1.5, 0.75, -0.5)]
    norm = lambda v: ctx.sqrt(ctx.fsum(x * x for x in v))
    dot = lambda a, b: ctx.fsum(x * y for x, y in zip(a, b))

    def loss_at(i, x):
        q = list(p)
        q[i] = x
        return 1 - dot(q, t) / (norm(q) * norm(t))

    def rule(power):  # c1·p − t/denom with c1 = <p,t>/(‖p‖^power ‖t‖)
        c1 = dot(p, t) / (norm(p) ** power * norm(t))
        return [c1 * pi - ti / (norm(p) * norm(t)) for pi, ti in zip(p, t)]

    numeric = [ctx.diff(lambda x, i=i: loss_at(i, x), p[i]) for i in range(3)]
    catalog, correct = rule(2), rule(3)
    assert max(abs(a - b) for a, b in zip(correct, numeric)) < ctx.ldexp(1, -120)
    assert max(abs(a - b) for a, b in zip(catalog, numeric)) > ctx.mpf("0.01")


def test_catalog_ce_logits_derivative_needs_target_sum():
    """Catalog §6.1(5): crossEntropyLogitsDerivSpec = softmax − t is the derivative only
    when target rows sum to 1; refrt's rule softmax·Σt − t matches mpmath.diff."""
    ctx = _private()
    x = [ctx.mpf(v) for v in (0.3, -1.2, 2.5)]
    t = [ctx.mpf(v) for v in (0.5, 0.25, 0.75)]   # sums to 1.5
    lse = lambda v: ctx.log(ctx.fsum(ctx.exp(a) for a in v))

    def loss_at(i, xi):
        v = list(x)
        v[i] = xi
        return -ctx.fsum(tj * (vj - lse(v)) for tj, vj in zip(t, v))

    numeric = [ctx.diff(lambda a, i=i: loss_at(i, a), x[i]) for i in range(3)]
    soft = [ctx.exp(a - lse(x)) for a in x]
    catalog = [s - tj for s, tj in zip(soft, t)]
    general = [s * ctx.fsum(t) - tj for s, tj in zip(soft, t)]
    assert max(abs(a - b) for a, b in zip(general, numeric)) < ctx.ldexp(1, -120)
    assert max(abs(a - b) for a, b in zip(catalog, numeric)) > ctx.mpf("0.1")
    spec = OPS.get("cross_entropy_logits")
    if spec is None or spec.name not in backends.MP_VJP:
        pytest.skip("cross_entropy_logits mp VJP not bound yet (formula check above ran)")
    xs = np.array([[0.3, -1.2, 2.5]])
    ts = np.array([[0.5, 0.25, 0.75]])
    got = vjp_op("cross_entropy_logits", [xs, ts], {}, None, np.ones(()), "mp", prec=200)[0]
    assert max(abs(a - b) for a, b in zip(got.ravel(), numeric)) < ctx.ldexp(1, -120)


def test_catalog_tie_conventions_and_the_symmetric_derivative():
    """Catalog §6.1(2): at a tie max(x, y) has no derivative; the three TorchLean layers
    send the gradient left (OpSpec), right (proof node) or split 0.5/0.5 (runtime).  The
    central (symmetric) derivative that mpmath.diff computes is 0.5/0.5 — refrt's rule."""
    ctx = _private()
    a = ctx.mpf(1)
    d_left = ctx.diff(lambda x: max(x, a), a)
    d_right = ctx.diff(lambda y: max(a, y), a)
    assert d_left == ctx.mpf(0.5) and d_right == ctx.mpf(0.5)
    # the one-sided derivatives differ (1 from above, 0 from below): neither "ties to
    # the left" (OpSpec maxOp) nor "ties to b" (proof node maxElem) is the derivative
    assert ctx.diff(lambda x: max(x, a), a, direction=1) == 1
    assert ctx.diff(lambda x: max(x, a), a, direction=-1) == 0
    spec = OPS.get("maximum")
    if spec is None or spec.name not in backends.MP_VJP:
        pytest.skip("maximum mp VJP not bound yet (formula check above ran)")
    gx, gy = vjp_op("maximum", [np.array([1.0]), np.array([1.0])], {}, None, np.ones(1), "mp")
    assert (gx[0], gy[0]) == (d_left, d_right)
