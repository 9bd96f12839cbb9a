"""Traced graphs and the reverse walk: recording, evaluation on f32/f64/mp, gradient
accumulation, preconditions reported with the user's line, composite graphs compared
across backends, the seed's autograd-domain example, and clear errors for what cannot be
traced."""
import inspect

import numpy as np
import pytest

from refrt import backends, ops
from refrt._prepare import prepare
from refrt.autodiff import grad, graph_tolerance, vjp, vjp_op
from refrt.backends.mpctx import make_context
from refrt.graph import TraceError, trace
from refrt.registry import OPS
from refrt.rounding import round_array

HOOKED = "current_trace" in inspect.getsource(ops.evaluate)
pytestmark = pytest.mark.skipif(not HOOKED, reason="refrt.ops.evaluate lacks the trace hook "
                                "(see refrt/graph.py module docstring)")
HERE = __file__


def _need(*names, mp=True):
    tables = [backends.FLOAT, backends.FLOAT_VJP] + ([backends.MP, backends.MP_VJP] if mp else [])
    missing = sorted({n for n in names for t in tables if n not in t})
    if missing:
        pytest.skip(f"ops not bound yet: {', '.join(missing)}")


def _line_of(text):
    lines = open(HERE).read().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def two_exps(x):
    y = ops.exp(x)  # LINE-A
    return ops.exp(y)


def test_trace_records_ops_inputs_and_locations():
    """Each node has its op name, input slots, output shape/dtype and the user's file:line."""
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    g = trace(two_exps, x)
    assert [n.op for n in g.nodes] == ["exp", "exp"]
    assert g.nodes[0].inputs == (0,) and g.nodes[1].inputs == (g.nodes[0].output,)
    assert g.nodes[0].location == f"{HERE}:{_line_of('# LINE-A')}"
    assert g.nodes[1].shape == (5,) and g.nodes[1].dtype == np.float32
    assert "exp(%0)" in str(g)


@pytest.mark.parametrize("backend", ["f32", "f64", "mp"])
def test_evaluate_matches_direct_ops(backend):
    """graph.evaluate on each backend equals calling the ops directly on that backend."""
    x = np.linspace(-1, 1, 7)
    g = trace(two_exps, x)
    got = g.evaluate(x, backend=backend)
    if backend == "mp":
        ctx = make_context(256)
        want = [ctx.exp(ctx.exp(ctx.mpf(float(v)))) for v in x]
        assert got.dtype == object
        assert round_array(got, "float64").tolist() == round_array(np.array(want), "float64").tolist()
    else:
        xd = x.astype(np.float32 if backend == "f32" else np.float64)
        assert np.array_equal(got, ops.exp(ops.exp(xd)))


def test_reused_value_accumulates_its_contributions():
    """A value read by two consumers gets the sum of both cotangents: bitwise the sum of
    the per-node VJPs chained by hand."""
    x = np.linspace(-2, 2, 6)
    out, vjp_fn = vjp(lambda x: (ops.exp(x), ops.exp(ops.exp(x))), x)
    g1, g2 = np.full(6, 0.5), np.full(6, 2.0)
    (gx,) = vjp_fn(g1, g2)
    direct = vjp_op("exp", [x], {}, None, g1)[0]
    inner = vjp_op("exp", [ops.exp(x)], {}, None, g2)[0]
    chained = vjp_op("exp", [x], {}, None, inner)[0]
    assert np.array_equal(gx, direct + chained)


def test_reused_value_through_a_binary_op():
    """mul(y, y): both operand cotangents land on y and are summed."""
    _need("mul", "exp", mp=False)
    x = np.linspace(-2, 2, 6)
    y = ops.exp(x)
    gy = sum(vjp_op("mul", [y, y], {}, None, np.ones(6)))
    want = vjp_op("exp", [x], {}, None, gy)[0]
    (gx,) = vjp(lambda x: (lambda y: ops.mul(y, y))(ops.exp(x)), x)[1](np.ones(6))
    assert np.array_equal(gx, want)


@pytest.mark.parametrize("backend", ["f32", "f64", "mp"])
def test_grad_of_a_scalar_loss(backend):
    """grad seeds the 0-d output with 1 and chains the node VJPs."""
    _need("sum", "exp")
    x = np.linspace(-1, 1, 4)
    if backend == "f32":
        x = x.astype(np.float32)
    gx = grad(lambda x: ops.sum(ops.exp(x)))(x, backend=backend)
    y = ops.exp(x, backend=None if backend != "mp" else "mp")
    if backend == "mp":
        gs = vjp_op("sum", [x], {}, None, np.ones(()), "mp")[0]
        want = vjp_op("exp", [x], {}, None, gs, "mp")[0]
        assert round_array(gx, "float64").tolist() == round_array(want, "float64").tolist()
    else:
        gs = vjp_op("sum", [y], {}, None, np.ones((), x.dtype))[0]
        assert np.array_equal(gx, vjp_op("exp", [x], {}, None, gs)[0])


def test_grad_rejects_non_scalar_output():
    """Differentiating a non-scalar output with grad names the shape and the way out."""
    with pytest.raises(ValueError, match=r"0-d \(scalar\).*shape \(3,\).*refrt.vjp"):
        grad(lambda x: ops.exp(x))(np.ones(3))


def test_control_flow_on_traced_value_names_the_line():
    def f(x):
        y = ops.exp(x)
        if y:  # LINE-B
            return y
        return y
    with pytest.raises(TraceError, match=f"{HERE}:{_line_of('# LINE-B')}.*control flow"):
        trace(f, np.ones(3))


def test_numpy_on_traced_value_names_the_line():
    def f(x):
        return np.sin(ops.exp(x))  # LINE-C
    with pytest.raises(TraceError, match=f":{_line_of('# LINE-C')}: NumPy operation np.sin"):
        trace(f, np.ones(3))

    def g(x):
        return float(ops.exp(x))  # LINE-D
    with pytest.raises(TraceError, match=f":{_line_of('# LINE-D')}: float()"):
        trace(g, np.ones(3))

    def h(x):
        return ops.exp(x) + 1.0  # LINE-E
    with pytest.raises(TraceError, match=f":{_line_of('# LINE-E')}: operator 'add'"):
        trace(h, np.ones(3))


def test_escaped_traced_value_and_bad_returns():
    kept = []

    def f(x):
        kept.append(x)
        return ops.exp(x)
    trace(f, np.ones(2))
    with pytest.raises(TraceError, match="conversion to a NumPy array"):
        ops.exp(kept[0])
    with pytest.raises(TraceError, match="must return traced values"):
        trace(lambda x: np.ones(2), np.ones(2))


def test_shape_error_inside_trace_names_the_line():
    """Op errors raised while recording carry the user's line."""
    _need("add", mp=False)
    with pytest.raises(ValueError, match=r":\d+: add: argument 'y'"):
        trace(lambda x, y: ops.add(x, y), np.ones(3), np.ones(4))


def test_graph_inputs_are_shape_checked():
    g = trace(two_exps, np.ones(3))
    with pytest.raises(ValueError, match=r"input 0 expected shape \(3,\)"):
        g.evaluate(np.ones(4))


def test_constants_are_captured_and_cast():
    """Arrays the function closes over become constants, cast with the backend."""
    _need("mul", "exp", mp=False)
    c = np.array([1.0, 2.0, 3.0])
    g = trace(lambda x: ops.mul(ops.exp(x), c), np.zeros(3))
    c[:] = 0  # the graph kept a copy
    assert g.evaluate(np.zeros(3)).tolist() == [1.0, 2.0, 3.0]
    assert g.evaluate(np.zeros(3, np.float32), backend="f32").dtype == np.float32


def test_operators_map_to_ops():
    _need("add", "sub", "mul", "neg", "scale", mp=False)
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    g = trace(lambda a, b: -(a + b) * (a - b) * 2.0, x, y)
    assert [n.op for n in g.nodes] == ["add", "neg", "sub", "mul", "scale"]
    assert g.evaluate(x, y).tolist() == (-(x + y) * (x - y) * 2.0).tolist()


# ---------------------------------------------------------------- preconditions
PRE_CASES = [pytest.param(spec, case, id=f"{spec.name}-{i}")
             for spec in OPS.values() if spec.preconditions
             for i, case in enumerate(spec.special_cases)]


@pytest.mark.parametrize("spec,case", PRE_CASES)
def test_violated_preconditions_are_reported(spec, case):
    """A special case that violates a precondition is reported, with the node and the
    user's line, by graph evaluation and by vjp (not raised)."""
    _need(spec.name, mp=False)
    arrays = [np.array(v if isinstance(v, tuple) else [v], dtype=np.float64)
              for v in case.inputs]
    if any(a.role in ("class_target", "index") for a in spec.args):
        pytest.skip("class-id or index inputs")
    _, full, _, _ = prepare(spec, arrays, dict(case.params))
    expected = [p for p in spec.preconditions if p.violated(arrays, full)]
    if not expected:
        pytest.skip("this case meets every precondition")
    fn = lambda *a: getattr(ops, spec.name)(*a, **case.params)  # LINE-PRE
    g = trace(fn, *arrays)
    g.evaluate(*arrays, backend="f64")
    where = f"{HERE}:{_line_of('# LINE-PRE')}"
    assert [(v.node.op, v.location, v.precondition) for v in g.violations] == \
        [(spec.name, where, p) for p in expected]
    _, vjp_fn = vjp(fn, *arrays)
    assert [v.precondition for v in vjp_fn.violations] == expected


# ------------------------------------------------------------ composite graphs
def _compare_backends(fn, inputs, argnums):
    """Gradients on f32 and f64 vs the mp gradient from the same float inputs, relative
    to the largest component, within ``graph_tolerance``."""
    graph = trace(fn, *inputs)
    for dtype, backend in ((np.float32, "f32"), (np.float64, "f64")):
        ins = [a.astype(dtype) if a.dtype.kind == "f" else a for a in inputs]
        got = grad(fn, argnums)(*ins, backend=backend)
        ref = grad(fn, argnums)(*ins, backend="mp", prec=200)
        tol = graph_tolerance(graph, dtype)
        for k, gk, rk in zip(argnums, got, ref):
            r = round_array(rk, "float64")
            err = np.max(np.abs(gk.astype(np.float64) - r)) / max(np.max(np.abs(r)), 1e-300)
            assert err <= tol, f"{backend} input {k}: relative error {err:g} > {tol:g}"


def mlp_loss(x, w1, b1, w2, b2, w3, b3, ids):
    h = ops.relu(ops.linear(x, w1, b1))
    h = ops.tanh(ops.linear(h, w2, b2))
    return ops.cross_entropy_logits(ops.linear(h, w3, b3), ids)


def test_mlp_with_cross_entropy_on_three_backends():
    _need("linear", "relu", "tanh", "cross_entropy_logits")
    rng = np.random.default_rng(0)
    shapes = [(8, 5), (6, 5), (6,), (4, 6), (4,), (3, 4), (3,)]
    inputs = [rng.standard_normal(s) for s in shapes] + [rng.integers(0, 3, 8)]
    _compare_backends(mlp_loss, inputs, tuple(range(7)))
    assert grad(mlp_loss, 7)(*inputs) is None   # integer class ids get no gradient


def test_layer_norm_block_on_three_backends():
    _need("layer_norm", "mul", "sum", "gelu")
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 8))
    fn = lambda x, gamma, beta: ops.sum(ops.mul(ops.gelu(ops.layer_norm(x, gamma, beta)), w))
    inputs = [rng.standard_normal((4, 8)) * 3, rng.standard_normal(8), rng.standard_normal(8)]
    _compare_backends(fn, inputs, (0, 1, 2))


def test_attention_scores_with_softmax_on_three_backends():
    _need("matmul", "transpose", "scale", "softmax", "sum", "mul")
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 3))

    def attention(q, k, v):
        scores = ops.scale(ops.matmul(q, ops.transpose(k)), c=1 / np.sqrt(4.0))
        return ops.sum(ops.mul(ops.matmul(ops.softmax(scores), v), w))
    inputs = [rng.standard_normal((5, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 3))]
    _compare_backends(attention, inputs, (0, 1, 2))


# ----------------------------------------------------- seed 001: autograd domains
def unsafe_div_then_mask(mask, n, d):
    return ops.sum(ops.mul(mask, ops.div(n, d)))


def mask_after_safe_div(mask, n, d):
    return ops.sum(ops.mul(mask, ops.safe_div(n, d)))


@pytest.mark.parametrize("backend", ["f32", "f64"])
def test_seed_autograd_domain_example(backend):
    """Masking after a raw division: the masked entry's cotangent is 0, but the backward
    of div multiplies it by 1/d = inf, so the gradient is NaN there (with a numeric mask
    the forward is NaN too: 0 * inf).  The safe division recorded before the mask gives
    a finite loss and a finite gradient, 0 at the masked entry."""
    _need("mul", "div", "safe_div", "sum", mp=False)
    dt = np.float32 if backend == "f32" else np.float64
    mask = np.array([1.0, 0.0, 1.0], dt)
    n = np.array([2.0, 3.0, 4.0], dt)
    d = np.array([4.0, 0.0, 2.0], dt)
    out, vjp_fn = vjp(unsafe_div_then_mask, mask, n, d, backend=backend)
    _, gn, gd = vjp_fn(np.ones((), dt))
    assert np.isnan(gn[1]) and np.isnan(gd[1])
    assert np.isfinite(gn[[0, 2]]).all() and np.isfinite(gd[[0, 2]]).all()
    assert [v.precondition.name for v in vjp_fn.violations] == ["y != 0"]
    out, vjp_fn = vjp(mask_after_safe_div, mask, n, d, backend=backend)
    gm, gn, gd = vjp_fn(np.ones((), dt))
    assert np.isfinite(out) and np.isfinite(gm).all()
    assert np.isfinite(gn).all() and np.isfinite(gd).all() and gn[1] == 0 and gd[1] == 0
    assert vjp_fn.violations == []
