"""Issue 10 ops beyond the generic registry tests: catalog §6.1(4) on the real op, the
places where refrt departs from PyTorch on purpose, and the stable forms."""
import math

import mpmath
import numpy as np
import pytest

from refrt import ops, oracle
from refrt.autodiff import vjp_op
from refrt.backends.mpctx import make_context
from refrt.metrics import ulp_distance


def _mp_loss(ctx, p, t, eps):
    """1 - <p, t> / (max'(|p|, eps) max'(|t|, eps)) in ctx (TorchLean cosineSimilaritySpec)."""
    dot = ctx.fsum(a * b for a, b in zip(p, t))
    norm = lambda v: ctx.sqrt(ctx.fsum(a * a for a in v))
    clamp = lambda a: a if a > eps else ctx.mpf(eps)
    return 1 - dot / (clamp(norm(p)) * clamp(norm(t)))


def test_cosine_loss_vjp_is_the_derivative_and_the_catalog_rule_is_not():
    """Catalog §6.1(4) on the op itself: refrt's mp and float VJPs of cosine_similarity_loss
    equal mpmath.diff of the forward; TorchLean's rule c1 = <p,t> / (|p|^2 |t|) does not
    (the correct factor is |p|^3 |t|)."""
    ctx = make_context(200)
    p = np.array([0.5, -1.25, 2.0])
    t = np.array([1.5, 0.75, -0.5])
    eps = float(np.float64(1e-6))
    P, T = [ctx.mpf(v) for v in p], [ctx.mpf(v) for v in t]

    def at(i, x):
        q = list(P)
        q[i] = x
        return _mp_loss(ctx, q, T, eps)

    numeric = [ctx.diff(lambda x, i=i: at(i, x), P[i]) for i in range(3)]
    mp_rule = vjp_op("cosine_similarity_loss", [p, t], {}, None, np.ones(()), "mp", prec=200)[0]
    assert max(abs(a - b) for a, b in zip(mp_rule, numeric)) < ctx.ldexp(1, -150)
    f64 = vjp_op("cosine_similarity_loss", [p, t], {}, None, np.ones(()), "f64")[0]
    assert np.all(ulp_distance(f64, np.array([float(v) for v in numeric]), np.float64) <= 4)
    # TorchLean: d(1 - cos)/dp = c1 p - t / denom with c1 = <p,t> / (|p|^2 |t|)
    dot = ctx.fsum(a * b for a, b in zip(P, T))
    npn = ctx.sqrt(ctx.fsum(a * a for a in P))
    ntn = ctx.sqrt(ctx.fsum(b * b for b in T))
    catalog = [dot / (npn ** 2 * ntn) * a - b / (npn * ntn) for a, b in zip(P, T)]
    assert max(abs(a - b) for a, b in zip(catalog, numeric)) > ctx.mpf("0.01")


def test_cosine_similarity_clamp_gradient_differs_from_pytorch():
    """Below eps the clamped norm is the constant eps, so d cos / dx = y / (eps |y|).
    PyTorch 2.13 clamps the norm in place under no_grad and differentiates the unclamped
    norm: its gradient is not the derivative of its own forward.  refrt follows the
    derivative (checked against mpmath.diff of the forward)."""
    x = np.array([[3e-9, 4e-9]])
    y = np.array([[1.0, 0.0]])
    params = {"axis": -1, "eps": 1e-8}
    assert ops.cosine_similarity(x, y, **params)[0] == pytest.approx(0.3, rel=1e-15)
    got = vjp_op("cosine_similarity", [x, y], params, None, np.ones(1), "f64")[0]
    ctx = make_context(200)
    eps = ctx.mpf(1e-8)

    def f(i, v):
        q = [ctx.mpf(a) for a in x[0]]
        q[i] = v
        n = ctx.sqrt(q[0] ** 2 + q[1] ** 2)
        return q[0] / (n if n > eps else eps)

    numeric = [float(ctx.diff(lambda v, i=i: f(i, v), ctx.mpf(x[0, i]))) for i in range(2)]
    np.testing.assert_allclose(got[0], numeric, rtol=1e-14, atol=1e-6)
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.cosine_similarity(tx, torch.tensor(y), dim=1, eps=1e-8).sum().backward()
    assert not np.allclose(tx.grad.numpy()[0], numeric, rtol=1e-3)   # [8.2e7, -2.4e7]


def test_cosine_loss_nearly_parallel_keeps_its_digits():
    """1 - cos from the double-word cosine: correctly rounded where 1 - fl(cos) is 0."""
    p = np.array([1.0, 2.0 ** -30, 3.0])
    t = np.array([1.0, 0.0, 3.0])
    got = ops.cosine_similarity_loss(p, t)
    want = oracle.cosine_similarity_loss(p, t)
    naive = 1.0 - float(p @ t / (np.linalg.norm(p) * np.linalg.norm(t)))
    assert want > 0 and abs(naive - want) > 1000 * want     # the naive form: 2**-52 vs 4e-20
    assert ulp_distance(np.array([got]), np.array([want]), np.float64)[0] <= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_erf_matches_torch_default_gelu(dtype):
    """gelu_erf is torch.nn.functional.gelu(x) (approximate='none') within 4 ulp of the
    oracle; torch's own float32 result is compared against the oracle too."""
    torch = pytest.importorskip("torch")
    x = np.linspace(-12, 6, 997).astype(dtype)
    want = oracle.gelu_erf(x, dtype=dtype)
    ours = ops.gelu_erf(x)
    theirs = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert ulp_distance(ours, want, dtype).max() <= 4
    # PyTorch computes x/2 (1 + erf(x/sqrt2)): the negative tail cancels
    assert ulp_distance(theirs, want, dtype).max() >= ulp_distance(ours, want, dtype).max()


def test_log_sigmoid_sign_of_zero_and_tail():
    """log_sigmoid(+inf) = -0 (the limit from below; PyTorch returns +0), and the
    x < 0 branch x - log1p(e^x) has no cancellation: log_sigmoid(-1000) = -1000."""
    out = ops.log_sigmoid(np.array([np.inf, 800.0, -1000.0, 30.0]))
    assert math.copysign(1, out[0]) < 0 and math.copysign(1, out[1]) < 0
    assert out[2] == -1000.0
    assert out[3] == -math.log1p(math.exp(-30.0))


def test_prod_gradient_with_zeros_and_overflowing_partials():
    """prod's VJP is g * prod(others): one zero -> only that slot is non-zero, two zeros
    -> all zero (PyTorch's convention); partial products that over/underflow do not
    matter (the exponent is carried apart)."""
    x = np.array([2.0, 0.0, 3.0, 4.0])
    g = vjp_op("prod", [x], {"axis": None}, None, np.ones(()), "f64")[0]
    assert g.tolist() == [0.0, 24.0, 0.0, 0.0]
    x2 = np.array([2.0, 0.0, 3.0, 0.0])
    assert vjp_op("prod", [x2], {"axis": None}, None, np.ones(()), "f64")[0].tolist() == [0.0] * 4
    big = np.array([2.0 ** 600, 2.0 ** 600, 2.0 ** -1000, 3.0])
    assert ops.prod(big) == 3.0 * 2.0 ** 200
    gb = vjp_op("prod", [big], {"axis": None}, None, np.ones(()), "f64")[0]
    # d/dx2 = 3 * 2**1200 overflows: inf, as the exact value rounded to float64
    assert gb.tolist() == [3.0 * 2.0 ** -400, 3.0 * 2.0 ** -400, math.inf, 2.0 ** 200]


def test_prod_along_axis_matches_numpy_where_exact():
    x = np.arange(1.0, 13.0).reshape(3, 4)
    assert np.array_equal(ops.prod(x, axis=0), np.prod(x, axis=0))
    assert np.array_equal(ops.prod(x, axis=1), np.prod(x, axis=1))


def test_log_cosh_small_differences_do_not_cancel():
    """log cosh(d) ~ d^2 / 2 for small d: the textbook |d| + log1p(e^-2|d|) - log 2 keeps
    only ~5 digits at d = 1e-6 in float64, refrt's log1p(2 sinh^2(d/2)) is within 4 ulp."""
    p = np.array([1e-6, 3e-4, 0.5])
    t = np.zeros(3)
    got = ops.log_cosh_loss(p, t)
    want = oracle.log_cosh_loss(p, t)
    assert ulp_distance(np.array([got]), np.array([want]), np.float64)[0] <= 4
    d = 1e-6
    textbook = d + math.log1p(math.exp(-2 * d)) - math.log(2)
    assert abs(textbook - d * d / 2) > 1e-5 * d * d / 2      # ~30 bits lost


def test_huber_is_delta_times_smooth_l1():
    """huber_loss(delta) == delta * smooth_l1_loss(beta=delta) (PyTorch's identity)."""
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=50), rng.normal(size=50)
    for delta in (0.5, 1.0, 2.0):
        a = ops.huber_loss(p, t, delta=delta)
        b = delta * ops.smooth_l1_loss(p, t, beta=delta)
        assert abs(a - b) <= 4 * np.finfo(np.float64).eps * abs(a)


def test_cross_entropy_all_ignored_is_zero_where_pytorch_gives_nan():
    """IgnoredLabelLoss: PyTorch's mean over zero active labels is 0 / 0 = NaN
    (pytorch#75181); refrt returns 0 (TorchLean meanDenom, labelContribution) and a zero
    gradient, in every backend."""
    x = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    ids = np.array([-100, -100])
    for backend in ("f32", "f64", "mp"):
        assert float(np.asarray(ops.evaluate("cross_entropy", x, ids, backend=backend, cast=True),
                                dtype=float)) == 0.0
        g = vjp_op("cross_entropy", [x.astype(np.float32) if backend == "f32" else x, ids], {},
                   None, np.ones(()), backend, prec=80)[0]
        assert all(float(v) == 0.0 for v in np.ravel(g))
    torch = pytest.importorskip("torch")
    assert math.isnan(torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(ids)).item())


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.7])
def test_cross_entropy_matches_torch(smoothing):
    """Class ids with ignored rows, and probabilities, with label smoothing: forward and
    logits gradient equal torch float64 to a few ulp; float64 kernel vs the oracle."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 5)) * 3
    ids = rng.integers(0, 5, 7)
    ids[[1, 4]] = 3 - 103                      # ignore_index = -100
    probs = rng.random((7, 5))
    probs /= probs.sum(axis=1, keepdims=True)
    for target in (ids, probs):
        got = ops.cross_entropy(x, target, label_smoothing=smoothing)
        want = oracle.cross_entropy(x, target, label_smoothing=smoothing)
        assert ulp_distance(np.array([got]), np.array([want]), np.float64)[0] <= 2
        tx = torch.tensor(x, requires_grad=True)
        ref = torch.nn.functional.cross_entropy(tx, torch.tensor(target),
                                                label_smoothing=smoothing)
        ref.backward()
        assert abs(got - ref.item()) <= 8 * np.finfo(np.float64).eps * abs(ref.item())
        g = vjp_op("cross_entropy", [x, target], {"label_smoothing": smoothing}, None,
                   np.ones(()), "f64")[0]
        np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12, atol=1e-15)
        gmp = vjp_op("cross_entropy", [x, target], {"label_smoothing": smoothing}, None,
                     np.ones(()), "mp", prec=120)[0]
        np.testing.assert_allclose(g, np.asarray(gmp, dtype=float), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss"])
def test_pairwise_loss_mean_survives_overflowing_terms(name, dtype):
    """|pred - target| of +-max overflows, the mean of 10 terms does not (losses2
    Design f: the exact rescue)."""
    from refrt import oracle
    M = np.finfo(dtype).max
    p = np.array([M] + [0.0] * 9, dtype)
    t = np.array([-M] + [0.5] * 9, dtype)
    got = np.asarray(ops.evaluate(name, p, t))
    want = np.asarray(oracle.evaluate(name, p, t, dtype=dtype))
    assert np.isfinite(got) and got == want, (got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_inf_minus_inf_terms(dtype):
    """exp(p) against t p of opposite overflowing signs: inf where exact, finite where the
    huge t p terms cancel between elements (was NaN)."""
    from refrt import oracle
    M = np.finfo(dtype).max
    for p, t in (([102.3, 2.3], [-M / 2, M / 2]), ([2.3, 2.3], [-M / 2, M / 2])):
        p, t = np.array(p, dtype), np.array(t, dtype)
        p[0] = p[0] if dtype == np.float32 else p[0] * 8     # exp overflows in float64 too
        got = np.asarray(ops.evaluate("poisson_nll_loss", p, t))
        want = np.asarray(oracle.evaluate("poisson_nll_loss", p, t, dtype=dtype))
        assert got == want, (p, t, got, want)


SOUND_CASES = {"sin": (1, {}), "cos": (1, {}), "erf": (1, {}), "gelu_erf": (1, {}),
               "leaky_relu": (1, {"negative_slope": 0.01}), "log_sigmoid": (1, {}),
               "prod": (1, {"axis": None}), "cosine_similarity": (2, {"axis": -1, "eps": 1e-8}),
               "cosine_similarity_loss": (2, {"eps": 1e-6}), "l1_loss": (2, {}),
               "huber_loss": (2, {"delta": 1.0}), "smooth_l1_loss": (2, {"beta": 1.0}),
               "log_cosh_loss": (2, {}), "hinge_loss": (2, {}), "poisson_nll_loss": (2, {})}


@pytest.mark.parametrize("name", sorted(SOUND_CASES))
def test_interval_transformer_contains_sampled_values(name):
    """analysis/transfer2.py: float64 results at random points of random boxes lie in
    the transformer's bounds (up to 1e-6 relative: the driver's widening covers more)."""
    from refrt.analysis.domain import ATensor
    from refrt.analysis.transfer import INTERVAL
    k, p = SOUND_CASES[name]
    rng = np.random.default_rng(10)
    for _ in range(40):
        sc = rng.choice([0.5, 3.0, 20.0])
        boxes = []
        for j in range(k):
            a = rng.normal(size=(3, 4)) * sc
            b = a + np.abs(rng.normal(size=(3, 4))) * sc * rng.choice([0.0, 0.1, 1.0])
            if name == "poisson_nll_loss" and j == 1:
                a, b = np.abs(a), np.abs(a) + (b - a)
            boxes.append((a, b))
        shape = np.shape(ops.evaluate(name, *[a for a, _ in boxes], **p))
        lo, hi = INTERVAL[name]([ATensor(a, b) for a, b in boxes], p, shape)[:2]
        for _ in range(5):
            xs = [a + (b - a) * rng.random(a.shape) for a, b in boxes]
            v = np.asarray(ops.evaluate(name, *xs, **p), np.float64)
            tol = 1e-6 * np.abs(v) + 1e-300
            assert np.all(v >= lo - tol) and np.all(v <= hi + tol), (name, v, lo, hi)
