"""Losses and normalisation: closed forms, formulation identities, edge inputs, errors.

Reference values come from the mp backend (or mpmath directly) rounded once; the ulp
budgets are the registry's (``spec.tol``), never constants chosen here.
"""
import math

import mpmath
import numpy as np
import pytest

from refrt import ops
from refrt.backends.mpctx import make_context
from refrt.errors import RefrtError, RefrtTypeError
from refrt.metrics import ulp_distance
from refrt.registry import OPS
from refrt.rounding import round_mpf


def _tol(name, dtype):
    return OPS[name].tol[np.dtype(dtype)]


def _ulps(got, want, dtype):
    return float(np.max(ulp_distance(np.asarray(got, dtype), np.asarray(want, dtype), dtype)))


def _rng(seed=0):
    return np.random.default_rng(seed)


def _mp_log_softmax(z, dtype):
    """log_softmax rows from mpmath (z_j - log sum exp z), rounded once to ``dtype``."""
    ctx = make_context(200)
    out = np.empty(z.shape, dtype=dtype)
    for r in range(z.shape[0]):
        row = [ctx.mpf(float(v)) for v in z[r]]
        lse = ctx.log(ctx.fsum([ctx.exp(v) for v in row]))
        out[r] = [round_mpf(v - lse, dtype) for v in row]
    return out


def _mp_value(fn, dtype):
    ctx = make_context(200)
    return round_mpf(fn(ctx), dtype)


# ---------------------------------------------------------------- closed forms

def test_closed_form_values(dtype):
    """Hand-computable values, each within the registry budget of the exact number."""
    f = dtype.type
    cases = [
        (ops.cross_entropy_logits(np.zeros((2, 4), dtype), np.eye(4, dtype=dtype)[:2]),
         math.log(4.0), "cross_entropy_logits"),
        (ops.bce_with_logits(np.zeros(3, dtype), np.full(3, 0.25, dtype)), math.log(2.0),
         "bce_with_logits"),
        (ops.binary_cross_entropy(np.full(2, 0.5, dtype), np.array([0.0, 1.0], dtype)),
         math.log(2.0), "binary_cross_entropy"),
        (ops.nll_loss(np.array([[-1.0, -3.0], [-2.0, -0.5]], dtype), np.array([1, 0])),
         2.5, "nll_loss"),
        (ops.mse_loss(np.array([1.0, 2.0, 4.0], dtype), np.array([0.0, 0.0, 1.0], dtype)),
         14.0 / 3.0, "mse_loss"),
        (ops.cross_entropy_probs(np.array([[0.25, 0.75]], dtype), np.array([[0.0, 1.0]], dtype)),
         -math.log(0.75), "cross_entropy_probs"),
    ]
    for got, want, name in cases:
        assert np.asarray(got).shape == ()
        assert _ulps(got, f(want), dtype) <= _tol(name, dtype) + 1, (name, got, want)


def test_kl_div_closed_form(dtype):
    """KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 log(4/3) + 1/2 log(2/3) ... against mpmath."""
    lp = np.log(np.array([[0.25, 0.75]], dtype))
    t = np.array([[0.5, 0.5]], dtype)
    want = _mp_value(lambda c: c.fsum([c.mpf(0.5) * (c.log(0.5) - c.mpf(float(v)))
                                       for v in lp[0]]), dtype)
    assert _ulps(ops.kl_div(lp, t), want, dtype) <= _tol("kl_div", dtype)


# ---------------------------------------------------------------- formulation identities

def test_nll_of_log_softmax_is_cross_entropy(dtype):
    """nll_loss(log_softmax(z), t) == cross_entropy_logits(z, t) (log_softmax from mp)."""
    rng = _rng(1)
    z = (rng.standard_normal((16, 10)) * 4).astype(dtype)
    t = rng.random((16, 10)).astype(dtype)
    t /= t.sum(axis=-1, keepdims=True)
    a = ops.nll_loss(_mp_log_softmax(z, dtype), t)
    b = ops.cross_entropy_logits(z, t)
    # the rounded log_softmax moves each term by <= 1/2 ulp: one more ulp of slack
    assert _ulps(a, b, dtype) <= _tol("cross_entropy_logits", dtype) + 1


def test_two_class_cross_entropy_is_bce_with_logits(dtype):
    """CE on logits (z0, z1) with target (1 - t, t) == bce_with_logits(z1 - z0, t)."""
    rng = _rng(2)
    z0 = np.round(rng.standard_normal(32) * 32) / 8          # z1 - z0 exact
    z1 = np.round(rng.standard_normal(32) * 32) / 8
    t = np.round(rng.random(32) * 64) / 64                   # 1 - t exact
    z = np.stack([z0, z1], axis=-1).astype(dtype)
    tt = np.stack([1 - t, t], axis=-1).astype(dtype)
    a = ops.cross_entropy_logits(z, tt)
    b = ops.bce_with_logits((z1 - z0).astype(dtype), t.astype(dtype))
    assert _ulps(a, b, dtype) <= 2 * _tol("bce_with_logits", dtype)


def test_kl_div_of_a_distribution_with_itself_is_zero(dtype):
    """kl_div(log p, p) vanishes up to the rounding of log p: |KL| <= tol * eps *
    sum |p log p| / m (each term's only error is log's rounding)."""
    rng = _rng(3)
    p = rng.random((8, 7)).astype(dtype) + dtype.type(0.05)
    p /= p.sum(axis=-1, keepdims=True)
    lp = np.log(p)
    kl = float(ops.kl_div(lp, p))
    bound = _tol("kl_div", dtype) * np.finfo(dtype).eps * float(np.sum(np.abs(p * lp))) / 8
    assert abs(kl) <= bound


def test_batch_norm_is_its_affine_fold(dtype):
    """batch_norm_inference == x * scale + bias with scale = gamma / sqrt(var + eps),
    bias = beta - mu * scale: the fold is evaluated exactly (mp) and rounded once; the
    float kernel stays within the registry budget of it."""
    rng = _rng(4)
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    mu, gamma, beta = ((rng.standard_normal(3) * 3).astype(dtype) for _ in range(3))
    var = (rng.random(3) * 4).astype(dtype)
    eps = float(dtype.type(1e-6))
    got = ops.batch_norm_inference(x, mu, var, gamma, beta)
    ctx = make_context(300)
    want = np.empty_like(x)
    for c in range(3):
        scale = ctx.mpf(float(gamma[c])) / ctx.sqrt(ctx.mpf(float(var[c])) + ctx.mpf(eps))
        bias = ctx.mpf(float(beta[c])) - ctx.mpf(float(mu[c])) * scale
        want[c] = [[round_mpf(ctx.mpf(float(v)) * scale + bias, dtype) for v in row]
                   for row in x[c]]
    assert _ulps(got, want, dtype) <= _tol("batch_norm_inference", dtype)


def test_batch_norm_channel_axis_one_matches_per_sample(dtype):
    """(N, C, spatial) with channel_axis=1 equals N separate (C, spatial) calls."""
    rng = _rng(5)
    x = rng.standard_normal((3, 4, 2, 2)).astype(dtype)
    stats = [rng.standard_normal(4).astype(dtype) for _ in range(4)]
    stats[1] = np.abs(stats[1])
    batched = ops.batch_norm_inference(x, *stats, channel_axis=1)
    for n in range(3):
        assert np.array_equal(batched[n], ops.batch_norm_inference(x[n], *stats))


@pytest.mark.parametrize("name", ["cross_entropy_logits", "cross_entropy_probs", "nll_loss"])
def test_class_ids_equal_one_hot_rows(name, dtype):
    """Integer class ids give bitwise the same loss as one-hot target rows."""
    rng = _rng(6)
    x = rng.standard_normal((9, 5)).astype(dtype)
    if name == "cross_entropy_probs":
        x = np.abs(x) / np.abs(x).sum(axis=-1, keepdims=True)
    elif name == "nll_loss":
        x = -np.abs(x)
    ids = rng.integers(0, 5, 9)
    one_hot = np.eye(5, dtype=dtype)[ids]
    assert ops.evaluate(name, x, ids) == ops.evaluate(name, x, one_hot)


def test_thread_count_does_not_change_results(dtype):
    """The summation order is fixed (blocks / rows), so threads=2 is bitwise threads=1."""
    rng = _rng(7)
    x = rng.standard_normal((300, 100)).astype(dtype)
    t = rng.random((300, 100)).astype(dtype)
    for name in ("mse_loss", "bce_with_logits", "cross_entropy_logits"):
        assert ops.evaluate(name, x, t, threads=1) == ops.evaluate(name, x, t, threads=2)
    g, b = rng.standard_normal(100).astype(dtype), rng.standard_normal(100).astype(dtype)
    assert np.array_equal(ops.layer_norm(x, g, b, threads=1), ops.layer_norm(x, g, b, threads=2))


# ---------------------------------------------------------------- edge inputs

def test_bce_with_logits_infinite_logits_are_exact(dtype):
    """x = +-inf gives exactly 0 (target on the right side) or +inf, never NaN."""
    inf = np.inf
    x = np.array([inf, -inf, inf, -inf], dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype)
    for xi, ti, want in zip(x, t, [0.0, 0.0, inf, inf]):
        got = float(ops.bce_with_logits(np.array([xi]), np.array([ti])).astype(dtype))
        assert got == want, (xi, ti, got)
    assert float(ops.bce_with_logits(x[:2], t[:2])) == 0.0


@pytest.mark.parametrize("name", ["binary_cross_entropy", "cross_entropy_probs"])
def test_probabilities_within_ulps_of_0_and_1(name, dtype):
    """p a few ulp from 0 and 1: the exact clip bound, values within the budget of mp."""
    f = dtype.type
    one, zero = f(1), f(0)
    near = [one, np.nextafter(one, zero), np.nextafter(np.nextafter(one, zero), zero),
            zero, np.nextafter(zero, one), f(np.finfo(dtype).tiny)]
    p = np.array(near, dtype)
    t = np.array([1, 1, 0, 0, 1, 1], dtype)
    if name == "cross_entropy_probs":
        p, t = p.reshape(3, 2), t.reshape(3, 2)
    got = ops.evaluate(name, p, t)
    want = ops.evaluate(name, p, t, backend="mp")
    assert _ulps(got, round_mpf(want[()], dtype), dtype) <= _tol(name, dtype)
    # p = 1 (clipped to the real 1 - eps) with t = 1: exactly -log1p(-eps) rounded
    eps = float(f(1e-6))
    single = ops.binary_cross_entropy(np.array([1.0], dtype), np.array([1.0], dtype))
    assert _ulps(single, f(-math.log1p(-eps)), dtype) <= 1


def test_kl_div_zero_targets_contribute_nothing(dtype):
    """0 * log 0 = 0, also against a -inf log-probability."""
    lp = np.array([[-np.inf, 0.0], [np.log(0.5), np.log(0.5)]], dtype)
    t = np.array([[0.0, 1.0], [0.0, 1.0]], dtype)
    got = ops.kl_div(lp, t)
    assert np.isfinite(got)
    assert _ulps(got, dtype.type(-float(lp[1, 1]) / 2), dtype) <= _tol("kl_div", dtype)


def test_nan_inputs_propagate(dtype):
    """A NaN input gives a NaN loss (IEEE), the clip does not swallow it."""
    nan = np.array([np.nan, 0.5], dtype)
    half = np.array([0.5, 0.5], dtype)
    for name in ("mse_loss", "bce_with_logits", "binary_cross_entropy"):
        assert np.isnan(ops.evaluate(name, nan, half)), name
    assert np.isnan(ops.cross_entropy_logits(nan[None], half[None]))
    assert np.isnan(ops.cross_entropy_probs(nan[None], half[None]))


@pytest.mark.parametrize("name", ["mse_loss", "bce_with_logits", "binary_cross_entropy"])
def test_empty_elementwise_loss_is_zero(name, dtype):
    """meanDenom of an empty shape is 1: the loss is 0/1 = 0."""
    e = np.zeros((0, 3), dtype)
    out = ops.evaluate(name, e, e)
    assert out.shape == () and float(out) == 0.0


@pytest.mark.parametrize("name", ["cross_entropy_logits", "cross_entropy_probs", "nll_loss",
                                  "kl_div"])
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0,), (2, 0, 5)])
def test_empty_row_loss_is_zero(name, shape, dtype):
    """No rows (denominator 1) or no classes (no terms): 0, never NaN or a crash."""
    e = np.zeros(shape, dtype)
    assert float(ops.evaluate(name, e, e)) == 0.0


def test_empty_normalisation_keeps_shape(dtype):
    """Zero-size inputs give zero-size outputs of the same shape."""
    one = np.ones(4, dtype)
    assert ops.layer_norm(np.zeros((0, 4), dtype), one, one).shape == (0, 4)
    assert ops.layer_norm(np.zeros((2, 0), dtype), one[:0], one[:0]).shape == (2, 0)
    assert ops.batch_norm_inference(np.zeros((4, 0), dtype), one, one, one, one).shape == (4, 0)
    assert ops.batch_norm_inference(np.zeros((0, 4, 3), dtype), one, one, one, one,
                                    channel_axis=1).shape == (0, 4, 3)


def test_layer_norm_bugzoo_single_feature(dtype):
    """LayerNorm BugZoo repro: x = 1e6 in a 1-feature row, gamma = 2, beta = 3, eps =
    1e-5: the output is beta exactly, and dgamma = dx = 0."""
    from refrt.backends import FLOAT_VJP
    x = np.array([[1e6]], dtype)
    gamma, beta = np.array([2.0], dtype), np.array([3.0], dtype)
    y = ops.layer_norm(x, gamma, beta, eps=1e-5)
    assert y.tolist() == [[3.0]]
    gx, gg, gb = FLOAT_VJP["layer_norm"]([x, gamma, beta], {"eps": dtype.type(1e-5)}, y,
                                         np.ones_like(y), 1)
    assert gx.tolist() == [[0.0]] and gg.tolist() == [0.0] and gb.tolist() == [1.0]


def test_constant_slices_normalise_to_beta(dtype):
    """A constant row (layer_norm) or x == running mean (batch norm) gives beta exactly,
    also for large values where a one-pass variance would cancel catastrophically."""
    rng = _rng(8)
    x = np.repeat((rng.standard_normal((5, 1)) * 1e5).astype(dtype), 7, axis=1)
    gamma, beta = rng.standard_normal(7).astype(dtype), rng.standard_normal(7).astype(dtype)
    assert np.array_equal(ops.layer_norm(x, gamma, beta), np.broadcast_to(beta, x.shape))
    mu = np.array([1e5, -3.5, 0.1], dtype)
    xb = np.repeat(mu[:, None], 6, axis=1)
    g3, b3 = np.array([2.0, -1.0, 0.5], dtype), np.array([0.25, 7.0, -3.0], dtype)
    out = ops.batch_norm_inference(xb, mu, np.array([0.0, 1.0, 4.0], dtype), g3, b3)
    assert np.array_equal(out, np.repeat(b3[:, None], 6, axis=1))


# ---------------------------------------------------------------- bad input

def test_wrong_target_shape_names_op_and_argument():
    x = np.zeros((4, 3))
    with pytest.raises(RefrtError, match=r"cross_entropy_logits: argument 'target'"):
        ops.cross_entropy_logits(x, np.zeros((4, 2)))
    with pytest.raises(RefrtError, match=r"nll_loss: argument 'target'.*class ids"):
        ops.nll_loss(x, np.zeros(5, dtype=np.int64))


@pytest.mark.parametrize("bad_id", [-1, 3])
def test_class_id_out_of_range(bad_id):
    with pytest.raises(RefrtError, match=rf"argument 'target' expected class ids in \[0, 3\), "
                                         rf"got class id {bad_id}"):
        ops.cross_entropy_logits(np.zeros((2, 3)), np.array([0, bad_id]))


@pytest.mark.parametrize("eps", [-1e-6, float("nan")])
@pytest.mark.parametrize("name", ["binary_cross_entropy", "cross_entropy_probs", "layer_norm",
                                  "batch_norm_inference"])
def test_bad_eps_is_rejected(name, eps):
    from refrt import families
    arrays, _ = families.generate(OPS[name], "normal", np.float64)
    with pytest.raises(RefrtError, match=rf"{name}: argument 'eps' expected"):
        ops.evaluate(name, *arrays, eps=eps)


def test_batch_norm_bad_stats_and_axis():
    x = np.zeros((2, 3, 4))
    c3 = np.ones(3)
    with pytest.raises(RefrtError, match=r"batch_norm_inference: argument 'running_var'"):
        ops.batch_norm_inference(x, c3, np.ones(2), c3, c3, channel_axis=1)
    with pytest.raises(RefrtError, match=r"batch_norm_inference: argument 'channel_axis'"):
        ops.batch_norm_inference(x, c3, c3, c3, c3, channel_axis=2)
    with pytest.raises(RefrtTypeError, match=r"layer_norm: argument 'x'"):
        ops.layer_norm(np.zeros((2, 3), np.int32), np.ones(3), np.ones(3))


def test_normalisation_survives_intermediate_overflow(dtype):
    """x - mu, x_hat * gamma or the row's squares overflow in working precision while
    the real result is finite (or overflows for real): within budget of mp."""
    from refrt.accuracy import reference
    big = float(np.finfo(dtype).max)
    bn = OPS["batch_norm_inference"]
    for x, mu, var, gamma, beta in [(big, -big, 1.0, 1e-3, 0.0), (big, -big, 4.0, 0.25, -big),
                                    (2.0, 1.0, 1.0, big * 0.75, -big)]:
        arrays = [np.array([[x]], dtype)] + [np.array([v], dtype) for v in (mu, var, gamma, beta)]
        with np.errstate(all="ignore"):
            got = ops.batch_norm_inference(*arrays)
        want = reference(bn, arrays, {"eps": 1e-6, "channel_axis": 0}, dtype)
        assert _ulps(got, want, dtype) <= bn.tol[dtype], (x, mu, var, gamma, beta, got, want)
    ln = OPS["layer_norm"]
    arrays = [np.array([[big / 2, -big / 2, 1.0, big / 4]], dtype),
              np.array([1.0, big / 2, -3.0, 0.5], dtype), np.array([0.0, -big / 2, 2.0, 1.0], dtype)]
    got = ops.layer_norm(*arrays)
    want = reference(ln, arrays, {"eps": 1e-6}, dtype)
    assert _ulps(got, want, dtype) <= ln.tol[dtype]
