"""Issue 9, reproducers 6-11: array subclasses at every boundary, the exact backends on
edge shapes and infinities, threads=, parameters that overflow, semantics as documented
choices, and clear errors (each names the op and the argument)."""
import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

from refrt import grad, ops, oracle
from refrt._prepare import max_threads
from refrt.errors import RefrtError, RefrtTypeError
from refrt.metrics import ulp_distance
from refrt.registry import OPS


class Tagged(np.ndarray):
    """A user subclass with no behaviour of its own."""


def _subclasses(a):
    return [np.asmatrix(a), a.view(Tagged), np.ma.masked_array(a)]


# ---- 6: np.matrix and subclasses ------------------------------------------------------

@pytest.mark.parametrize("backend", ["float", "mp", "oracle"])
def test_matrix_inputs_give_the_plain_array_result(backend):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    w = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, 1.0]])
    calls = [("mean", (x,), {"axis": 1}), ("var", (x,), {"axis": 1}),
             ("matmul", (x, w.T), {}), ("linear", (x, w, np.ones(2)), {}),
             ("reshape", (x,), {"shape": (3, 2)}),
             ("cross_entropy_logits", (x, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])), {}),
             ("softmax", (x,), {})]
    for name, args, params in calls:
        def run(a):
            if backend == "oracle":
                return oracle.evaluate(name, *a, **params)
            r = ops.evaluate(name, *a, backend="mp" if backend == "mp" else None, **params)
            return np.asarray(r, dtype=np.float64)
        want = run(args)
        for wrap in (0, 1, 2):
            got = run(tuple(_subclasses(a)[wrap] if a.ndim == 2 else a for a in args))
            assert type(got) is np.ndarray, (name, wrap, type(got))
            assert got.shape == want.shape and np.array_equal(got, want), (name, wrap, got)
            assert not np.isnan(got).any()


def test_oracle_mean_of_matrix_is_not_nan():
    got = oracle.mean(np.asmatrix([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), axis=1,
                      return_enclosure=True)
    assert got.value.tolist() == [2.0, 5.0] and not got.undecided.any()


# ---- 7: the exact backends on edge shapes and infinities -------------------------------

ROW_LOSSES = ["cross_entropy_logits", "cross_entropy_probs", "nll_loss", "kl_div"]


def _row_inputs(name, shape):
    if name in ("nll_loss", "kl_div"):
        return [-np.ones(shape), np.full(shape, 0.5)]
    if name == "cross_entropy_probs":
        return [np.full(shape, 0.5), np.full(shape, 0.5)]
    return [np.ones(shape), np.full(shape, 0.5)]


@pytest.mark.parametrize("name", ROW_LOSSES)
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0, 0)])
def test_row_losses_on_empty_shapes_agree(name, shape):
    arrays = _row_inputs(name, shape)
    f = ops.evaluate(name, *arrays)
    mp = np.asarray(ops.evaluate(name, *arrays, backend="mp"), dtype=np.float64)
    o = oracle.evaluate(name, *arrays)
    assert float(f) == float(mp) == float(o) == 0.0


def test_infinite_values_inside_the_domains():
    # running_var in [0, inf]: inf gives a zero-normalised channel in every backend
    x = np.ones((2, 3))
    arrays = [x, np.zeros(2), np.array([np.inf, 1.0]), np.ones(2), np.zeros(2)]
    f = ops.batch_norm_inference(*arrays)
    mp = np.asarray(ops.batch_norm_inference(*arrays, backend="mp"), dtype=np.float64)
    o = oracle.batch_norm_inference(*arrays)
    assert np.array_equal(f, mp) and np.array_equal(f, o)
    # probabilities outside [0, 1] (inf) are clipped the same way everywhere, no
    # OverflowError from an exact conversion
    p, t = np.array([np.inf, 0.5]), np.array([1.0, 0.5])
    o = oracle.binary_cross_entropy(p, t)
    assert float(np.asarray(ops.binary_cross_entropy(p, t, backend="mp"), float)) == o
    assert ulp_distance(ops.binary_cross_entropy(p, t), o, np.float64) <= \
        OPS["binary_cross_entropy"].tol["float64"]


def test_empty_outputs_iterate_nothing():
    """softmax of (2^31, 0) has no element: the mp backend and the oracle return at once
    (they used to iterate 2^31 empty rows)."""
    x = np.empty((2 ** 31, 0))
    assert ops.softmax(x, backend="mp").shape == (2 ** 31, 0)
    assert oracle.softmax(x).shape == (2 ** 31, 0)


# ---- 8: threads= ------------------------------------------------------------------------

def test_threads_accepts_numpy_integers_and_is_clamped():
    x = np.arange(1000.0).reshape(10, 100)
    want = ops.sum(x, axis=1)
    assert np.array_equal(ops.sum(x, axis=1, threads=np.int64(2)), want)
    for huge in (60_000, 100_000, 10 ** 12):
        assert np.array_equal(ops.sum(x, axis=1, threads=huge), want)   # clamped, no crash
    assert max_threads() >= 4


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "2"])
def test_threads_errors_name_the_op(bad):
    with pytest.raises(RefrtError, match=r"^softmax: argument 'threads' expected a positive integer"):
        ops.softmax(np.ones((2, 3)), threads=bad)


# ---- 9: parameters that overflow in the input dtype --------------------------------------

@pytest.mark.parametrize("name,param", [("scale", "c"), ("elu", "alpha")])
def test_parameters_that_overflow_are_refused(name, param):
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(RefrtError, match=rf"^{name}: argument '{param}' expected a value "
                                         r"representable in float32"):
        ops.evaluate(name, x, **{param: 1e300})
    # in float64 the same value is exact and fine
    assert np.isfinite(ops.evaluate(name, x.astype(np.float64), **{param: 1e300})).all()


# ---- 10: semantics as documented choices ----------------------------------------------------

def test_sign_of_zero_and_nan(dtype):
    y = ops.sign(np.array([-0.0, 0.0, np.nan, -2.0], dtype=dtype))
    assert np.signbit(y[0]) and not np.signbit(y[1]) and np.isnan(y[2]) and y[3] == -1
    assert "sign(+-0) = +-0" in OPS["sign"].conventions


def test_clamp_nan_gives_lo_while_maximum_propagates(dtype):
    nan = np.array([np.nan], dtype=dtype)
    assert ops.clamp(nan, lo=-2.0, hi=3.0).tolist() == [-2.0]
    assert np.isnan(ops.maximum(nan, np.array([1.0], dtype=dtype))).all()
    assert "clamp(NaN) = lo" in OPS["clamp"].conventions


def test_negative_zero_sums(dtype):
    z = np.array([-0.0, -0.0], dtype=dtype)
    assert np.signbit(ops.sum(z)) and np.signbit(ops.mean(z))
    assert not np.signbit(ops.sum(np.array([], dtype=dtype)))
    assert "-0" in OPS["sum"].conventions


def test_cross_entropy_probs_clips_at_the_exact_bound():
    eps = 1e-6
    p = np.array([[1.0, 0.0]], dtype=np.float32)
    t = np.array([[1.0, 0.0]], dtype=np.float32)
    got = ops.cross_entropy_probs(p, t, eps=eps)
    e32 = float(np.float32(eps))
    want = oracle.cross_entropy_probs(p, t, eps=eps, dtype=np.float32)
    assert got == want                               # -log(1 - e32), the real bound
    assert abs(float(got) - (-np.log1p(-e32))) <= 2 * np.spacing(np.float32(got))
    assert "exact real 1 - eps" in OPS["cross_entropy_probs"].conventions


# ---- 11: clear errors ------------------------------------------------------------------------

def test_clear_errors():
    cases = [
        (lambda: ops.sum([[1.0, 2.0], [3.0]]), r"^sum: argument 'x' expected a rectangular"),
        (lambda: ops.broadcast_to(np.ones(1), shape=(10 ** 6, 10 ** 6)),
         r"^broadcast_to: argument 'output' expected a result that fits in memory.*would "
         r"allocate \d+ GiB"),
        (lambda: ops.sum(np.ones(2), backend="mp", prec=10 ** 30),
         r"^sum: argument 'prec' expected an integer number of bits"),
        (lambda: grad(ops.sum, argnums=3)(np.ones(2)), r"^grad: argument 'argnums' expected"),
        (lambda: grad(ops.sum)(np.ones(2), backend="cuda"), r"^grad: argument 'backend' expected"),
    ]
    for fn, pattern in cases:
        with pytest.raises(RefrtError, match=pattern):
            fn()
    with pytest.raises(RefrtTypeError, match=r"^grad: argument 'argnums' expected an int"):
        grad(ops.sum, argnums="0")
    with pytest.raises(AttributeError, match="did you mean 'log_softmax'"):
        ops.logsoftmax


def test_cast_true_accepts_float16():
    x = np.array([1.0, 2.0, 0.5], dtype=np.float16)
    assert ops.sum(x, cast=True).dtype == np.float32
    assert ops.sum(x, cast=True) == 3.5
    with pytest.raises(RefrtTypeError, match=r"pass cast=True"):
        ops.sum(x)


def test_array_likes_are_converted():
    """Python lists, scalars and objects with __array__ are accepted as NumPy array_like
    (documented in docs/accuracy.md, "Inputs")."""
    assert ops.sum([1.0, 2.0]) == 3.0
    assert ops.exp(0.0) == 1.0
    torch = pytest.importorskip("torch")
    assert ops.sum(torch.tensor([1.0, 2.0], dtype=torch.float64)) == 3.0
