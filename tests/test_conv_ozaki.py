"""conv2d's forward on the Ozaki path (refrt/_kernels/conv_ozaki.py, conv.im2col_kn):
adversarial inputs against the certified oracle at 0 ulp (the contract: every output of
finite inputs correctly rounded), inf/NaN outputs bit-equal to the Dot2 path, threads and
blocking independent.  The path is forced for these small sizes (float_conv.FORCE_OZAKI)."""
import numpy as np
import pytest

from refrt import ops, oracle
from refrt.backends import float_conv
from refrt.families import gen_dot
from refrt.metrics import ulp_distance

DTYPES = (np.float32, np.float64)


@pytest.fixture
def forced(monkeypatch):
    monkeypatch.setattr(float_conv, "FORCE_OZAKI", True)


def _both_paths(monkeypatch, *args, **kw):
    monkeypatch.setattr(float_conv, "FORCE_OZAKI", False)
    old = ops.conv2d(*args, **kw)
    monkeypatch.setattr(float_conv, "FORCE_OZAKI", True)
    return old, ops.conv2d(*args, **kw)


def _exact(got, x, w, b, dt, **kw):
    want = oracle.evaluate("conv2d", x, w, b, dtype=dt, **kw)
    assert got.dtype == dt and got.shape == want.shape
    d = ulp_distance(got, want, dt)
    assert d.max() == 0, (np.argwhere(d > 0)[:5], got[d > 0][:5], want[d > 0][:5])
    # correct rounding includes the sign of zero
    assert np.array_equal(np.signbit(got[got == 0]), np.signbit(want[got == 0]))


# stride/padding/dilation/groups mixes, with and without bias
MIXES = [
    dict(padding=1),
    dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
    dict(stride=2, dilation=2, groups=4),
    dict(padding=(0, 3), dilation=(1, 3)),
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kw", MIXES)
def test_parameter_mixes_are_correctly_rounded(forced, dt, kw):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 8)).astype(dt)
    w = rng.standard_normal((4, 4 // kw.get("groups", 1), 3, 2)).astype(dt)
    b = rng.standard_normal(4).astype(dt)
    _exact(ops.conv2d(x, w, bias=b, **kw), x, w, b, dt, **kw)
    _exact(ops.conv2d(x, w, **kw), x, w, np.zeros(4, dt), dt, **kw)


def _gendot_conv(dt, conds, rng):
    """A 2x2 / stride 2 conv over 4 channels (16 taps, patches do not overlap): output
    channel o's weights and the patch at position o are a GenDot pair of condition
    conds[o]; the other (channel, position) pairs mix them."""
    q = 3
    x = np.zeros((1, 4, 2 * q, 2 * q), dt)
    w = np.zeros((len(conds), 4, 2, 2), dt)
    for o, c in enumerate(conds):
        u, v = gen_dot(16, c, dt, rng)
        i, j = divmod(o, q)
        x[0, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = u.reshape(4, 2, 2)
        w[o] = v.reshape(4, 2, 2)
    return x, w


@pytest.mark.parametrize("dt", DTYPES)
def test_ill_conditioned_patches(forced, dt):
    rng = np.random.default_rng(2)
    conds = [1e8, 1e16, 1e24, 1e30] + ([1e40] if dt == np.float64 else [])
    x, w = _gendot_conv(dt, conds, rng)
    for b in (np.zeros(len(conds), dt), rng.standard_normal(len(conds)).astype(dt)):
        _exact(ops.conv2d(x, w, bias=b, stride=2), x, w, b, dt, stride=2)


@pytest.mark.parametrize("dt", DTYPES)
def test_bias_cancels_the_dot(forced, dt):
    """bias = -(the dot rounded): the output is the dot's rounding error, exact only if
    dot and bias are one sum rounded once."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 5, 5)).astype(dt)
    w = rng.standard_normal((2, 3, 3, 3)).astype(dt)
    plain = ops.conv2d(x, w)
    b = -plain[0, :, 1, 2].astype(dt)
    _exact(ops.conv2d(x, w, bias=b), x, w, b, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_huge_and_subnormal_values(forced, dt):
    rng = np.random.default_rng(4)
    fi = np.finfo(dt)
    sub = fi.smallest_subnormal
    cases = [
        # partial sums overflow, the exact value is finite (and sometimes not)
        (rng.choice([-1.0, 1.0], (1, 2, 5, 5)) * fi.max / 4,
         rng.choice([-1.0, 1.0, 2.0], (2, 2, 3, 3))),
        # beyond the split's c range (float64 tau > 970) next to small values
        (rng.standard_normal((1, 2, 5, 5)) * np.where(rng.random((1, 2, 5, 5)) < 0.3,
                                                      fi.max / 8, 1.0),
         rng.standard_normal((2, 2, 3, 3))),
        # subnormal results and products that underflow
        (rng.standard_normal((1, 2, 5, 5)) * sub * 64, rng.standard_normal((2, 2, 3, 3))),
        (rng.standard_normal((1, 2, 5, 5)) * fi.tiny,
         rng.standard_normal((2, 2, 3, 3)) * 2.0 ** -30),
        # mixed: one huge tap, the rest tiny (wide range inside one patch)
        (rng.standard_normal((1, 2, 5, 5)) * np.where(rng.random((1, 2, 5, 5)) < 0.1,
                                                      2.0 ** 60, 2.0 ** -60),
         rng.standard_normal((2, 2, 3, 3))),
    ]
    for xs, ws in cases:
        x, w = xs.astype(dt), ws.astype(dt)
        b = rng.standard_normal(2).astype(dt) * x.max()
        for bias in (None, b):
            got = ops.conv2d(x, w, bias=bias, padding=1)
            _exact(got, x, w, np.zeros(2, dt) if bias is None else bias, dt, padding=1)


@pytest.mark.parametrize("dt", DTYPES)
def test_inf_nan_in_one_patch_match_the_dot2_path(monkeypatch, dt):
    """inf/NaN taps (and 0 * inf from padding-free zero weights) keep Dot2's IEEE bits;
    the finite outputs elsewhere stay correctly rounded."""
    rng = np.random.default_rng(5)
    for bad in (np.inf, -np.inf, np.nan):
        x = rng.standard_normal((1, 3, 6, 6)).astype(dt)
        x[0, 1, 2, 3] = bad
        w = rng.standard_normal((3, 3, 3, 3)).astype(dt)
        w[1, 1, 1, 1] = 0                       # 0 * inf = NaN in channel 1 only
        b = rng.standard_normal(3).astype(dt)
        old, new = _both_paths(monkeypatch, x, w, bias=b, padding=1)
        assert np.array_equal(old, new, equal_nan=True)
        fin = np.isfinite(new)
        assert (~fin).any() and fin.any()
        want = oracle.evaluate("conv2d", np.nan_to_num(x, nan=0, posinf=0, neginf=0), w, b,
                               dtype=dt, padding=1)
        # outputs whose patch does not hold the bad tap are the plain finite conv
        far = np.ones_like(fin)
        far[0, :, 1:5, 2:6] = False
        assert ulp_distance(new[far], want[far], dt).max() == 0
    # an inf weight and an inf bias
    x = rng.standard_normal((1, 2, 5, 5)).astype(dt)
    w = rng.standard_normal((2, 2, 3, 3)).astype(dt)
    w[0, 0, 0, 0] = np.inf
    b = np.array([1.0, -np.inf], dt)
    old, new = _both_paths(monkeypatch, x, w, bias=b)
    assert np.array_equal(old, new, equal_nan=True)


def test_signed_zeros_and_zero_patches(forced):
    for dt in DTYPES:
        x = np.zeros((1, 2, 4, 4), dt)
        x[0, 0, 0, 0] = -0.0
        w = np.ones((2, 2, 2, 2), dt)
        w[1] = -1
        b = np.array([-0.0, 0.0], dt)
        _exact(ops.conv2d(x, w, bias=b, padding=1), x, w, b, dt, padding=1)
        _exact(ops.conv2d(-x, w, bias=-b), -x, w, -b, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_same_bits_as_dot2_path_threads_and_blocks(monkeypatch, dt):
    """Random mixes: the Ozaki path gives the Dot2 path's bits where both are correctly
    rounded (normal inputs), for 1 and 2 threads and for blocked positions."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 6, 11, 9)).astype(dt)
    w = rng.standard_normal((6, 3, 3, 3)).astype(dt)
    b = rng.standard_normal(6).astype(dt)
    kw = dict(groups=2, padding=1, stride=(1, 2))
    old, new = _both_paths(monkeypatch, x, w, bias=b, **kw)
    assert np.array_equal(old, new)
    assert np.array_equal(ops.conv2d(x, w, bias=b, threads=2, **kw), new)
    monkeypatch.setattr(float_conv, "COLS_KN_BYTES", 8 * 2 * 27 * 99)   # 1 sample a chunk
    assert np.array_equal(ops.conv2d(x, w, bias=b, **kw), new)


def test_default_threshold_takes_the_ozaki_path_at_bench_sizes(monkeypatch):
    calls = []
    orig = float_conv.CO.matmul_kn
    monkeypatch.setattr(float_conv.CO, "matmul_kn",
                        lambda *a, **k: calls.append(1) or orig(*a, **k))
    x = np.ones((1, 16, 12, 12), np.float32)
    ops.conv2d(x, np.ones((16, 16, 3, 3), np.float32))
    assert calls
    calls.clear()
    ops.conv2d(np.ones((1, 2, 4, 4), np.float32), np.ones((2, 2, 3, 3), np.float32))
    assert not calls


# ---- conv_transpose2d and conv2d's input gradient: the same map, as a conv2d ----------

CT_MIXES = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 3), padding=(2, 0), dilation=(1, 2), output_padding=(1, 2), groups=2),
    dict(padding=3),                                   # padding > d (k - 1): cropped
    dict(stride=3, padding=4, dilation=2, output_padding=1),
    dict(stride=2, dilation=2, padding=1),             # gcd(s, d) = 2: phases without taps
    dict(stride=(4, 2), dilation=(2, 4), padding=(3, 1), output_padding=(1, 0)),
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kw", CT_MIXES)
def test_conv_transpose_as_conv_is_correctly_rounded(forced, dt, kw):
    rng = np.random.default_rng(7)
    g = kw.get("groups", 1)
    x = rng.standard_normal((2, 4, 5, 6)).astype(dt)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dt)
    b = rng.standard_normal(3 * g).astype(dt)
    got = ops.conv_transpose2d(x, w, bias=b, **kw)
    want = oracle.evaluate("conv_transpose2d", x, w, b, dtype=dt, **kw)
    assert ulp_distance(got, want, dt).max() == 0


@pytest.mark.parametrize("dt", DTYPES)
def test_conv2d_input_gradient_is_the_correctly_rounded_transpose(forced, dt):
    """conv2d's VJP for x is conv_transpose2d of g by the weights: one exact sum per
    element of x (no col2im adds), so it is correctly rounded, also on GenDot data."""
    from refrt.autodiff import vjp_op
    rng = np.random.default_rng(8)
    x, w = _gendot_conv(dt, [1e8, 1e16, 1e24], rng)
    w = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    kw = dict(stride=1, padding=1, dilation=1, groups=1)
    out = ops.conv2d(x, w, padding=1)
    g = rng.standard_normal(out.shape).astype(dt)
    gx = vjp_op("conv2d", [x, w, np.zeros(3, dt)], kw, out, g)[0]
    want = oracle.evaluate("conv_transpose2d", g, w, np.zeros(4, dt), dtype=dt, padding=1)
    assert ulp_distance(gx, want, dt).max() == 0


@pytest.mark.parametrize("dt", DTYPES)
def test_conv_transpose_non_finite_keeps_the_gathered_semantics(monkeypatch, dt):
    """An inf weight must not leak NaN (0 * inf) into outputs it never reaches: inputs
    with inf/NaN take the gathered kernel (same bits as before)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 4, 4)).astype(dt)
    w = rng.standard_normal((2, 3, 3, 3)).astype(dt)
    w[0, 1, 0, 0] = np.inf
    x[0, 1, 2, 2] = np.nan
    monkeypatch.setattr(float_conv, "FORCE_OZAKI", False)
    old = ops.conv_transpose2d(x, w, stride=2)
    monkeypatch.setattr(float_conv, "FORCE_OZAKI", True)
    new = ops.conv_transpose2d(x, w, stride=2)
    assert np.array_equal(old, new, equal_nan=True) and np.isfinite(new).any()


def _exact_weight_grad(x, g, kh, kw, pad):
    """dW[o, c, i, j] = sum_{n, h, w} g[n, o, h, w] xpad[n, c, h + i, w + j], exactly
    (Fractions), rounded once to float64."""
    from fractions import Fraction
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, oc, ho, wo = g.shape
    out = np.empty((oc, x.shape[1], kh, kw))
    for o in range(oc):
        for c in range(x.shape[1]):
            for i in range(kh):
                for j in range(kw):
                    win = xp[:, c, i:i + ho, j:j + wo].ravel()
                    out[o, c, i, j] = float(sum(Fraction(float(u)) * Fraction(float(v))
                                                for u, v in zip(g[:, o].ravel(), win)))
    return out


def test_float64_weight_gradient_is_correctly_rounded(forced):
    """conv2d's float64 weight gradient on the two-level split (conv_ozaki.matmul_kn):
    long dots over samples and positions with cancellation, 0 ulp to the exact value."""
    from refrt.autodiff import vjp_op
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 2, 5, 6)) * np.where(rng.random((2, 2, 5, 6)) < 0.2,
                                                      2.0 ** 40, 1.0)
    w = rng.standard_normal((3, 2, 3, 3))
    out = ops.conv2d(x, w, padding=1)
    g = rng.standard_normal(out.shape) * np.where(rng.random(out.shape) < 0.2, 2.0 ** 30, 1)
    kw = dict(stride=1, padding=1, dilation=1, groups=1)
    gw = vjp_op("conv2d", [x, w, np.zeros(3)], kw, out, g)[1]
    assert np.array_equal(gw, _exact_weight_grad(x, g, 3, 3, 1))


def test_conv_transpose_random_geometries_against_the_oracle(forced):
    """Seeded random stride / dilation / kernel / padding / output_padding / groups (the
    sub-pixel phases of _conv_t_ozaki, with and without taps): 0 ulp."""
    rng = np.random.default_rng(12)
    done = 0
    while done < 12:
        s = tuple(int(v) for v in rng.integers(1, 5, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2))
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        p = tuple(int(rng.integers(0, d[a] * (k[a] - 1) + 1)) for a in (0, 1))
        op = tuple(int(rng.integers(0, max(s[a], d[a]))) for a in (0, 1))
        g = int(rng.choice([1, 2]))
        dt = (np.float32, np.float64)[done % 2]
        x = rng.standard_normal((1, 2 * g, *rng.integers(1, 5, 2))).astype(dt)
        w = rng.standard_normal((2 * g, int(rng.integers(1, 3)), *k)).astype(dt)
        b = rng.standard_normal(w.shape[1] * g).astype(dt)
        kw = dict(stride=s, dilation=d, padding=p, output_padding=op, groups=g)
        try:
            got = ops.conv_transpose2d(x, w, bias=b, **kw)
        except ValueError:                      # an empty output: not a geometry to test
            continue
        want = oracle.evaluate("conv_transpose2d", x, w, b, dtype=dt, **kw)
        assert ulp_distance(got, want, dt).max() == 0, kw
        done += 1
