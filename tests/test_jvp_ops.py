"""The forward-mode (JVP) ops against independent references.

1. Each JVP op is the directional derivative of refrt's own primal: mpmath.diff of the
   primal's mp formula along the tangents, at 256 bits (to 2**-100 relative);
2. refrt float64 against torch.func.jvp of the torch primal (log-probability y for
   log_softmax_jvp, where the catalog's formula is that derivative);
3. the VJP with respect to the tangents is the primal's VJP (scaled_dot_product_attention_jvp:
   SDPA's; q, k, v get none);
4. bad input names op, argument, expectation and what came;
5. strict-xfail reproducers of the open hunt cases (tests/test_hunt.py KNOWN).
"""
import mpmath
import numpy as np
import pytest

from refrt import backends, ops
from refrt._prepare import prepare
from refrt.accuracy import reference
from refrt.autodiff import vjp_op
from refrt.backends.mpctx import make_context, to_ctx
from refrt.errors import RefrtError
from refrt.metrics import ulp_distance
from refrt.registry import OPS

RNG = np.random.default_rng(20261201)


def _normal(*shape):
    return RNG.standard_normal(shape)


def _log_probs(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# (jvp op, its params, primal op, primal params, primal inputs, tangents, how the jvp op's
#  arguments are built from (primal inputs, tangents))
def _cases():
    x = _normal(3, 5)
    yield ("log_softmax_jvp", {"axis": -1}, "log_softmax", {"axis": -1}, [x], [_normal(3, 5)],
           lambda p, t: [_log_probs(p[0]), t[0]])
    x = _normal(4, 3)
    yield ("log_softmax_jvp", {"axis": 0}, "log_softmax", {"axis": 0}, [x], [_normal(4, 3)],
           lambda p, t: [_log_probs(p[0], 0), t[0]])
    x, g, b = _normal(3, 6), _normal(6), _normal(6)
    yield ("layer_norm_jvp", {"eps": 1e-6}, "layer_norm", {"eps": 1e-6}, [x, g, b],
           [_normal(3, 6), _normal(6), _normal(6)],
           lambda p, t: [p[0], p[1], t[0], t[1], t[2]])
    for ca, shape in ((1, (2, 3, 4)), (0, (3, 2, 3))):
        c = shape[ca]
        yield ("batch_norm2d_jvp", {"eps": 1e-6, "channel_axis": ca}, "batch_norm",
               {"eps": 1e-6, "channel_axis": ca}, [_normal(*shape), _normal(c), _normal(c)],
               [_normal(*shape), _normal(c), _normal(c)],
               lambda p, t: [p[0], p[1], t[0], t[1], t[2]])
    pp = {"kernel_size": 3, "stride": 2, "padding": 1}
    yield ("max_pool2d_jvp", pp, "max_pool2d", pp, [_normal(2, 2, 5, 6)], [_normal(2, 2, 5, 6)],
           lambda p, t: [p[0], t[0]])
    for beta in (1.5, -2.0):
        sp = dict(pp, beta=beta)
        yield ("smooth_max_pool2d_jvp", sp, "smooth_max_pool2d", sp, [_normal(1, 2, 5, 6)],
               [_normal(1, 2, 5, 6)], lambda p, t: [p[0], t[0]])
    mask = np.ones((2, 3, 4), bool)
    mask[0, 1] = False                                  # a fully blocked row
    mask[1, :, 2] = False                               # a blocked key
    for sp in ({}, {"is_causal": True}, {"mask": mask, "scale": 0.7}):
        shapes = ((2, 3, 2), (2, 4, 2), (2, 4, 3))
        yield ("scaled_dot_product_attention_jvp", sp, "scaled_dot_product_attention", sp,
               [_normal(*s) for s in shapes], [_normal(*s) for s in shapes],
               lambda p, t: list(p) + list(t))


CASES = list(_cases())
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jvp_is_the_directional_derivative_of_the_primal(case):
    """mp JVP = d/dt primal(p + t dp) at t = 0 (mpmath.diff of refrt's mp primal)."""
    name, params, primal, pparams, p, t, build = case
    backends.load()
    ctx = make_context(256)
    spec = OPS[primal]
    _, full, _, _ = prepare(spec, [np.asarray(a) for a in p], dict(pparams))
    pm = [to_ctx(ctx, np.asarray(a, np.float64)) for a in p]
    tm = [to_ctx(ctx, np.asarray(a, np.float64)) for a in t]
    f = backends.MP[primal]

    def along(s):
        return np.asarray(f(ctx, [a + s * d for a, d in zip(pm, tm)], full), dtype=object)

    want = ctx.diff(lambda s: along(s).ravel()[0], 0)   # one element through diff's step
    step = ctx.ldexp(1, -80)
    fd = (along(step) - along(-step)) / (2 * step)      # all elements, error O(step^2)
    assert abs(fd.ravel()[0] - want) < ctx.ldexp(1, -100) * (abs(want) + 1)
    args = build(p, t)
    got = np.asarray(ops.evaluate(name, *args, backend="mp", **params), dtype=object)
    if name == "log_softmax_jvp":
        # y = log_softmax(x) rounded to float64: the JVP at the rounded y differs from the
        # derivative at x by O(2^-53); the mp log_softmax of x gives y exactly
        y = np.asarray(ops.evaluate("log_softmax", *p, backend="mp", prec=256, **pparams),
                       dtype=object)
        got = np.asarray(backends.MP[name](ctx, [y, tm[0]], dict(params, axis=params["axis"]
                                                                   % y.ndim)), dtype=object)
    scale = max(abs(v) for v in fd.ravel()) + 1
    worst = max(abs(a - b) for a, b in zip(got.ravel(), fd.ravel()))
    assert worst / scale < ctx.ldexp(1, -100), (name, mpmath.nstr(worst / scale, 5))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float64_matches_torch_func_jvp(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    name, params, primal, pparams, p, t, build = case
    if primal == "smooth_max_pool2d":
        pytest.skip("PyTorch has no smooth max pool")
    T = [torch.tensor(a, dtype=torch.float64) for a in p]
    D = [torch.tensor(a, dtype=torch.float64) for a in t]
    if primal == "log_softmax":
        fn = lambda x: F.log_softmax(x, params["axis"])                       # noqa: E731
    elif primal == "layer_norm":
        fn = lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, 1e-6)      # noqa: E731
    elif primal == "batch_norm":
        def fn(x, g, b):
            xb = x[None] if params["channel_axis"] == 0 else x
            y = F.batch_norm(xb, None, None, g, b, True, 0.0, 1e-6)
            return y[0] if params["channel_axis"] == 0 else y
    elif primal == "scaled_dot_product_attention":
        m = params.get("mask")
        m = None if m is None else torch.as_tensor(m)

        def fn(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=params.get(
                "scale"), is_causal=params.get("is_causal", False))
    else:
        fn = lambda x: F.max_pool2d(x, 3, 2, 1)                                # noqa: E731
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):                  # the CPU flash kernel has no forward AD
        want = torch.func.jvp(fn, tuple(T), tuple(D))[1].numpy()
    got = ops.evaluate(name, *build(p, t), **params)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vjp_wrt_tangents_is_the_primal_vjp(case):
    """The JVP is linear in its tangents with the primal's Jacobian: the tangents'
    gradients equal the primal's VJP (float64; max_pool2d exactly)."""
    name, params, primal, pparams, p, t, build = case
    args = [np.asarray(a, np.float64) for a in build(p, t)]
    out = ops.evaluate(name, *args, **params)
    g = _normal(*out.shape)
    mine = vjp_op(name, args, params, None, g, "f64")
    ref = vjp_op(primal, [np.asarray(a, np.float64) for a in p], pparams, None, g, "mp")
    k0 = {"log_softmax_jvp": 1, "max_pool2d_jvp": 1, "smooth_max_pool2d_jvp": 1,
          "scaled_dot_product_attention_jvp": 3}.get(name, 2)
    if name == "log_softmax_jvp":
        # log_softmax's VJP from x: g - softmax(x) sum(g) = the tangent gradient at y
        pairs = [(mine[1], ref[0])]
    else:
        pairs = list(zip(mine[k0:], ref))
    for a, b in pairs:
        b = np.asarray(b, dtype=np.float64)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * (np.abs(b).max() + 1))
    if name == "max_pool2d_jvp":
        assert not mine[0].any()                       # x: zero gradient
        assert np.array_equal(mine[1], vjp_op("max_pool2d", args[:1], pparams, None, g,
                                              "f64")[0])
    if name == "scaled_dot_product_attention_jvp":
        assert mine[:3] == (None, None, None)          # q, k, v: non-differentiable (contract)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sdpa_jvp_blocked_keys_are_not_read(dtype):
    """A blocked key's dk and dv (inf, NaN) do not reach the result; a fully blocked row
    gives +0; the rest is within the registry budget of the certified value."""
    q, k, v, dq, dk, dv = (_normal(2, 3, 2).astype(dtype), _normal(2, 4, 2).astype(dtype),
                           _normal(2, 4, 3).astype(dtype), _normal(2, 3, 2).astype(dtype),
                           _normal(2, 4, 2).astype(dtype), _normal(2, 4, 3).astype(dtype))
    mask = np.ones((2, 3, 4), bool)
    mask[:, :, 1] = False
    mask[1, 2] = False
    clean = ops.evaluate("scaled_dot_product_attention_jvp", q, k, v, dq, dk, dv, mask=mask)
    dk[:, 1], dv[:, 1] = np.inf, np.nan
    got = ops.evaluate("scaled_dot_product_attention_jvp", q, k, v, dq, dk, dv, mask=mask)
    assert np.array_equal(got, clean)
    assert not got[1, 2].any() and not np.signbit(got[1, 2]).any()
    want = reference(OPS["scaled_dot_product_attention_jvp"], [q, k, v, dq, dk, dv],
                     {"mask": mask, "is_causal": False, "scale": None}, dtype)
    assert ulp_distance(got, want, dtype).max() <= OPS["scaled_dot_product_attention_jvp"].tol[dtype]


def test_sdpa_vjp_tied_max_keys_give_zero_not_nan():
    """float32 keys (-max, max) twice: the two weights tie at 1/2 and dq = dS_0 (k_0 - k_2)
    = 0 in the reals; dS times the unscaled +-max keys overflowed to inf - inf = NaN before
    attention.pyx Design (f') (the JVP's cancel_max draw found it)."""
    f = np.float32
    M, H = f(3.4028235e38), f(1.7014117e38)
    q = np.array([[-H, M]], f)
    k = np.array([[-M, M], [H, -H], [-M, M]], f)
    v = np.array([[M, -H], [-M, H], [-M, M]], f)
    g = np.array([[-0.0084, -2.1]], f)
    gq, gk, gv = vjp_op("scaled_dot_product_attention", [q, k, v], {}, None, g, "f32")
    assert gq.tolist() == [[0.0, 0.0]]
    want = vjp_op("scaled_dot_product_attention", [q, k, v], {}, None, g, "mp")
    for a, b in ((gq, want[0]), (gk, want[1]), (gv, want[2])):
        with np.errstate(over="ignore"):
            b = np.asarray(b, np.float64).astype(f)      # the real dk overflows: +-inf
        assert np.array_equal(a, b, equal_nan=True), (a, b)


def test_log_softmax_jvp_one_hot_and_tied_rows_exact():
    """A one-hot row's tangent is 0; a uniform row's is dx - mean(dx), correctly rounded."""
    y = np.array([[0.0, -np.inf, -np.inf], [np.log(1 / 3)] * 3], np.float64)
    dx = np.array([[3.0, 5.0, -2.0], [1.0, 2.0, 6.0]])
    got = ops.evaluate("log_softmax_jvp", y, dx)
    assert got[0].tolist() == [0.0, 5.0 - 3.0, -2.0 - 3.0]
    want = reference(OPS["log_softmax_jvp"], [y, dx], {"axis": -1}, np.float64)
    assert ulp_distance(got, want, np.float64).max() <= 1


@pytest.mark.parametrize("name,args,params,arg", [
    ("log_softmax_jvp", [np.zeros((2, 3)), np.zeros((2, 4))], {}, "dx"),
    ("layer_norm_jvp", [np.zeros((2, 3)), np.ones(3), np.zeros((2, 3)), np.ones(4), np.ones(3)],
     {}, "dgamma"),
    ("layer_norm_jvp", [np.zeros((2, 3)), np.ones(3), np.zeros((3, 2)), np.ones(3), np.ones(3)],
     {}, "dx"),
    ("batch_norm2d_jvp", [np.zeros((2, 3, 4)), np.ones(3), np.zeros((2, 3, 4)), np.ones(2),
                          np.ones(3)], {}, "dgamma"),
    ("batch_norm2d_jvp", [np.zeros((2, 3, 4)), np.ones(3), np.zeros((2, 3, 4)), np.ones(3),
                          np.ones(3)], {"channel_axis": 2}, "channel_axis"),
    ("max_pool2d_jvp", [np.zeros((1, 4, 4)), np.zeros((1, 4, 5))], {}, "dx"),
    ("scaled_dot_product_attention_jvp", [np.zeros((3, 2)), np.zeros((4, 2)), np.zeros((4, 1)),
                                          np.zeros((3, 2)), np.zeros((4, 3)), np.zeros((4, 1))],
     {}, "dk"),
    ("scaled_dot_product_attention_jvp", [np.zeros((3, 2)), np.zeros((4, 2)), np.zeros((4, 1)),
                                          np.zeros((3, 2)), np.zeros((4, 2)), np.zeros((4, 1))],
     {"mask": np.ones((3, 4), bool), "is_causal": True}, "mask"),
    ("max_pool2d_jvp", [np.zeros((1, 4, 4)), np.zeros((1, 4, 4))], {"kernel_size": 9},
     "kernel_size"),
])
def test_bad_input_names_op_and_argument(name, args, params, arg):
    with pytest.raises(RefrtError) as e:
        ops.evaluate(name, *args, **params)
    msg = str(e.value)
    assert name in msg and f"'{arg}'" in msg or f" {arg}" in msg, msg
    assert name in msg, msg


# ---- open cases found by the hunt (tests/test_hunt.py KNOWN) ------------------------------

# the hunt's draws (tests/test_hunt.py, seed 20261201), as printed by its assertion
LN_SUBNORMAL = [[[-1.699e-320, 2.68e-321, -1.4313e-320, -2.54e-321, -1.556247e-318, 2.542e-320], [7.91e-320, -2.213e-321, 4.7221e-319, -6.7741e-319, -4.94e-322, -1.853e-321], [5.180654e-318, -1.73e-321, -2.1314e-320, 1.246e-320, -9.05e-321, 2.37e-322]], [0.10092613194784902, -2.3847440135737776, 8.988465674311579e+307, -0.35205937739336424, -8.988465674311579e+307, 1.9298876250535417e-253], [[709.7827128933839, 2.0515230510623132e-75, -0.49999999999999994, -6.0620005537653274e+206, 1.633582192604321e+161, -6.108955076268992e+16], [-3.623193391548345e+114, 2.5e-323, 729.782712893384, 2.2250738585072014e-308, -2.0289055294440242e-49, 708.3964185322644], [709.7827128933844, 2.2250738585071994e-308, 2.225073858507199e-308, -2.2204460492503126e-16, 0.5, -5.458580242054282e+16]], [-2.160167438951374, -1.5724913147314248e-242, -1.7868640305041938, -4.0, -1.7976931348623157e+308, 1.7976931348623157e+308], [14.0, 3.9999999999999996, 2.468170068723241, -1.500407367818978e-184, 1.6015816963285266e-42, 2.4942357244647386]]
BN_MAX = [[[[-1.7014117331926443e+38, 1.7014117331926443e+38, 0.15000000596046448, 0.26570701599121094], [-3.4028234663852886e+38, 3.3422272205352783, 3.4028234663852886e+38, -0.0], [-2.3275721073150635, -1.7014117331926443e+38, 1.7014117331926443e+38, -0.4777985215187073]], [[0.0, 3.4028234663852886e+38, -3.4028234663852886e+38, -0.8756952285766602], [0.20893679559230804, 1.9987549781799316, -3.4028234663852886e+38, 3.4028234663852886e+38], [-2.4055099487304688, -1.7014117331926443e+38, 1.7014117331926443e+38, -0.02891678176820278]]], [-2.802596928649634e-45, 1.1920928955078125e-07, 87.3365478515625], [[[394985325199360.0, 0.0, 3.4028234663852886e+38, 9.999999747378752e-06], [-5.60880809976791e+16, 5.605193857299268e-45, 0.9999998211860657, 1.401298464324817e-45], [-1.848464588878643e+16, 87.3365478515625, -3.257942288420045e+16, 88.72283935546875]], [[-1.401298464324817e-45, -0.0, -6.481566499654861e+16, 2.0], [-2.0, 8.0, -108.72283935546875, 0.0], [-2.1025007375220736e+16, -3.4028234663852886e+38, 9.999999747378752e-06, 0.0]]], [-88.72283935546875, -88.72283935546875, 3.4028232635611926e+38], [1.1754942106924411e-38, 1.1754936501730553e-38, 1.401298464324817e-45]]


@pytest.mark.xfail(strict=True, reason="subnormal x rows: layer_norm's row statistics round "
                   "the mean in the subnormal range (the layer_norm KNOWN case)")
def test_layer_norm_jvp_subnormal_row_open():
    args = [np.array(a, np.float64) for a in LN_SUBNORMAL]
    got = ops.evaluate("layer_norm_jvp", *args)
    want = reference(OPS["layer_norm_jvp"], args, {"eps": 1e-6}, np.float64)
    assert ulp_distance(got, want, np.float64).max() <= OPS["layer_norm_jvp"].tol.float64


@pytest.mark.xfail(strict=True, reason="+-max/2 entries beside O(1) ones: dxhat's components "
                   "cancel below the double-word resolution (registry/jvp.py families note)")
def test_batch_norm2d_jvp_max_row_open():
    args = [np.array(a, np.float32) for a in BN_MAX]
    got = ops.evaluate("batch_norm2d_jvp", *args)
    want = reference(OPS["batch_norm2d_jvp"], args, {"eps": 1e-6, "channel_axis": 1},
                     np.float32)
    assert ulp_distance(got, want, np.float32).max() <= OPS["batch_norm2d_jvp"].tol.float32


def test_smooth_max_pool2d_jvp_tail_weight_below_the_normal_range():
    # an order-dependent draw of the hunt: the window's tail weight e^(8 (4e-299 - 127)) =
    # e^-1016 underflows in float64, but its tangent 1.8e134 makes the term 1e-307, larger
    # than the winner's -2.2e-308 (the kernel gave -2.2e-308; Design i of jvp.pyx)
    from refrt import oracle
    from refrt.autodiff import vjp_errors, vjp_tolerance
    x = np.array([[[729.782712893384, -1e-323, 2.3604074270004144e+16, -0.5],
                   [2.220446049250313e-16, -1.7976931348623151e+308, 127.0, 1.544291812898069e+78],
                   [-1e-323, -0.0, 4.2652314699250436e-299, -1.5382656429793587e+283],
                   [1.7859071534304758e+16, -708.3964185322636, 2.0, 6.024215020905017e+16]]])
    dx = np.array([[[-5e-324, -5e-324, 4.9012898140042e-293, 5e-324],
                    [-2.225073858507201e-308, -1.7976931348623157e+308, -2.225073858507201e-308,
                     -6.190311919509039e+16],
                    [-2.000000000000001, -0.5000000000000002, 1.7832984074580302e+134,
                     -1.9999999999999998],
                    [-6.103515625e-05, -2.220446049250313e-16, -92.59940892494942,
                     1.7976931348623157e+308]]])
    p = dict(kernel_size=(2, 3), stride=(1, 1), padding=(1, 0), beta=8.0)
    spec = OPS["smooth_max_pool2d_jvp"]
    got = ops.smooth_max_pool2d_jvp(x, dx, **p)
    want = oracle.smooth_max_pool2d_jvp(x, dx, dtype=np.float64, **p)
    assert ulp_distance(got, want, np.float64).max() <= spec.tol["float64"]
    assert got[0, 2, 0] == want[0, 2, 0] == 7.961553234900832e-308
    full = {**{q.name: q.default for q in spec.params}, **p}
    res = vjp_errors(spec, [x, dx], full, np.dtype(np.float64), key="hunt")
    ulps, _ = vjp_tolerance(spec, np.float64)
    assert max(model for _, model in res.values()) <= ulps, res


# the big hunt's draws (pytest -m hunt, seed 20261201) for scaled_dot_product_attention_jvp
SDPA_JVP_EDGE = [[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 1.1754942106924411e-38]], [[0.0, 0.0], [0.0, 0.0], [1.1754942106924411e-38, 3.4028234663852886e+38]], [[3.4028234663852886e+38, -3.4028234663852886e+38], [3.4028234663852886e+38, -3.4028234663852886e+38], [3.4028234663852886e+38, -3.4028234663852886e+38]], [[100000.0, 100000.0], [100000.0, 100000.0], [100000.0, 100000.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
SDPA_JVP_DK = [[[0.0, 0.0], [88.72283935546875, 0.0], [0.0, 0.0]], [[100000.0, 100000.0], [100000.0, 100000.0], [100001.0, 100000.0]], [[100000.0, 100000.0], [100000.0, 100000.0], [100000.0, 100001.0]], [[0.0, 0.0]] * 3, [[0.0, 0.0]] * 3, [[0.0, 0.0]] * 3]


@pytest.mark.xfail(strict=True, reason="a subnormal result beside +-max terms: the score "
                   "tangent's unit (Design h) puts the small part below the subnormal "
                   "quantum: 7 ulp float32 (budget 4)")
def test_sdpa_jvp_subnormal_beside_max_open():
    args = [np.array(a, np.float32) for a in SDPA_JVP_EDGE]
    got = ops.evaluate("scaled_dot_product_attention_jvp", *args)
    want = reference(OPS["scaled_dot_product_attention_jvp"], args,
                     {"mask": None, "is_causal": False, "scale": None}, np.float32)
    assert ulp_distance(got, want, np.float32).max() <= 4


@pytest.mark.xfail(strict=True, reason="SDPA's VJP (the tangents' gradient): dk_j = sum_i "
                   "dS_ij q_i has no centring identity over i; with equal 1e5 keys and values "
                   "dS is all rounding (3.5e8 ulp float32; SDPA's own big hunt fails alike)")
def test_sdpa_jvp_vjp_dk_equal_keys_open():
    from refrt.autodiff import vjp_errors
    args = [np.array(a, np.float32) for a in SDPA_JVP_DK]
    err = vjp_errors(OPS["scaled_dot_product_attention_jvp"], args,
                     {"mask": None, "is_causal": False, "scale": None}, np.float32)
    assert err["dk"][1] <= 8


@pytest.mark.xfail(strict=True, reason="open (issue 10 note): float32 rows mixing subnormal "
                   "and 1e16 tangents whose result cancels to 1e-20 are 11 ulp off (tol 4)")
def test_sdpa_jvp_float32_cancelling_row_open():
    from refrt import oracle
    f = np.float32
    arrays = [np.array(a, f) for a in [
        [[9.999999747378752e-06, 1.0], [88.72282409667969, -0.0], [1.0, 87.3365707397461]],
        [[0.0, 103.702392578125], [10.0, -0.0], [103.25047302246094, 6.206515143039802e-20]],
        [[-100002.921875, -99998.8125], [-100000.0, -99998.0703125], [-99999.078125, -99999.5]],
        [[-99999.453125, -100000.0], [-100000.0, -100000.0], [-99996.703125, -100000.0]],
        [[1.8801912975458304e+16, 1.1754942106924411e-38], [100000000.0, -2.0],
         [-1.1754943508222875e-38, 1.1920928955078125e-07]],
        [[1.1754949113416732e-38, -7.07946975592448e+16], [-0.0, -87.33653259277344],
         [0.7615941762924194, -1.1754942106924411e-38]]]]
    got = ops.scaled_dot_product_attention_jvp(*arrays)
    want = oracle.scaled_dot_product_attention_jvp(*arrays, dtype=f)
    assert ulp_distance(got, want, f).max() <= OPS["scaled_dot_product_attention_jvp"].tol["float32"]
