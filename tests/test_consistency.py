"""Formulation consistency between ops (sklearn-style identities), on the float kernels."""
import numpy as np
import pytest

from refrt import ops
from refrt.metrics import ulp_distance


def _logits(dtype, shape=(16, 10), scale=3.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def test_log_softmax_equals_log_of_softmax_where_safe(dtype):
    """log_softmax(x) == log(softmax(x)) where softmax is well above underflow."""
    x = _logits(dtype)
    a = ops.log_softmax(x)
    b = ops.log(ops.softmax(x))
    # log amplifies softmax's relative error by 1/|log p|: compare in absolute terms
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(a - b) <= 8 * eps * np.maximum(1.0, np.abs(a)))


def test_log_softmax_survives_where_log_softmax_of_naive_fails(dtype):
    """The seed's bug: log(softmax) gives -inf on a large spread, log_softmax stays finite."""
    x = np.array([[0.0, -200.0 if dtype == np.float32 else -1000.0]], dtype=dtype)
    with np.errstate(divide="ignore"):
        naive = ops.log(ops.softmax(x))
    assert np.isneginf(naive[0, 1])
    good = ops.log_softmax(x)
    assert np.isfinite(good).all() and good[0, 1] == x[0, 1]


def test_softmax_rows_sum_to_one(dtype):
    """Each softmax row sums to 1 within a few ulp."""
    x = _logits(dtype, scale=10.0)
    s = ops.sum(ops.softmax(x), axis=-1)
    assert np.all(ulp_distance(s, np.ones_like(s), dtype) <= 8)


def test_log_softmax_is_x_minus_logsumexp(dtype):
    """log_softmax(x) == x - logsumexp(x) (the same real number, a few ulp apart)."""
    x = _logits(dtype)
    a = ops.log_softmax(x)
    b = x - ops.logsumexp(x, axis=-1)[:, None]
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(a - b) <= 4 * eps * np.maximum(1.0, np.abs(x).max()))


def test_softmax_axis_matches_moved_axis(dtype):
    """softmax along axis 0 equals softmax of the transpose along the last axis."""
    x = _logits(dtype, shape=(7, 5))
    assert np.array_equal(ops.softmax(x, axis=0), ops.softmax(np.ascontiguousarray(x.T)).T)


def test_mean_is_sum_over_count(dtype):
    """mean == sum / n, and mean of an empty axis is 0 (TorchLean divides by 1)."""
    x = _logits(dtype)
    np.testing.assert_allclose(ops.mean(x, axis=1), ops.sum(x, axis=1) / x.shape[1],
                               rtol=4 * np.finfo(dtype).eps)
    assert ops.mean(np.zeros((3, 0), dtype=dtype), axis=1).tolist() == [0.0, 0.0, 0.0]


def test_sqrt_clamp_equals_sqrt_of_relu(dtype):
    """sqrt_clamp(x) == sqrt(relu(x)) exactly, and NaN stays NaN."""
    x = np.array([-2.0, -0.0, 0.0, 4.0, np.nan, np.inf], dtype=dtype)
    a, b = ops.sqrt_clamp(x), ops.sqrt(ops.relu(x))
    assert np.array_equal(a, b, equal_nan=True)


def test_safe_div_is_div_by_shifted_denominator(dtype):
    """safe_div(x, y) == div(x, y + eps) when y + eps is exact."""
    x = np.array([1.0, -3.0, 0.5], dtype=dtype)
    y = np.array([0.5, 2.0, 4.0], dtype=dtype)
    eps = dtype.type(0.25)
    np.testing.assert_array_equal(ops.safe_div(x, y, eps=0.25), ops.div(x, y + eps))
