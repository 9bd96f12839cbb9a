"""The Ozaki matmul on BLAS (refrt/_kernels/ozaki.py): error-free split, certified rounding
against the oracle, the Dot2 / superaccumulator fallbacks, IEEE specials, layouts."""
import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import refrt
from refrt._kernels import linalg as LA
from refrt._kernels import ozaki as OZ
from refrt.accuracy import measure
from refrt.families import gen_dot
from refrt.registry import get

DTYPES = (np.float32, np.float64)


@pytest.fixture
def always_ozaki(monkeypatch):
    """Every product through the Ozaki path, however small."""
    monkeypatch.setattr(OZ, "OZAKI_MIN_FLOPS", {np.dtype(d): 0 for d in DTYPES})


def _bias(dt, bias=None):
    return np.empty(0, dt) if bias is None else np.ascontiguousarray(bias, dt)


def _ozaki(a, bt, bias=None, threads=1):
    a3, b3 = np.ascontiguousarray(a[None]), np.ascontiguousarray(bt[None])
    out = np.empty((1, a.shape[0], bt.shape[0]), a.dtype)
    stats = OZ.matmul_nt(a3, b3, _bias(a.dtype, bias), out, threads, force=True)
    return out[0], stats


def _dot2(a, bt, bias=None):
    out = np.empty((1, a.shape[0], bt.shape[0]), a.dtype)
    LA.matmul_nt(np.ascontiguousarray(a[None]), np.ascontiguousarray(bt[None]),
                 _bias(a.dtype, bias), out, 1)
    return out[0]


def _exact(a, bt, bias=None):
    """Every output by the superaccumulator: the exact dot (+ bias) rounded once."""
    out = np.empty((1, a.shape[0], bt.shape[0]), a.dtype)
    flags = np.ones(out.shape, np.int8)
    LA.ozaki_fix(np.ascontiguousarray(a[None]), np.ascontiguousarray(bt[None]),
                 _bias(a.dtype, bias), flags, out)
    return out[0]


def _dot2_outputs(a, bt):
    """Outputs the Dot2 kernel computes (Design f): inf/NaN in the row or column."""
    return (~np.isfinite(a).all(1))[:, None] | (~np.isfinite(bt).all(1))[None, :]


def _same_bits(x, y):
    return np.array_equal(x.view(np.uint32 if x.dtype == np.float32 else np.uint64),
                          y.view(np.uint32 if y.dtype == np.float32 else np.uint64))


# ---- Design a: the split -------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 64, 512, 513, 4096, 10 ** 6])
def test_beta_keeps_slice_dots_exact(n):
    """n slice products of at most 2^beta each (in grid units) sum below 2^53."""
    beta = OZ._beta(n)
    assert n * 2.0 ** (2 * beta) <= 2.0 ** 53
    assert (n + 1) * 2.0 ** (2 * beta + 2) > 2.0 ** 53 or beta >= 26


def test_split_is_error_free_and_the_leading_product_exact():
    rng = np.random.default_rng(0)
    n = 512
    a = rng.standard_normal((6, n)) * 2.0 ** rng.integers(-30, 30, (6, n))
    a[0, :] *= 2.0 ** 900                 # large rows
    a[1, :] *= 2.0 ** -900                # small rows
    bt = rng.standard_normal((5, n)) * 2.0 ** rng.integers(-30, 30, (5, n))
    beta = OZ._beta(n)
    ta, _, oka = OZ._exponents(a, beta)
    tb, _, okb = OZ._exponents(bt, beta)
    assert oka.all() and okb.all()
    s_a, r_a = OZ._split(a, ta, beta)
    s_b, _ = OZ._split(bt, tb, beta)
    assert np.array_equal(s_a + r_a, a)   # and r_a = a - s_a was computed exactly:
    assert all(Fraction(x) == Fraction(s) + Fraction(r)
               for x, s, r in zip(a.ravel()[::97], s_a.ravel()[::97], r_a.ravel()[::97]))
    units = np.ldexp(s_a, (beta - ta)[:, None])
    assert np.array_equal(units, np.round(units)) and np.abs(units).max() <= 2 ** beta
    assert np.abs(r_a).max(axis=1).max() <= np.ldexp(1.0, ta - beta - 1).max()
    p0 = OZ._gemm_nt(s_a[None], s_b[None])[0]
    for i in range(6):
        for k in range(5):
            exact = sum(Fraction(x) * Fraction(y) for x, y in zip(s_a[i], s_b[k]))
            assert Fraction(p0[i, k]) == exact


# ---- accuracy against the certified oracle --------------------------------------------

SHAPES = {"matmul": ((12, 48), (48, 10)), "linear": ((10, 48), (9, 48), (9,))}


@pytest.mark.parametrize("op", ["matmul", "linear"])
@pytest.mark.parametrize("family", get("matmul").families)
def test_families_correctly_rounded(op, family, dtype, always_ozaki):
    """The registry's families, on the Ozaki path: 0 ulp against the oracle."""
    spec = dataclasses.replace(get(op), example_shapes=SHAPES[op])
    for seed in (0, 1):
        m = measure(spec, dtype, family, seed)
        assert m.max_ulp == 0, (op, family, seed, m)


@pytest.mark.parametrize("dt", DTYPES)
def test_ill_conditioned_dots_are_correctly_rounded(dt):
    """Condition numbers up to 1e40 (f64) / 1e30 (f32): far past Dot2's "twice the working
    precision", every output still equals the oracle's (the uncertified ones went to
    the superaccumulator)."""
    rng = np.random.default_rng(5)
    n, k = 40, 8
    conds = np.geomspace(1e8, 1e40 if dt == np.float64 else 1e30, k)
    pairs = [gen_dot(n, c, dt, rng) for c in conds]
    a = np.stack([x for x, _ in pairs])
    bt = np.stack([y for _, y in pairs])
    got, (first, fixed) = _ozaki(a, bt)
    want = refrt.oracle.evaluate("matmul", a, bt.T, dtype=dt).astype(dt)
    assert _same_bits(got, want)
    assert first > 0 and fixed > 0           # the family does exercise the fallbacks
    assert not _same_bits(_dot2(a, bt), want)   # ... and Dot2 alone is not enough here


# ---- Design f: inf/NaN, spreads, subnormals, overflow --------------------------------

@pytest.mark.parametrize("dt", DTYPES)
def test_nonfinite_rows_columns_and_bias_follow_the_dot2_kernel(dt):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((7, 33)).astype(dt)
    bt = rng.standard_normal((6, 33)).astype(dt)
    bias = rng.standard_normal(6).astype(dt)
    a[1, 3], a[2, 0], a[4, 9] = np.inf, np.nan, -np.inf
    bt[2, 3], bt[5, 7] = -np.inf, np.inf
    bt[3, :] = 0.0
    a[6, 3] = np.inf                         # inf * 0 with bt[3]: NaN
    bias[4] = np.inf
    for bb in (None, bias):
        got, (first, _) = _ozaki(a, bt, bb)
        d2 = _dot2(a, bt, bb)
        bad = (~np.isfinite(a).all(1))[:, None] | (~np.isfinite(bt).all(1))[None, :]
        if bb is not None:
            bad = bad | ~np.isfinite(bb)[None, :]
        assert _same_bits(got[bad], d2[bad])
        assert _same_bits(got[~bad], _exact(a, bt, bb)[~bad])
        assert first >= bad.sum()


def test_fallback_triggers_float64():
    """Exponent spreads the split cannot take, subnormal rows, overflow, underflow."""
    rng = np.random.default_rng(2)
    n = 24
    a = rng.standard_normal((6, n))
    bt = rng.standard_normal((5, n))
    a[0, :2] = 1e300, 1e-300                 # row max beyond TAU_MAX: the fmod split
    a[1] *= 2.0 ** -1060                     # subnormal row: grid below 2^-1074
    a[2, 0], bt[0, 0] = 1e200, 1e200         # overflows: the exact dot is inf
    a[3] *= 2.0 ** -500                      # products near underflow
    bt[1] *= 2.0 ** -500
    a[4, 0], a[4, 1] = 2.0 ** 1000, -2.0 ** 1000   # cancelling huge entries
    got, (first, fixed) = _ozaki(a, bt)
    want = refrt.oracle.evaluate("matmul", a, bt.T, dtype=np.float64)
    assert _same_bits(got, want)
    assert np.isinf(got[2, 0]) and first > 0 and fixed > 0


def test_fallback_triggers_float32():
    rng = np.random.default_rng(3)
    fi = np.finfo(np.float32)
    a = rng.standard_normal((4, 20)).astype(np.float32)
    bt = rng.standard_normal((3, 20)).astype(np.float32)
    a[0, :3] = fi.max, -fi.max, fi.max / 2   # cancel_max-like
    a[1] *= np.float32(2.0 ** -140)          # subnormal products (exact in float64)
    a[2, 0], bt[0, 0] = fi.max, fi.max       # overflow to inf
    got, (first, _) = _ozaki(a, bt)
    want = refrt.oracle.evaluate("matmul", a, bt.T, dtype=np.float32).astype(np.float32)
    assert _same_bits(got, want) and first > 0


def test_signed_zeros_as_the_dot2_kernel():
    """Exact zeros take Dot2's sign (-0 only when every product is -0), as matmul_nt."""
    for dt in DTYPES:
        a = np.array([[-0.0, 0.0], [1.0, -1.0], [-1.0, 0.0]], dt)
        bt = np.array([[0.0, 0.0], [1.0, 1.0], [-0.0, 0.0]], dt)
        got, _ = _ozaki(a, bt)
        assert _same_bits(got, _dot2(a, bt))


# ---- layouts, empties, threads, batches ------------------------------------------------

@pytest.mark.parametrize("dt", DTYPES)
def test_layouts_and_empties_through_the_ops(dt, always_ozaki):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((9, 17)).astype(dt)
    b = rng.standard_normal((17, 8)).astype(dt)
    want = refrt.oracle.evaluate("matmul", a, b, dtype=dt).astype(dt)
    big = b.astype(b.dtype.newbyteorder(">"))
    ro = a.copy()
    ro.setflags(write=False)
    for x, y in ((a, b), (np.asfortranarray(a), b.T.copy().T), (ro, big),
                 (np.repeat(a, 2, axis=1)[:, ::2], b)):
        assert _same_bits(np.asarray(refrt.ops.matmul(x, y), dt), want)
    assert refrt.ops.matmul(a[:0], b).shape == (0, 8)
    assert refrt.ops.matmul(a[:, :0], b[:0]).tolist() == np.zeros((9, 8)).tolist()
    w = rng.standard_normal((5, 0)).astype(dt)
    bias = rng.standard_normal(5).astype(dt)
    y = refrt.ops.linear(rng.standard_normal((3, 0)).astype(dt), w, bias)
    assert _same_bits(np.asarray(y, dt), np.broadcast_to(bias, (3, 5)).copy())


@pytest.mark.parametrize("dt", DTYPES)
def test_threads_give_the_same_bits_and_restore_blas(dt):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((70, 90)).astype(dt)
    bt = rng.standard_normal((60, 90)).astype(dt)
    libs = OZ._BlasThreads.libs()
    before = [lib.get_num_threads() for lib in libs]
    one, _ = _ozaki(a, bt, threads=1)
    two, _ = _ozaki(a, bt, threads=2)
    assert _same_bits(one, two) and _same_bits(one, _exact(a, bt))
    assert [lib.get_num_threads() for lib in libs] == before


def test_batched_equals_each_batch(always_ozaki):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 5, 11))
    b = rng.standard_normal((3, 11, 4))
    got = np.asarray(refrt.ops.matmul(a, b))
    for i in range(3):
        assert _same_bits(got[i], _exact(a[i], np.ascontiguousarray(b[i].T)))


def test_size_rule_picks_dot2_for_small_products():
    for dt in DTYPES:
        assert not OZ.use_ozaki(4, 4, 4, dt) and OZ.use_ozaki(512, 512, 512, dt)
        assert not OZ.use_ozaki(512, 0, 512, dt)
    assert OZ.use_ozaki(64, 64, 64, np.float32) and not OZ.use_ozaki(256, 256, 256, np.float64)
    a = np.ones((1, 3, 3))
    assert OZ.matmul_nt(a, a, np.empty(0), np.empty((1, 3, 3))) is None


# ---- a seeded hunt: Ozaki == the exact dot rounded once, specials as Dot2 -----------------

_VALUES = st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from(
    [0.0, -0.0, 1.0, -1.0, 2.0 ** -140, 3e38, -3e38, 1e-30, 2.0 ** 60, np.inf, np.nan]))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.integers(1, 5), st.integers(1, 40), st.integers(1, 5),
       st.sampled_from(DTYPES), st.data())
def test_hunt_against_the_exact_dot(m, n, p, dt, data):
    draw = lambda k: np.array(data.draw(st.lists(_VALUES, min_size=k, max_size=k)), dt)
    a, bt = draw(m * n).reshape(m, n), draw(p * n).reshape(p, n)
    if dt == np.float64 and data.draw(st.booleans()):
        a = a * 2.0 ** data.draw(st.integers(-1000, 900))
    with np.errstate(all="ignore"):
        got, _ = _ozaki(a, bt)
        bad = _dot2_outputs(a, bt)
        assert _same_bits(got[bad], _dot2(a, bt)[bad])
        assert _same_bits(got[~bad], _exact(a, bt)[~bad])
