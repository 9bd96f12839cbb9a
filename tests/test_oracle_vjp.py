"""refrt.oracle.vjp / refrt.oracle.grad: certified gradients (the mp VJP rules in the
oracle's interval and rational contexts under the Ziv loop), tested against gradients
derived by hand: exact rationals where the gradient is rational, an independent mpmath
evaluation of the hand-derived formula at 3000 bits otherwise, and the undecided path."""
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from refrt import ops, oracle
from refrt.autodiff import vjp_op
from refrt.metrics import ulp_distance
from refrt.oracle import UndecidedError
from refrt.rounding import format_of, round_mpf, round_rational

# every test here runs on both certified paths (Arb first, intervals only)
pytestmark = pytest.mark.usefixtures("oracle_engine")

F = Fraction


def _r(q, dtype=np.float64):
    q = F(q)
    return round_rational(q.numerator, q.denominator, format_of(dtype))


def _hp(fn, dtype=np.float64):
    """fn(ctx) -> nested list of mpf at 3000 bits (a private context), rounded once."""
    ctx = mpmath.MPContext()
    ctx.prec = 3000
    return np.vectorize(lambda v: round_mpf(v, dtype), otypes=[float])(
        np.array(fn(ctx), dtype=object))


RNG = np.random.default_rng(5)


def test_rational_gradients_are_exact(dtype):
    x = RNG.standard_normal(7).astype(dtype)
    y = RNG.standard_normal(7).astype(dtype)
    g = RNG.standard_normal(7).astype(np.float64)
    gx, gy = oracle.vjp("mul", x, y, cotangent=g, dtype=dtype)
    assert gx.tolist() == [_r(F(float(a)) * F(float(b)), dtype) for a, b in zip(g, y)]
    assert gy.tolist() == [_r(F(float(a)) * F(float(b)), dtype) for a, b in zip(g, x)]
    gx, gy = oracle.vjp("div", x, y, cotangent=g, dtype=dtype)
    assert gx.tolist() == [_r(F(float(a)) / F(float(b)), dtype) for a, b in zip(g, y)]
    assert gy.tolist() == [_r(-F(float(a)) * F(float(c)) / F(float(b)) ** 2, dtype)
                           for a, b, c in zip(g, y, x)]
    a = RNG.standard_normal((3, 4)).astype(dtype)
    b = RNG.standard_normal((4, 2)).astype(dtype)
    gm = RNG.standard_normal((3, 2))
    ga, gb = oracle.vjp("matmul", a, b, cotangent=gm, dtype=dtype)
    want = [[_r(sum(F(float(gm[i, k])) * F(float(b[j, k])) for k in range(2)), dtype)
             for j in range(4)] for i in range(3)]
    assert ga.tolist() == want
    (gs,) = oracle.vjp("mean", a, axis=1, cotangent=np.array([1.0, -3.0, 0.1]), dtype=dtype)
    assert gs[1].tolist() == [_r(F(-3, 4), dtype)] * 4
    assert gs[2].tolist() == [_r(F(0.1) / 4, dtype)] * 4


def test_a_midpoint_is_decided_by_the_exact_pass():
    """d/dx (x y) = g y = 3 (1 + 2^-52) = 3 + 1.5 ulp: an exact tie, which an interval
    never decides; the rational pass rounds it to even (3 + 2^-50)."""
    x, y = np.array([2.0]), np.array([1.0 + 2.0 ** -52])
    gx, _ = oracle.vjp("mul", x, y, cotangent=np.array([3.0]))
    assert gx[0] == 3.0 + 2.0 ** -50


def _softmax_rows(ctx, z):
    out = []
    for row in z:
        e = [ctx.exp(ctx.mpf(float(v))) for v in row]
        s = ctx.fsum(e)
        out.append([v / s for v in e])
    return out


def test_softmax_family_against_hand_derived():
    # (a row of equal logits has the rational p = 1/n, but the formula reaches it through
    # exp and log1p, so an exact tie there stays undecided: see docs/vjp_accuracy.md)
    z = np.array([[30.0, 0.0, -1.0, 2.5], [1.0, 2.0, 3.0, -300.0], [0.0, 0.0, 0.0, 1e-3]])
    g = RNG.standard_normal(z.shape)
    (gs,) = oracle.vjp("softmax", z, cotangent=g)
    (gl,) = oracle.vjp("log_softmax", z, cotangent=g)

    def softmax_vjp(ctx):
        p = _softmax_rows(ctx, z)
        rows = []
        for pr, gr in zip(p, g):
            s = ctx.fsum(pj * float(gj) for pj, gj in zip(pr, gr))
            rows.append([pj * (float(gj) - s) for pj, gj in zip(pr, gr)])
        return rows

    def log_softmax_vjp(ctx):
        p = _softmax_rows(ctx, z)
        return [[float(gj) - pj * ctx.fsum(float(v) for v in gr) for pj, gj in zip(pr, gr)]
                for pr, gr in zip(p, g)]

    assert np.array_equal(gs, _hp(softmax_vjp))
    assert np.array_equal(gl, _hp(log_softmax_vjp))


@pytest.mark.parametrize("kind", ["normal", "above10", "above30", "uniform300"])
def test_cross_entropy_gradient_reproducer_4(kind, dtype):
    """(softmax(z) sum(t) - t) / m for 16x8 one-hot rows, certified, against the
    hand-derived formula at 3000 bits; the float kernel within 2 ulp of it (was up to
    7e8 ulp in float32 and 3e11 in float64)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((16, 8))
    k = rng.integers(0, 8, 16)
    if kind == "above10":
        z[np.arange(16), k] = z.max(axis=1) + 10
    elif kind == "above30":
        z[np.arange(16), k] = z.max(axis=1) + 30
    elif kind == "uniform300":
        z = rng.uniform(-300, 300, (16, 8))
    z = z.astype(dtype)
    t = np.zeros((16, 8), dtype=dtype)
    t[np.arange(16), k] = 1.0
    gz, gt = oracle.vjp("cross_entropy_logits", z, t, cotangent=np.array(1.0), dtype=dtype)

    def hand(ctx):
        p = _softmax_rows(ctx, z)
        return [[(pj * float(sum(tr)) - float(tj)) / 16 for pj, tj in zip(pr, tr)]
                for pr, tr in zip(p, t)]

    assert np.array_equal(gz, _hp(hand, dtype))
    got = ops.cross_entropy_logits(z, t)
    kernel = vjp_op("cross_entropy_logits", [z, t], {}, got, np.asarray(1.0, dtype))[0]
    assert ulp_distance(kernel, gz, dtype).max() <= 2


def test_bce_with_logits_against_hand_derived():
    x = np.array([40.0, -40.0, 0.0, 3.0, -700.0, 700.0])
    t = np.array([1.0, 0.0, 0.5, 0.25, 1.0, 0.0])
    gx, gt = oracle.vjp("bce_with_logits", x, t, cotangent=np.array(2.0))

    def hand(ctx):
        return [2 * (1 / (1 + ctx.exp(-ctx.mpf(float(v)))) - float(tv)) / 6
                for v, tv in zip(x, t)]

    assert np.array_equal(gx, _hp(hand))
    assert gt.tolist() == [_r(-2 * F(float(v)) / 6) for v in x]


def test_grad_of_a_program():
    a = np.array([0.5, -1.0, 2.0])
    b = np.array([3.0, 0.25, -1.5])

    def f(a, b):
        return ops.sum(ops.mul(ops.exp(a), b))

    ga, gb = oracle.grad(f, a, b)
    assert np.array_equal(ga, _hp(lambda ctx: [ctx.exp(float(u)) * float(v) for u, v in zip(a, b)]))
    assert np.array_equal(gb, _hp(lambda ctx: [ctx.exp(float(u)) for u in a]))
    assert np.array_equal(oracle.grad(f, a, b, argnums=1), gb)


def test_the_undecided_path():
    """At max_prec = 55 bits (the least allowed for float64) the intervals of exp's
    gradient are too wide to decide most elements: they raise by default, or come back
    NaN with their mask; at the default cap every element is decided."""
    x = np.linspace(0.1, 3.0, 24)
    with pytest.raises(UndecidedError) as err:
        oracle.vjp("exp", x, max_prec=55)
    assert err.value.enclosure.undecided.any()
    (v,), (mask,) = oracle.vjp("exp", x, max_prec=55, on_undecided="nan",
                               return_undecided=True)
    assert mask.any() and np.isnan(v[mask]).all() and not np.isnan(v[~mask]).any()
    (full,) = oracle.vjp("exp", x)
    assert np.array_equal(v[~mask], full[~mask])
    assert np.array_equal(full, _hp(lambda ctx: [ctx.exp(float(u)) for u in x]))
    with pytest.raises(UndecidedError):
        oracle.grad(lambda a: ops.sum(ops.exp(a)), x, max_prec=55)


def test_vjp_shapes_and_errors():
    (g,) = oracle.vjp("softmax", np.empty((3, 0)))
    assert g.shape == (3, 0)
    gz, gt = oracle.vjp("cross_entropy_logits", np.ones((2, 3)), np.array([0, 2]))
    assert gt is None and gz.shape == (2, 3)
    with pytest.raises(ValueError, match="cotangent"):
        oracle.vjp("exp", np.ones(3), cotangent=np.ones(4))


def test_vjp_after_the_op_functions_are_cached():
    """oracle.sum / oracle.abs / oracle.pow are cached as module globals on first use;
    they must not shadow the builtins the gradient code uses."""
    assert oracle.sum(np.ones(3)) == 3.0 and oracle.abs(np.array([-1.0]))[0] == 1.0
    (g,) = oracle.vjp("exp", np.zeros(2))
    assert g.tolist() == [1.0, 1.0]
