"""The certified oracle: exact cases with known answers, agreement with the float64
kernels and with closed forms, undecided reporting and thread safety.

Expected literals are exact binary values written as Python expressions (2.0**-53 ...)."""
import math
import threading
from fractions import Fraction

import numpy as np
import pytest

from refrt import backends, oracle
from refrt import families as fam
from refrt._oracle_ctx import IntervalContext, RationalContext
from refrt.metrics import ulp_distance
from refrt.registry import OPS
from refrt.rounding import FORMATS, round_exact, round_rational, round_raw

from conftest import op_params

# every test here runs on both certified paths (Arb first, intervals only)
pytestmark = pytest.mark.usefixtures("oracle_engine")

backends.load()
HAS_MP = lambda spec: spec.name in backends.MP  # noqa: E731
F64, F32 = FORMATS["float64"], FORMATS["float32"]


# --- rounding of exact values -------------------------------------------------------

@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=lambda f: f.name)
def test_round_rational_ties_go_to_even(fmt):
    """Midpoints between consecutive floats round to the even one; just off it, to the
    nearer one."""
    one_ulp = Fraction(1, 2 ** (fmt.prec - 1))
    for k in (0, 1, 2, 3):
        lo = 1 + k * one_ulp
        mid = lo + one_ulp / 2
        even = lo if k % 2 == 0 else lo + one_ulp
        assert round_rational(mid.numerator, mid.denominator, fmt) == float(even)
        above = mid + Fraction(1, 2 ** 200)
        assert round_rational(above.numerator, above.denominator, fmt) == float(lo + one_ulp)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=lambda f: f.name)
def test_round_rational_subnormals_and_overflow(fmt):
    """Gradual underflow, half of the smallest subnormal, and the overflow boundary."""
    tiny = Fraction(2) ** fmt.quantum                # smallest subnormal
    assert round_rational(tiny.numerator, tiny.denominator, fmt) == float(tiny)
    half = tiny / 2
    assert round_rational(half.numerator, half.denominator, fmt) == 0.0       # tie -> 0
    just = half + Fraction(1, 2 ** 2000)
    assert round_rational(just.numerator, just.denominator, fmt) == float(tiny)
    neg = -half / 3
    assert math.copysign(1, round_rational(neg.numerator, neg.denominator, fmt)) == -1
    big = (2 - Fraction(1, 2 ** (fmt.prec - 1))) * Fraction(2) ** fmt.emax      # max finite
    assert round_rational(big.numerator, big.denominator, fmt) == float(big)
    # max + half an ulp is the overflow threshold: it rounds (to even) to infinity
    thr = big + Fraction(2) ** (fmt.emax - fmt.prec)
    assert round_rational(thr.numerator, thr.denominator, fmt) == math.inf
    below = thr - Fraction(1, 2 ** 3000)
    assert round_rational(below.numerator, below.denominator, fmt) == float(big)
    assert round_rational(-1, 3, fmt) == -round_rational(1, 3, fmt)


@pytest.mark.parametrize("dtype,fmt", [(np.float32, F32), (np.float64, F64)])
def test_every_float_round_trips_through_the_contexts(dtype, fmt):
    """Conversion of a float into the interval and rational contexts is exact."""
    fi = np.finfo(dtype)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, np.iinfo(np.uint32 if dtype == np.float32 else np.uint64).max,
                        2000, dtype=np.uint32 if dtype == np.float32 else np.uint64)
    xs = bits.view(dtype)
    xs = np.concatenate([xs[np.isfinite(xs)], np.array([0.0, -0.0, fi.max, -fi.max, fi.tiny,
                                                        fi.smallest_subnormal], dtype=dtype)])
    iv, rq = IntervalContext(fmt.prec), RationalContext()
    for x in xs.tolist():
        v = iv.mpf(x)
        assert v.lo == v.hi and round_raw(v.lo, fmt) == x
        q = rq.mpf(x)
        assert round_rational(int(q.numerator), int(q.denominator), fmt) == x


def test_exact_cases_with_known_answers():
    """Ties, exact zeros from cancellation, subnormal and overflowing results."""
    t = 2.0 ** -53
    assert oracle.add(np.array([1.0, 1.0]), np.array([t, t + 2.0 ** -105]))[0] == 1.0
    assert oracle.add(np.array([1.0]), np.array([t + 2.0 ** -105]))[0] == 1.0 + 2.0 ** -52
    assert oracle.sub(np.array([0.1]), np.array([0.1]))[0] == 0.0
    assert oracle.sum(np.array([1e308, 1e308, -1e308, -1e308, 2.0 ** -1074]))[()] == 2.0 ** -1074
    # 1/3 of three subnormal quanta is one quantum exactly
    assert oracle.div(np.array([3 * 2.0 ** -1074]), np.array([3.0]))[0] == 2.0 ** -1074
    assert oracle.mul(np.array([1e308]), np.array([10.0]))[0] == math.inf
    # float32: 2**24 + 1 is a tie between 2**24 and 2**24 + 2
    assert oracle.add(np.array([2.0 ** 24]), np.array([1.0]), dtype=np.float32)[0] == 2.0 ** 24
    assert oracle.exp(np.array([0.0, -800.0]))[1] == 0.0
    # mean of (1, 2, 2**-60): no float64 sum then divide gets this tie-free value wrong
    m = oracle.mean(np.array([1.0, 2.0, 2.0 ** -60]))
    q = Fraction(3 + Fraction(1, 2 ** 60), 3)
    assert m == round_rational(q.numerator, q.denominator, F64)


def test_near_midpoint_transcendental_results():
    """expm1(2**-52) = 2**-52 + 2**-105 + 2**-157/3 + ...: just above a midpoint, so it rounds
    up (mpmath's exp does not round tiny arguments in the requested direction; the oracle
    must not inherit that)."""
    assert oracle.expm1(np.array([2.0 ** -52]))[0] == 2.0 ** -52 + 2.0 ** -104
    # silu(smallest subnormal) = x / (1 + e^-x) is a hair above half the smallest subnormal
    assert oracle.silu(np.array([5e-324]))[0] == 5e-324


def test_closed_forms():
    """Hand-derived values: log_softmax of a constant row is -log n, tanh(log(3)/2) = 1/2,
    cross-entropy of uniform logits is log C (references rounded from 300-bit mpmath)."""
    import mpmath
    ctx = mpmath.MPContext()
    ctx.prec = 300
    from refrt.rounding import round_mpf
    ls = oracle.log_softmax(np.full((2, 7), 3.0), axis=-1)
    assert np.all(ls == round_mpf(-ctx.log(7), "float64"))
    x = round_mpf(ctx.log(3) / 2, "float64")       # tanh(x) = 1/2 + O(ulp of x)
    assert oracle.tanh(np.array([x]))[0] == round_mpf(ctx.tanh(ctx.mpf(x)), "float64")
    ce = oracle.cross_entropy_logits(np.zeros((1, 4)), np.array([[0.0, 1.0, 0.0, 0.0]]))
    assert ce[()] == round_mpf(ctx.log(4), "float64")


def test_dtypes_and_enclosure():
    """float16 / bfloat16 targets, and return_enclosure bounds bracket the value."""
    x = np.array([1.0, -0.5, 11.0, 100.0])
    h = oracle.exp(x, dtype=np.float16)
    assert h.dtype == np.float16 and h[3] == np.inf and h[0] == np.float16(math.e)
    b = oracle.exp(x, dtype="bfloat16")
    assert np.asarray(b, np.float32)[0] == 2.71875
    enc = oracle.exp(x, return_enclosure=True)
    value, lower, upper = enc
    assert all(lo <= math.exp(v) * 1.0000001 and hi >= lo for v, lo, hi in zip(x, lower, upper))
    assert not enc.undecided.any() and enc.prec >= 53


@pytest.mark.parametrize("spec", op_params(lambda s: s.name in backends.MP and s.name in backends.FLOAT))
def test_oracle_agrees_with_float64_kernels(spec):
    """On the op's first family, the float64 kernel is within its registry budget of the
    oracle (so the oracle runs the op's formula in its contexts and decides every
    element)."""
    arrays, params = fam.generate(spec, spec.families[0], np.float64, 0)
    try:
        with np.errstate(all="ignore"):
            got = np.asarray(backends.FLOAT[spec.name](arrays, params, 1))
    except (ValueError, TypeError) as e:
        pytest.skip(f"the input families give no valid input for {spec.name}: {e}")
    enc = oracle.evaluate(spec.name, *arrays, return_enclosure=True, on_undecided="nan", **params)
    assert not enc.undecided.any()
    got = got.reshape(enc.value.shape)
    assert ulp_distance(got, enc.value, np.float64).max(initial=0) <= spec.tol.float64


def test_non_finite_inputs():
    """inf and NaN inputs give exact limits and IEEE results; finite results from inf
    inputs are certified."""
    assert np.isnan(oracle.add(np.array([np.inf]), np.array([-np.inf]))[0])
    r = oracle.logsumexp(np.array([[-np.inf, 1.0, 2.0]]), axis=-1)[0]
    assert r == oracle.logsumexp(np.array([[1.0, 2.0]]), axis=-1)[0]
    sm = oracle.softmax(np.array([[0.0, -np.inf]]), axis=-1)
    assert sm.tolist() == [[1.0, 0.0]]


def test_zero_size_and_zero_dim():
    assert oracle.exp(np.zeros((0, 3))).shape == (0, 3)
    assert oracle.sum(np.zeros((0,)))[()] == 0.0
    assert oracle.softmax(np.zeros((2, 0)), axis=0).shape == (2, 0)


def test_undecided_elements_are_reported():
    """A cap too small to separate a value from a midpoint leaves it undecided: it is
    reported (error or mask), never rounded."""
    x = np.array([2.0 ** -52, 1.0])
    with pytest.raises(oracle.UndecidedError) as err:
        oracle.expm1(x, max_prec=80)
    assert "expm1" in str(err.value) and err.value.enclosure.undecided[0]
    enc = oracle.expm1(x, max_prec=80, on_undecided="nan", return_enclosure=True)
    assert np.isnan(enc.value[0]) and enc.undecided.tolist() == [True, False]
    assert enc.lower[0] < enc.upper[0]


def test_bad_arguments_name_the_op():
    with pytest.raises(ValueError, match="exp: argument 'max_prec'"):
        oracle.exp(np.ones(2), max_prec=3)
    with pytest.raises(TypeError, match="log_softmax"):
        oracle.log_softmax(np.ones(2), np.ones(2))


def test_thread_safety_identical_results():
    """Several threads evaluating at once get the results of a serial run."""
    rng = np.random.default_rng(1)
    jobs = [("log_softmax", (rng.standard_normal((4, 6)) * 40,), {"axis": -1}),
            ("tanh", (rng.standard_normal(30),), {}),
            ("mean", (rng.standard_normal((5, 3)),), {"axis": 0}),
            ("bce_with_logits", (rng.standard_normal(8) * 20, rng.random(8)), {})]
    serial = [oracle.evaluate(n, *a, **p) for n, a, p in jobs]
    results = [None] * (4 * len(jobs))

    def work(k):
        n, a, p = jobs[k % len(jobs)]
        results[k] = oracle.evaluate(n, *a, **p)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, r in enumerate(results):
        np.testing.assert_array_equal(r, serial[k % len(jobs)])


def test_arb_path_settles_ordinary_inputs_without_intervals(monkeypatch):
    """On finite, ordinary inputs the Arb pass decides everything: no interval context is
    built (so the speed is Arb's), and python-flint's precision is restored."""
    if not oracle.ARB_AVAILABLE:
        pytest.skip("python-flint is not installed")
    import flint
    monkeypatch.setattr(oracle, "ENGINE", "arb")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 10)) * 3
    want = {}
    for engine in ("interval", "arb"):
        monkeypatch.setattr(oracle, "ENGINE", engine)
        want[engine] = oracle.evaluate("log_softmax", x, axis=-1)

    def no_intervals(prec):
        raise AssertionError("the interval context was used")
    monkeypatch.setattr(oracle, "_interval_context", no_intervals)
    before = flint.ctx.prec
    got = oracle.evaluate("log_softmax", x, axis=-1)
    assert flint.ctx.prec == before
    assert np.array_equal(got, want["interval"]) and np.array_equal(got, want["arb"])


def test_arb_path_hands_nan_and_errors_to_intervals(monkeypatch):
    """NaN results (log of a negative), infinities (log 0) and inputs with inf/NaN come
    from the interval path on the Arb engine too."""
    if not oracle.ARB_AVAILABLE:
        pytest.skip("python-flint is not installed")
    x = np.array([-1.0, 0.0, 2.0, np.inf, np.nan, 1e-300])
    got = {}
    for engine in ("interval", "arb"):
        monkeypatch.setattr(oracle, "ENGINE", engine)
        got[engine] = oracle.evaluate("log", x)
    assert np.array_equal(got["arb"], got["interval"], equal_nan=True)
    assert np.isnan(got["arb"][0]) and got["arb"][1] == -np.inf


def test_arb_path_bounds_of_overflowing_results(oracle_engine):
    """exp(1000) overflows float64 (decided +inf) and float32; its enclosure bounds are
    still mpmath numbers (the Arb bounds of an infinity convert too)."""
    for dt in (np.float64, np.float32):
        enc = oracle.evaluate("exp", np.array([1000.0, -1e30, 0.5], dt), dtype=dt,
                              return_enclosure=True)
        assert enc.value[0] == np.inf and enc.value[1] == 0 and not enc.undecided.any()
        assert all(hasattr(b, "_mpf_") for b in list(enc.lower) + list(enc.upper))
