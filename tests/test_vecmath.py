"""Accuracy and IEEE behaviour of the array exp in refrt/_kernels/vecmath.h.

The error is measured in fractional ulps against an exact reference: the mpmath value
at 160 bits, or, for exhaustive float32 sweeps, float64 exp (error < 2^-52 relative,
i.e. < 2^-28 float32 ulps, far below the margins asserted here).  The bounds are the
contract and the derivation in vecmath.h:
  CONTRACT_ULP: at most 1 ulp everywhere (faithful rounding);
  NORMAL_ULP:   the error budget of vecmath.h (e) for normal results, ~0.62;
  SUBNORMAL_ULP: vecmath.h (f), 0.5 + 0.62/2 for results just below the normals;
  and the result is never more than one representable value away from the correctly
  rounded one (refrt.rounding.round_mpf).
"""
import mpmath
import numpy as np
import pytest

from refrt.metrics import ulp_distance
from refrt.rounding import round_mpf

vm = pytest.importorskip("refrt._kernels.vecmath_check")
vexp = vm.vexp

CONTRACT_ULP = 1.0
NORMAL_ULP = 0.62          # vecmath.h, Design e)
SUBNORMAL_ULP = 0.81       # vecmath.h, Design f): double rounding into the subnormals
MANT = {np.float64: 52, np.float32: 23}
EMIN = {np.float64: -1022, np.float32: -126}

_ctx = mpmath.MPContext()
_ctx.prec = 160


def _ulp_of_exact(e, dt):
    """ulp of the binade of the exact value e (subnormal spacing below the normals)."""
    ex = int(_ctx.floor(_ctx.log(e, 2))) if e > 0 else EMIN[dt]
    return _ctx.ldexp(1, max(ex, EMIN[dt]) - MANT[dt])


def mp_errors(x, dt):
    """(fractional ulp errors, correctly rounded references) of vexp(x) for finite x."""
    got = vexp(x)
    err = np.empty(len(x))
    ref = np.empty(len(x), dt)
    for i, v in enumerate(x):
        e = _ctx.exp(_ctx.mpf(float(v)))
        ref[i] = round_mpf(e, dt)
        if np.isinf(got[i]):
            err[i] = 0.0 if np.isinf(ref[i]) else np.inf
        else:
            err[i] = float(abs(_ctx.mpf(float(got[i])) - e) / _ulp_of_exact(e, dt))
    return err, ref, got


def _check(x, dt, bound):
    err, ref, got = mp_errors(x, dt)
    i = int(np.argmax(err))
    assert err[i] <= bound, f"{dt.__name__} exp({x[i]!r}) = {got[i]!r}: {err[i]:.3f} ulp"
    assert ulp_distance(got, ref, dt).max() <= 1
    return err.max()


RANGES = {np.float64: (-745.0, 709.7), np.float32: (-103.0, 88.7)}
NORMAL_RANGES = {np.float64: (-708.3, 709.7), np.float32: (-87.3, 88.7)}


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_dense_samples_normal_results(dt):
    lo, hi = NORMAL_RANGES[dt]
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(lo, hi, 4000), rng.uniform(-1, 1, 2000),
                        rng.uniform(-0.35, 0.35, 2000)]).astype(dt)
    _check(x, dt, NORMAL_ULP)


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_subnormal_results(dt):
    # exp(x) below the smallest normal: x in [ln(2^-1075), ln(DBL_MIN)] (float analogous)
    lo, hi = {np.float64: (-745.13, -708.4), np.float32: (-103.97, -87.34)}[dt]
    x = np.random.default_rng(2).uniform(lo, hi, 3000).astype(dt)
    _check(x, dt, SUBNORMAL_ULP)


def _around(v, dt, k=8):
    """v and its k neighbours on each side, in dtype."""
    v = dt(v)
    out = [v]
    a = b = v
    for _ in range(k):
        a, b = np.nextafter(a, dt(-np.inf)), np.nextafter(b, dt(np.inf))
        out += [a, b]
    return np.array(out, dt)


THRESHOLDS = {
    # overflow, smallest normal result, rounds-to-zero boundary, reconstruction cutoffs
    np.float64: [709.782712893384, -708.3964185322641, -745.1332191019411, 710.0, -746.0],
    np.float32: [88.72283935546875, -87.33654475, -103.97208, 89.0, -104.0],
}


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_thresholds(dt):
    x = np.concatenate([_around(t, dt) for t in THRESHOLDS[dt]])
    _check(x, dt, CONTRACT_ULP)
    # the overflow boundary is exact: below it finite, above it +inf
    ovf = THRESHOLDS[dt][0]
    below = dt(ovf) if dt == np.float64 else np.nextafter(dt(ovf), dt(0))
    assert np.isfinite(vexp(np.array([below], dt))[0])
    assert np.isinf(vexp(np.array([np.nextafter(below, dt(np.inf))], dt))[0])


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_special_values(dt):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e300 if dt == np.float64
                  else 1e30, -1e300 if dt == np.float64 else -1e30,
                  np.finfo(dt).max, -np.finfo(dt).max, np.finfo(dt).smallest_subnormal,
                  -np.finfo(dt).smallest_subnormal], dt)
    y = vexp(x)
    assert y[0] == 1 and y[1] == 1
    assert y[2] == np.inf and y[3] == 0 and not np.signbit(y[3])
    assert np.isnan(y[4]) and np.isnan(y[5])
    assert y[6] == np.inf and y[7] == 0 and y[8] == np.inf and y[9] == 0
    assert y[10] == 1 and y[11] == 1
    assert not np.signbit(y[~np.isnan(y)]).any()


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_nan_is_quiet(dt):
    # a signalling NaN in, a quiet NaN out (quiet bit = top mantissa bit)
    ity, qbit = (np.uint64, 1 << 51) if dt == np.float64 else (np.uint32, 1 << 22)
    snan = np.array([0x7FF0000000000001 if dt == np.float64 else 0x7F800001], ity).view(dt)
    out = vexp(snan).view(ity)[0]
    assert np.isnan(vexp(snan)[0]) and out & qbit


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_lengths_and_unaligned(dt):
    # every tail length of the vector loop, and slices starting at odd offsets (unaligned)
    rng = np.random.default_rng(3)
    base = rng.uniform(-30, 30, 64).astype(dt)
    want = vexp(base)
    for n in range(18):
        for off in (0, 1, 3):
            got = vexp(base[off:off + n])
            assert got.shape == (n,)
            np.testing.assert_array_equal(got, want[off:off + n])
    assert vexp(np.empty(0, dt)).shape == (0,)


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_in_place(dt):
    x = np.linspace(-50, 50, 1001).astype(dt)
    want = vexp(x)
    vm.vexp(x, out=x)
    np.testing.assert_array_equal(x, want)


def test_rejects_bad_input():
    with pytest.raises(TypeError, match="vexp: x"):
        vexp(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="vexp: x"):
        vexp(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="vexp: out"):
        vexp(np.zeros(3), out=np.zeros(3, np.float32))


def _binade_f32(lo, sign=1.0):
    """Every float32 in [lo, 2*lo) (times sign), lo a power of two."""
    start = np.array([lo], np.float32).view(np.uint32)[0]
    bits = np.arange(start, start + (1 << 23), dtype=np.uint32)
    return bits.view(np.float32) * np.float32(sign)


@pytest.mark.parametrize("lo,sign", [(0.25, 1), (0.5, 1), (1.0, 1), (0.5, -1), (1.0, -1),
                                     (64.0, 1), (64.0, -1), (2.0 ** -20, 1)],
                         ids=lambda v: str(v))
def test_float32_exhaustive_binades(lo, sign):
    x = _binade_f32(lo, sign)
    x = x[np.abs(x) < 104]
    got = vexp(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))     # error < 2^-52 rel: < 2^-28 float32 ulp
    ex = np.floor(np.log2(np.maximum(want, np.finfo(np.float64).tiny)))
    ulp = np.exp2(np.maximum(ex, -126) - 23)
    finite = np.isfinite(got) & (want <= np.finfo(np.float32).max)
    err = np.abs(got[finite] - want[finite]) / ulp[finite]
    normal = want[finite] >= np.finfo(np.float32).tiny
    assert err.max() <= SUBNORMAL_ULP
    if normal.any():
        assert err[normal].max() <= NORMAL_ULP
    # beyond FLT_MAX the result must be +inf (x in [88.72..., 128))
    assert np.all(np.isinf(got[~finite]))


def report():
    """Max ulp per dtype (python -c 'import tests.test_vecmath as t; t.report()')."""
    for dt in (np.float64, np.float32):
        lo, hi = RANGES[dt]
        x = np.random.default_rng(0).uniform(lo, hi, 20000).astype(dt)
        err, _, _ = mp_errors(x, dt)
        print(dt.__name__, f"max {err.max():.4f} ulp over {x.size} samples in [{lo}, {hi}]")


# ---------------------------------------------------------------------- log ----
vlog = vm.vlog
LOG_ULP = 0.70             # vecmath.h, Design L5


def mp_log_errors(x, dt):
    got = vlog(x)
    err = np.empty(len(x))
    ref = np.empty(len(x), dt)
    for i, v in enumerate(x):
        e = _ctx.log(_ctx.mpf(float(v)))
        ref[i] = round_mpf(e, dt)
        if e == 0:
            err[i] = 0.0 if got[i] == 0 else np.inf
        else:
            err[i] = float(abs(_ctx.mpf(float(got[i])) - e) / _ulp_of_exact(abs(e), dt))
    return err, ref, got


def _check_log(x, dt):
    err, ref, got = mp_log_errors(x, dt)
    i = int(np.argmax(err))
    assert err[i] <= LOG_ULP, f"{dt.__name__} log({x[i]!r}) = {got[i]!r}: {err[i]:.3f} ulp"
    assert ulp_distance(got, ref, dt).max() <= 1
    return err.max()


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_log_dense_samples(dt):
    rng = np.random.default_rng(4)
    tiny = np.finfo(dt).smallest_subnormal
    big = np.log(np.finfo(dt).max)
    x = np.concatenate([
        rng.uniform(0.7, 1.42, 3000),                       # k = 0: the reduced range
        1 + rng.uniform(-1e-6, 1e-6, 1000),                 # log x ~ x - 1
        np.exp(rng.uniform(-big, big, 3000)),               # every binade
        rng.uniform(0, 1, 1000) * np.finfo(dt).tiny,        # subnormal inputs
    ]).astype(dt)
    x = np.maximum(x, tiny)
    _check_log(x, dt)


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_log_special_values(dt):
    fi = np.finfo(dt)
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, -np.nan, 1.0, fi.max,
                  fi.smallest_subnormal, fi.tiny, -fi.smallest_subnormal], dt)
    y = vlog(x)
    assert y[0] == -np.inf and y[1] == -np.inf
    assert np.isnan(y[2]) and np.isnan(y[3]) and np.isnan(y[11])
    assert y[4] == np.inf and np.isnan(y[5]) and np.isnan(y[6])
    assert y[7] == 0 and not np.signbit(y[7])
    for i in (8, 9, 10):
        assert y[i] == round_mpf(_ctx.log(_ctx.mpf(float(x[i]))), dt)


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["float64", "float32"])
def test_log_lengths_and_unaligned(dt):
    base = np.random.default_rng(5).uniform(0.01, 100, 64).astype(dt)
    want = vlog(base)
    for n in range(18):
        for off in (0, 1, 3):
            np.testing.assert_array_equal(vlog(base[off:off + n]), want[off:off + n])
    assert vlog(np.empty(0, dt)).shape == (0,)


@pytest.mark.parametrize("lo", [2.0 ** -149, 2.0 ** -130, 0.5, 1.0, 2.0 ** 100],
                         ids=["subnormal-low", "subnormal-high", "half", "one", "2^100"])
def test_log_float32_exhaustive_binades(lo):
    if lo == 2.0 ** -149:       # all subnormals up to 2^-127: 2^22 values
        x = np.arange(1, 1 << 22, dtype=np.uint32).view(np.float32)
    else:
        x = _binade_f32(lo)
    got = vlog(x).astype(np.float64)
    want = np.log(x.astype(np.float64))      # < 2^-52 relative: < 2^-28 float32 ulp
    nz = want != 0
    ex = np.floor(np.log2(np.abs(np.where(nz, want, 1.0))))
    ulp = np.exp2(np.maximum(ex, -126) - 23)
    err = np.abs(got[nz] - want[nz]) / ulp[nz]
    assert err.max() <= LOG_ULP
    assert np.all(got[~nz] == 0)
