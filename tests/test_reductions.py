"""Reductions, the softmax family, matmul/linear and the shape ops: closed forms,
stability on adversarial rows, IEEE special rows, empty axes, layouts, axis handling.

Accuracy budgets come from the registry (``OPS[name].tol``); references are the mp
backend rounded once to the dtype (``refrt.accuracy.reference``).
"""
import math

import numpy as np
import pytest

from refrt import ops
from refrt.accuracy import reference
from refrt.autodiff import vjp_op
from refrt.errors import RefrtError, RefrtTypeError
from refrt.metrics import ulp_distance
from refrt.registry import OPS


def _ulps_vs_mp(name, arrays, dtype, **params):
    got = ops.evaluate(name, *arrays, **params)
    want = reference(OPS[name], arrays, params, dtype)
    return ulp_distance(got, want, dtype), got


def _within_tol(name, arrays, dtype, **params):
    d, got = _ulps_vs_mp(name, arrays, dtype, **params)
    assert d.max(initial=0) <= OPS[name].tol[dtype], (name, got, d)
    return got


# ---- closed forms ------------------------------------------------------------------------

def test_closed_forms(dtype):
    x = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, -1.0, 5.0, 5.0]], dtype=dtype)
    assert ops.sum(x).tolist() == 18.0
    assert ops.sum(x, axis=1).tolist() == [10.0, 8.0]
    assert ops.mean(x, axis=0).tolist() == [0.0, 0.5, 4.0, 4.5]
    assert ops.var(x, axis=1).tolist() == [1.25, 9.0]
    assert ops.amax(x, axis=1).tolist() == [4.0, 5.0]
    assert ops.amin(x, axis=0).tolist() == [-1.0, -1.0, 3.0, 4.0]
    z = np.zeros((1, 4), dtype)
    assert ops.softmax(z).tolist() == [[0.25] * 4]
    assert ops.log_softmax(z)[0, 0] == dtype.type(-math.log(4.0))
    assert ops.logsumexp(z, axis=-1)[0] == dtype.type(math.log(4.0))
    assert ops.reduce_mean(x, axis=0).tolist() == [0.0, 0.5, 4.0, 4.5]
    assert ops.row_mean(x).tolist() == [2.5, 2.0]


def test_sum_cancellation_is_compensated(dtype):
    """1 + 1e-30 - 1: a plain left-to-right sum returns 0, Neumaier returns 1e-30."""
    x = np.array([1.0, 1e-30, -1.0], dtype=dtype)
    assert float(ops.sum(x)) == float(dtype.type(1e-30))
    assert float(np.add.reduce([x[0] + x[1], x[2]])) == 0.0


def test_finite_sum_survives_partial_overflow(dtype):
    """max + max - max overflows left to right; the rescaled retry returns max."""
    big = np.finfo(dtype).max
    x = np.array([big, big, -big], dtype=dtype)
    assert float(ops.sum(x)) == float(big)
    assert float(ops.mean(x)) == float(big / dtype.type(3))


def test_var_of_huge_and_tiny_values(dtype):
    """Squares would overflow (huge) or underflow (tiny); the row is rescaled first."""
    for scale in (np.sqrt(np.finfo(dtype).max), np.sqrt(np.finfo(dtype).tiny) / 64):
        # huge: (1.5 s)^2 = 2.25 max overflows, the variance 4.5 max / 8 does not
        x = (np.array([1.5, -1.5, 0, 0, 0, 0, 0, 0]) * scale).astype(dtype)
        got = _within_tol("var", [x], dtype)
        assert np.isfinite(got) and got > 0


def test_var_cancellation(dtype):
    """Values far from 0 with a small spread: two-pass keeps the spread exact."""
    base = 1e8 if dtype == np.float64 else 1e4
    x = base + np.array([0.0, 1.0, 2.0, 3.0], dtype=dtype)
    assert float(ops.var(x)) == 1.25


# ---- softmax family stability --------------------------------------------------------

def test_log_softmax_dominant_logit_keeps_log1p_bits(dtype):
    """Logits [10, 0]: log_softmax_0 = -log1p(e^-10) ~ -4.54e-5.  The naive
    10 - log(e^10 + 1) cancels ~14 bits; refrt stays within the registry budget."""
    x = np.array([10.0, 0.0], dtype=dtype)
    got = _within_tol("log_softmax", [x], dtype)
    want = reference(OPS["log_softmax"], [x], {}, dtype)
    with np.errstate(all="ignore"):
        naive = x - np.log(np.sum(np.exp(x)))
    naive_err = ulp_distance(naive, want, dtype)[0]
    assert naive_err > 2 ** 10, naive_err
    assert got[0] == want[0] or ulp_distance(got, want, dtype)[0] <= OPS["log_softmax"].tol[dtype]


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_large_spreads(name, dtype):
    """+-1e4 spreads: exp of the shifted logits underflows cleanly, nothing overflows."""
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4 + 2]], dtype=dtype)
    got = _within_tol(name, [x], dtype)
    assert np.all(np.isfinite(got))


def test_minus_inf_entries(dtype):
    """-inf logits get probability 0 and log-probability -inf; the row is otherwise normal."""
    x = np.array([[0.0, -np.inf, 0.0]], dtype=dtype)
    assert ops.softmax(x).tolist() == [[0.5, 0.0, 0.5]]
    ls = ops.log_softmax(x)
    assert ls[0, 1] == -np.inf and ls[0, 0] == dtype.type(-math.log(2.0))
    assert ops.logsumexp(x, axis=-1)[0] == dtype.type(math.log(2.0))


def test_special_rows(dtype):
    """All -inf: lse = -inf (log 0), softmax/log_softmax NaN (0/0).  A +inf entry: lse =
    +inf, softmax/log_softmax NaN (inf - inf).  NaN anywhere: the whole row is NaN."""
    ninf = np.array([[-np.inf, -np.inf]], dtype=dtype)
    pinf = np.array([[np.inf, 1.0]], dtype=dtype)
    nan = np.array([[0.0, np.nan]], dtype=dtype)
    assert ops.logsumexp(ninf, axis=-1)[0] == -np.inf
    assert ops.logsumexp(pinf, axis=-1)[0] == np.inf
    assert np.isnan(ops.logsumexp(nan, axis=-1)[0])
    for name in ("softmax", "log_softmax"):
        for x in (ninf, pinf, nan):
            assert np.isnan(ops.evaluate(name, x)).all(), (name, x)
            mp = ops.evaluate(name, x, backend="mp", prec=64)
            assert all(v != v for v in mp.ravel()), (name, x)


def test_softmax_vjp_with_a_dominant_logit(dtype):
    """y_a = 1 - 1e-30: the gradient of the dominant entry is y_a * (g_a - <g, y>) ~ 1e-30,
    which the direct formula rounds to 0 or noise; refrt matches the mp rule."""
    x = np.array([[70.0, 0.0, 1.0]], dtype=dtype)
    g = np.array([[0.3, -1.0, 2.0]], dtype=dtype)
    got = vjp_op("softmax", [x], {}, None, g)[0]
    want = vjp_op("softmax", [x], {}, None, g, "mp")[0].astype(np.float64).astype(dtype)
    assert got[0, 0] != 0
    assert ulp_distance(got, want, dtype).max() <= 16


# ---- empty axes and errors -----------------------------------------------------------

def test_empty_axes(dtype):
    e = np.zeros((3, 0), dtype=dtype)
    assert ops.sum(e, axis=1).tolist() == [0.0] * 3
    assert ops.mean(e, axis=1).tolist() == [0.0] * 3          # meanDenom: divide by 1
    assert ops.var(e, axis=1).tolist() == [0.0] * 3
    assert ops.logsumexp(e, axis=1).tolist() == [-np.inf] * 3
    assert ops.softmax(e).shape == (3, 0)
    assert ops.sum(e, axis=0).shape == (0,)
    assert float(ops.sum(e)) == 0.0 and math.copysign(1, float(ops.sum(e))) == 1
    for name in ("amax", "amin"):
        with pytest.raises(RefrtError, match=f"{name}: argument 'x' expected a non-empty"):
            ops.evaluate(name, e, axis=1)
        assert ops.evaluate(name, e, axis=0).shape == (0,)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "amax", "logsumexp", "softmax",
                                  "log_softmax", "reduce_sum", "reduce_mean"])
def test_axis_handling(name, dtype):
    x = np.arange(24, dtype=dtype).reshape(2, 3, 4) / 7
    for axis in range(3):
        a = ops.evaluate(name, x, axis=axis)
        b = ops.evaluate(name, x, axis=axis - 3)
        assert np.array_equal(a, b)
        moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
        c = ops.evaluate(name, moved, axis=-1)
        want = c if a.shape == c.shape else np.moveaxis(c, -1, axis)
        assert np.array_equal(a, want)
    for bad, err in ((3, RefrtError), (-4, RefrtError), (1.5, RefrtTypeError)):
        with pytest.raises(err, match=f"{name}: argument 'axis'"):
            ops.evaluate(name, x, axis=bad)


@pytest.mark.parametrize("layout", ["strided", "readonly", "bigendian"])
@pytest.mark.parametrize("name", ["sum", "var", "softmax", "log_softmax", "logsumexp"])
def test_layouts_along_axis_0(name, layout, dtype):
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(dtype)
    want = ops.evaluate(name, x, axis=0)
    if layout == "strided":
        big = np.empty((10, 4), dtype)
        big[::2] = x
        y = big[::2]
    elif layout == "readonly":
        y = x.copy()
        y.setflags(write=False)
    else:
        y = x.astype(x.dtype.newbyteorder(">"))
    assert np.array_equal(ops.evaluate(name, y, axis=0), want)


# ---- matmul / linear -----------------------------------------------------------------

def test_batched_matmul(dtype):
    rng = np.random.default_rng(4)
    a = rng.integers(-8, 8, (3, 4, 5)).astype(dtype)
    b = rng.integers(-8, 8, (3, 5, 2)).astype(dtype)
    assert np.array_equal(ops.matmul(a, b), a @ b)          # small integers: exact
    a = rng.standard_normal((2, 6, 7)).astype(dtype)
    b = rng.standard_normal((2, 7, 3)).astype(dtype)
    _within_tol("matmul", [a, b], dtype)
    with pytest.raises(RefrtError, match="matmul: argument 'b'"):
        ops.matmul(a, b[:1])


def test_matmul_dot2_cancellation(dtype):
    """[2^30, 1, -2^30] . [1, 1, 1] = 1: plain float32 accumulation gives 0."""
    a = np.array([[2.0 ** 30, 1.0, -2.0 ** 30]], dtype=dtype)
    b = np.ones((3, 1), dtype=dtype)
    assert ops.matmul(a, b)[0, 0] == 1.0


def test_matmul_overflowing_products(dtype):
    """Products above the format's max cancel exactly: the rescaled dot returns 0, a plain
    dot inf - inf = NaN."""
    h = np.sqrt(np.finfo(dtype).max) * 4
    a = np.array([[h, h]], dtype=dtype)
    b = np.array([[h], [-h]], dtype=dtype)
    assert ops.matmul(a, b)[0, 0] == 0.0
    with np.errstate(all="ignore"):
        assert np.isnan((a * b.T).sum()) or not np.isfinite((a * b.T).sum())


def test_linear_with_1d_x(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(7).astype(dtype)
    w = rng.standard_normal((3, 7)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    y = ops.linear(x, w, b)
    assert y.shape == (3,)
    assert np.array_equal(y, ops.linear(x[None], w, b)[0])
    _within_tol("linear", [x, w, b], dtype)
    gx, gw, gb = vjp_op("linear", [x, w, b], {}, None, np.ones(3, dtype))
    assert gx.shape == (7,) and gw.shape == (3, 7) and gb.tolist() == [1.0] * 3


# ---- VJPs with closed forms ----------------------------------------------------------

def test_reduction_vjps(dtype):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]], dtype=dtype)
    g = np.array([1.0, 4.0], dtype=dtype)
    assert vjp_op("sum", [x], {"axis": 1}, None, g)[0].tolist() == [[1, 1, 1], [4, 4, 4]]
    assert vjp_op("mean", [x], {"axis": 1}, None, g * 3)[0].tolist() == [[1, 1, 1], [4, 4, 4]]
    assert vjp_op("amax", [x], {"axis": 1}, None, g)[0].tolist() == [[0, .5, .5], [4, 0, 0]]
    assert vjp_op("amin", [x], {"axis": 1}, None, g)[0].tolist() == [[1, 0, 0], [0, 2, 2]]
    gv = vjp_op("var", [x], {"axis": 1}, None, g * 3)[0]
    assert np.allclose(gv, 2 * (x - x.mean(1, keepdims=True)) * [[1], [4]])


# ---- shape ops -------------------------------------------------------------------------

def test_shape_ops_forward(dtype):
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    assert np.array_equal(ops.transpose(x), x.T)
    assert ops.broadcast_row(np.array([1.0, 2.0], dtype), n=2).tolist() == [[1, 1], [2, 2]]
    assert ops.broadcast_col(np.array([1.0, 2.0], dtype), m=2).tolist() == [[1, 2], [1, 2]]
    assert ops.broadcast_to(np.array([1.0, 2.0, 3.0], dtype), shape=(2, 3)).shape == (2, 3)
    assert ops.concat(x, x, axis=1).shape == (2, 6)
    assert ops.reshape(x, shape=(3, -1)).shape == (3, 2)
    assert ops.flatten(x).tolist() == list(range(6))
    y = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    assert np.array_equal(ops.swap_first_two(y), y.transpose(1, 0, 2))
    assert np.array_equal(ops.transpose_last_two(y), y.transpose(0, 2, 1))
    a = np.array([[1.0] * 6, [0.0] * 5 + [1.0]], dtype=dtype)
    assert ops.affine(x, a, np.array([0.5, -1.0], dtype)).tolist() == [15.5, 4.0]


def test_shape_op_errors():
    x = np.zeros((2, 3))
    for call, arg in ((lambda: ops.broadcast_to(x, shape=(3, 3)), "shape"),
                      (lambda: ops.reshape(x, shape=(4, 2)), "shape"),
                      (lambda: ops.concat(x, np.zeros((3, 2)), axis=0), "b"),
                      (lambda: ops.transpose(np.zeros((2, 2, 2))), "x"),
                      (lambda: ops.affine(x, np.zeros((2, 5)), np.zeros(2)), "A")):
        with pytest.raises(RefrtError, match=f"argument '{arg}'"):
            call()


def test_broadcast_vjps_sum_compensated(dtype):
    """The broadcast VJPs are compensated sums: [1, 1e-30, -1] over the broadcast axis."""
    g = np.array([[1.0, 1e-30, -1.0]], dtype=dtype)
    got = vjp_op("broadcast_row", [np.zeros(1, dtype)], {"n": 3}, None, g)[0]
    assert got.tolist() == [float(dtype.type(1e-30))]
    got = vjp_op("broadcast_to", [np.zeros((1,), dtype)], {"shape": (1, 3)}, None, g)[0]
    assert got.tolist() == [float(dtype.type(1e-30))]
    got = vjp_op("broadcast_col", [np.zeros(1, dtype)], {"m": 3}, None, g.T)[0]
    assert got.tolist() == [float(dtype.type(1e-30))]
    ga, gb = vjp_op("concat", [np.zeros(1, dtype), np.zeros(2, dtype)], {}, None, g[0])
    assert ga.tolist() == [1.0] and gb.shape == (2,)


def test_matmul_panels_and_thread_counts_are_bitwise_equal():
    """The AVX-512 panel, the generic panel and 1 or 2 threads give the same bits (the
    accumulation order depends only on n)."""
    from refrt._kernels import linalg as LA
    from refrt.backends import float_reductions as FR
    rng = np.random.default_rng(5)
    for dt in (np.float32, np.float64):
        for m, n, p in [(7, 17, 9), (9, 33, 13), (65, 257, 70), (2, 8, 4)]:
            a = rng.standard_normal((m, n)).astype(dt)
            b = rng.standard_normal((n, p)).astype(dt)
            try:
                LA._use_vector_panel(True)
                r1, r3 = FR.matmul((a, b), {}, 1), FR.matmul((a, b), {}, 2)
                LA._use_vector_panel(False)
                r2 = FR.matmul((a, b), {}, 1)
            finally:
                LA._use_vector_panel(True)
            assert r1.tobytes() == r2.tobytes() == r3.tobytes()
