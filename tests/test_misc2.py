"""The misc2 ops (registry/misc2.py) beyond the generic tests: rand_uniform bit for bit
with the catalog's SplitMix64 uniform, detach stopping the gradient in a traced graph,
the masks' algebra with refrt's comparisons, clip_gradients without overflow, the
percentile clip's gradient against torch autograd, the scan against its unrolled form
and with a state beyond the format, the quantizer's ties on the real quotient and its
theorems (round trip, half-step error), argmin as VqVae's nearest codebook entry, and a
tensorFoldl written as a traced refrt function."""
from __future__ import annotations

import math

import numpy as np
import pytest

import refrt
from refrt import ops, oracle
from refrt._kernels import misc as KM
from refrt.errors import RefrtError
from refrt.registry.misc2 import splitmix64, uniform_value

M64 = (1 << 64) - 1


# ---- rand_uniform ------------------------------------------------------------------------

def test_splitmix64_python_reference_matches_the_kernel_and_vigna():
    assert splitmix64(0) == 0xE220A8397B1DCDAF          # Vigna's SplitMix64, state 0
    rng = np.random.default_rng(5)
    for v in [0, 1, M64, 2 ** 63] + [int(x) for x in rng.integers(0, 2 ** 63, 20)]:
        assert KM.splitmix64(v) == splitmix64(v)


@pytest.mark.parametrize("seed,counter", [(0, 0), (7, 3), (M64, 1), (2 ** 63, 2 ** 63)])
def test_rand_uniform_is_the_catalogs_stream(seed, counter):
    """u_i = splitmix64(splitmix64(seed + counter) + i) mod 2^32 / 2^32, uint64 wrap-around
    included; float64 holds it exactly, float32 is its one rounding; the oracle agrees."""
    shape = (3, 5)
    want = np.array([uniform_value(seed, counter, i) for i in range(15)]).reshape(shape)
    key = splitmix64((seed + counter) & M64)
    assert want[0, 1] == (splitmix64((key + 1) & M64) % 2 ** 32) / 2.0 ** 32
    got64 = ops.rand_uniform(np.full(shape, np.nan), seed=seed, counter=counter)
    got32 = ops.rand_uniform(np.zeros(shape, np.float32), seed=seed, counter=counter)
    assert np.array_equal(got64, want)
    assert np.array_equal(got32, want.astype(np.float32))
    assert np.array_equal(oracle.evaluate("rand_uniform", np.zeros(shape), seed=seed,
                                          counter=counter), want)
    assert np.all((want >= 0) & (want < 1))


def test_rand_uniform_replays_in_a_graph_and_stops_the_gradient():
    def f(x):
        return ops.sum(ops.mul(x, ops.rand_uniform(x, seed=3, counter=9)))
    x = np.arange(4.0)
    g1 = refrt.grad(f)(x)
    g2 = refrt.grad(f)(x, backend="mp", prec=80)
    assert np.array_equal(g1, ops.rand_uniform(x, seed=3, counter=9))
    assert [float(v) for v in g2] == g1.tolist()


def test_rand_uniform_bad_seed():
    with pytest.raises(RefrtError, match="rand_uniform.*seed"):
        ops.rand_uniform(np.zeros(2), seed=-1)


# ---- detach --------------------------------------------------------------------------------

def test_detach_stops_the_gradient_in_a_traced_graph():
    """d/dx sum(x * detach(x)) = detach(x) = x, not 2 x; sum(detach(x)) has gradient 0."""
    x = np.array([1.5, -2.0, 0.25])
    for backend in ("f64", "mp"):
        g = refrt.grad(lambda v: ops.sum(ops.mul(v, ops.detach(v))))(x, backend=backend)
        assert [float(t) for t in g] == x.tolist()
        g0 = refrt.grad(lambda v: ops.sum(ops.detach(v)))(x, backend=backend)
        assert [float(t) for t in g0] == [0.0, 0.0, 0.0]
    y = np.array([np.nan, -0.0], np.float32)
    out = ops.detach(y)
    assert np.isnan(out[0]) and math.copysign(1, out[1]) < 0 and out.dtype == np.float32


# ---- masks --------------------------------------------------------------------------------

def test_masks_compose_with_the_comparisons():
    """not(eq) = ne (NaN included), any/all are max/min of the mask, where takes mask > 0.5."""
    x = np.array([[1.0, np.nan, 0.0], [2.0, 2.0, -0.0]])
    y = np.array([[1.0, np.nan, -0.0], [3.0, 2.0, 1.0]])
    assert np.array_equal(ops.logical_not(ops.eq(x, y)), ops.ne(x, y))
    m = ops.gt(x, y)
    assert np.array_equal(ops.any(m, axis=1), m.max(axis=1))
    assert np.array_equal(ops.all(ops.logical_not(m), axis=0), 1 - m.max(axis=0))
    assert ops.any(np.zeros((0,))) == 0 and ops.all(np.zeros((0,))) == 1    # fold seeds
    assert ops.all(np.array([np.nan, 1.0])) == 1                             # NaN is true
    assert ops.where(ops.logical_not(m) > 0.5, x, y).shape == x.shape


# ---- clip_gradients ------------------------------------------------------------------------

def test_clip_gradients_scales_without_overflow_and_matches_the_catalog():
    g = np.array([1e300, -1e300, 3e299])
    y = ops.clip_gradients(g, max_norm=2.0)
    n = 1e300 * math.sqrt(2 + 0.09)
    assert np.allclose(y, g * (2.0 / n), rtol=4e-16)
    assert np.array_equal(y, oracle.evaluate("clip_gradients", g, max_norm=2.0))
    tiny = np.array([3e-320, 4e-320])          # subnormals: sum(g^2) underflows if direct
    assert np.array_equal(ops.clip_gradients(tiny, max_norm=1e-321),
                          oracle.evaluate("clip_gradients", tiny, max_norm=1e-321))
    g32 = np.array([3.0, 4.0], np.float32)
    assert ops.clip_gradients(g32, max_norm=-1.0).tolist() == [0.6000000238418579, 0.800000011920929]
    assert ops.clip_gradients(g32, max_norm=5.0).tolist() == [3.0, 4.0]     # N = m: kept
    assert ops.clip_gradients(np.array([3.0, 4.0, 12.0])).tolist() == [3 / 13, 4 / 13, 12 / 13]


# ---- clip_by_percentile ------------------------------------------------------------------

def test_clip_by_percentile_gradient_flows_into_the_bound_as_in_torch():
    """The bound b = |g_k| depends on g: torch.sort + torch.clamp(g, -b, b) autograd gives
    the same gradient as refrt's VJP (the clamped elements' cotangent reaches g_k)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    g = rng.standard_normal((4, 5))
    gbar = rng.standard_normal((4, 5))
    for pct in (0, 37, 90, 100):
        t = torch.tensor(g, requires_grad=True)
        a = torch.sort(t.abs().flatten(), stable=True).values
        b = a[(pct * (a.numel() - 1)) // 100]
        y = torch.clamp(t, -b, b)
        (gt,) = torch.autograd.grad(y, t, torch.tensor(gbar))
        _, vjp = refrt.vjp(lambda v: ops.clip_by_percentile(v, pct=pct), g)
        assert np.allclose(vjp(gbar)[0], gt.numpy(), rtol=1e-15, atol=1e-15), pct
        assert np.array_equal(ops.clip_by_percentile(g, pct=pct), y.detach().numpy())


# ---- diagonal_scan ---------------------------------------------------------------------------

def test_diagonal_scan_is_the_recurrence_and_survives_a_state_beyond_the_format():
    rng = np.random.default_rng(0)
    a, b, h0 = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), rng.standard_normal(4)
    h = ops.diagonal_scan(a, b, h0)
    ref, prev = [], h0
    for t in range(6):
        prev = ops.add(ops.mul(a[t], prev), b[t])
        ref.append(prev)
    assert np.allclose(h, ref, rtol=1e-13)
    assert np.array_equal(h, oracle.evaluate("diagonal_scan", a, b, h0))
    # h_1 = 1e300 * 1e300 (beyond float64) is brought back by a_2 = 1e-300: exact 1e300 + 1
    a2 = np.array([[1e300], [1e-300], [1.0]])
    b2 = np.array([[0.0], [1.0], [0.0]])
    h2 = ops.diagonal_scan(a2, b2, np.array([1e300]))
    want = oracle.evaluate("diagonal_scan", a2, b2, np.array([1e300]))
    assert np.isinf(h2[0, 0]) and h2[1, 0] == want[1, 0] == h2[2, 0] and np.isfinite(h2[1, 0])
    # lam_0 = 1 + a_1 (1 + a_2) and dh0 = a_0 lam_0 = 1e300 (1 + 2e-300): finite
    grads = refrt.vjp(ops.diagonal_scan, a2, b2, np.array([1e300]))[1](np.ones((3, 1)))
    exact = oracle.vjp("diagonal_scan", a2, b2, np.array([1e300]), cotangent=np.ones((3, 1)))
    for got, want in zip(grads, exact):
        assert np.array_equal(got, want)       # da_1 = lam_1 h_0 = 2e600 is inf, exactly
    assert np.isfinite(grads[2]).all() and np.isfinite(grads[0][[0, 2]]).all()


def test_diagonal_scan_bad_shapes():
    with pytest.raises(RefrtError, match="diagonal_scan.*h0"):
        ops.diagonal_scan(np.ones((3, 2)), np.ones((3, 2)), np.ones(3))
    with pytest.raises(RefrtError, match="diagonal_scan.*'b'"):
        ops.diagonal_scan(np.ones((3, 2)), np.ones((2, 2)), np.ones(2))


# ---- the affine quantizer ---------------------------------------------------------------

def _fake_half():
    """A float64 x with fl(x / s) = k + 1/2 while the real x / s is not a tie."""
    rng = np.random.default_rng(1)
    from fractions import Fraction
    for _ in range(200000):
        s = float(rng.uniform(0.01, 1))
        k = int(rng.integers(-100, 100))
        x = (k + 0.5) * s
        for cand in (x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)):
            if cand / s == k + 0.5 and Fraction(cand) / Fraction(s) != Fraction(2 * k + 1, 2):
                return float(cand), s
    raise AssertionError("no example found")


def test_quantize_rounds_the_real_quotient_ties_to_even():
    x, s = _fake_half()
    want = oracle.evaluate("quantize", np.array([x]), scale=s, qmin=-1000, qmax=1000)
    got = ops.quantize(np.array([x]), scale=s, qmin=-1000, qmax=1000)
    naive = np.clip(np.round(np.array([x]) / s), -1000, 1000)
    assert got[0] == want[0] != naive[0]
    assert ops.quantize(np.array([0.5, 1.5, 2.5, -0.5])).tolist() == [0.0, 2.0, 2.0, -0.0]


def test_quantizer_theorems_round_trip_and_half_step():
    """quantize(dequantize(k)) = k for in-range codes (quantize_dequantize), and
    |dequantize(quantize(x)) - x| <= scale / 2 without saturation."""
    s, z = 0.0375, 3
    codes = np.arange(-128, 128, dtype=np.float64)
    back = ops.quantize(ops.dequantize(codes, scale=s, zero_point=z), scale=s, zero_point=z)
    assert np.array_equal(back, codes)
    x = np.random.default_rng(3).uniform(-4, 4, 500)
    err = ops.dequantize(ops.quantize(x, scale=s, zero_point=z), scale=s, zero_point=z) - x
    assert np.abs(err).max() <= s / 2 * (1 + 1e-15)


def test_quantize_bad_input():
    with pytest.raises(RefrtError, match="quantize.*scale"):
        ops.quantize(np.ones(2), scale=0.0)
    with pytest.raises(RefrtError, match="quantize.*qmax"):
        ops.quantize(np.ones(2), qmin=5, qmax=4)
    with pytest.raises(RefrtError, match="quantize.*zero_point"):
        ops.quantize(np.ones(2, np.float32), zero_point=2 ** 22)


# ---- argmin / argmax --------------------------------------------------------------------

def test_argmin_is_vqvaes_nearest_codebook_entry():
    """quantizeAt: the nearest codebook row by squared distance, first on a tie; positions
    are exact floats usable as embedding ids after .astype(int)."""
    codebook = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [-2.0, 0.5]])
    z = np.array([[0.9, 1.2], [-1.5, 0.0], [0.5, 0.5]])
    d = ((z[:, None, :] - codebook[None]) ** 2).sum(-1)
    idx = ops.argmin(d, axis=1)
    assert idx.tolist() == [1.0, 3.0, 0.0]            # [0.5, 0.5]: rows 0 and 1 tie -> 0
    assert np.array_equal(ops.embedding(idx.astype(int), codebook), codebook[[1, 3, 0]])
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 5.0, 5.0, -1.0]])
    for name in ("argmax", "argmin"):
        want = getattr(torch, name)(torch.tensor(x), dim=1).numpy().astype(float)
        assert np.array_equal(getattr(ops, name)(x, axis=1), want), name
    with pytest.raises(RefrtError, match="argmax.*non-empty"):
        ops.argmax(np.zeros((2, 0)), axis=1)


# ---- tensorFoldl as a traced function -------------------------------------------------------

def test_tensor_foldl_is_a_traced_function_of_refrt_ops():
    """tensorFoldlSpec f init over the row-major leaves, with f(acc, v) = acc * c + v
    written in refrt ops: traced once, evaluated on f32/f64/mp, differentiated by
    refrt.grad, the gradient equal to the certified oracle's."""
    def foldl(x, c):
        leaves = ops.reshape(x, shape=(-1, 1))            # row-major leaves, (n, 1)
        acc = ops.mul(c, np.zeros(1))                     # init = 0
        for i in range(leaves.shape[0]):
            acc = ops.add(ops.mul(acc, c), ops.select(leaves, axis=0, index=i))
        return ops.sum(acc)
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    c = np.array([1.5])
    g = refrt.trace(foldl, x, c)
    want = ((1.0 * 1.5 - 2.0) * 1.5 + 0.5) * 1.5 + 3.0
    assert float(g.run(x, c, backend="mp", prec=80).outputs) == want
    gx, gc = refrt.grad(foldl, argnums=(0, 1))(x, c)
    assert gx.tolist() == [[1.5 ** 3, 1.5 ** 2], [1.5, 1.0]]
    gx_o, gc_o = oracle.grad(foldl, x, c, argnums=(0, 1))
    assert np.array_equal(gx, gx_o) and np.array_equal(gc, gc_o)


# ---- the models these ops close (catalog §4) ------------------------------------------------

def _vqvae_loss(x, w_enc, codebook, w_dec, positions):
    """VqVae: z = x W_enc^T; quantizeAt = the nearest codebook row (argmin of squared
    distances) as a one-hot product; the decoder sees z + detach(z_q - z) (straight
    through); loss = recon + codebook + 0.25 commitment (van den Oord et al. 2017)."""
    N, K = x.shape[0], codebook.shape[0]
    z = ops.matmul(x, ops.transpose(w_enc))                          # (N, D)
    zz = ops.sum(ops.mul(z, z), axis=1)                              # |z|^2
    ee = ops.sum(ops.mul(codebook, codebook), axis=1)                # |e|^2
    cross = ops.matmul(z, ops.transpose(codebook))                   # (N, K)
    d = ops.add(ops.sub(ops.broadcast_to(ops.reshape(zz, shape=(N, 1)), shape=(N, K)),
                        ops.scale(cross, c=2.0)), ops.broadcast_to(ee, shape=(N, K)))
    idx = ops.argmin(d, axis=1)                                      # positions, floats
    onehot = ops.eq(ops.broadcast_to(ops.reshape(idx, shape=(N, 1)), shape=(N, K)), positions)
    zq = ops.matmul(onehot, codebook)
    st = ops.add(z, ops.detach(ops.sub(zq, z)))
    recon = ops.matmul(st, ops.transpose(w_dec))
    return ops.add(ops.add(ops.mse_loss(recon, x), ops.mse_loss(zq, ops.detach(z))),
                   ops.scale(ops.mse_loss(z, ops.detach(zq)), c=0.25))


def test_vqvae_straight_through_gradients_match_the_oracle():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3))
    w_enc, w_dec = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    codebook = rng.standard_normal((4, 2))
    positions = np.broadcast_to(np.arange(4.0), (5, 4)).copy()
    args = (x, w_enc, codebook, w_dec, positions)
    got = refrt.grad(_vqvae_loss, argnums=(1, 2, 3))(*args)
    want = oracle.grad(_vqvae_loss, *args, argnums=(1, 2, 3))
    for g, w in zip(got, want):
        assert np.allclose(g, w, rtol=1e-13, atol=1e-15)
    # the encoder's gradient passes the quantizer only through the straight-through path
    assert np.abs(got[0]).max() > 0
    torch = pytest.importorskip("torch")
    T = [torch.tensor(a, requires_grad=True) for a in args[:4]]
    z = T[0] @ T[1].T
    idx = torch.argmin(torch.cdist(z, T[2]) ** 2, dim=1)
    zq = T[2][idx]
    recon = (z + (zq - z).detach()) @ T[3].T
    F = torch.nn.functional
    loss = F.mse_loss(recon, T[0]) + F.mse_loss(zq, z.detach()) + 0.25 * F.mse_loss(z, zq.detach())
    tg = torch.autograd.grad(loss, [T[1], T[2], T[3]])
    for g, t in zip(got, tg):
        assert np.allclose(g, t.numpy(), rtol=1e-12, atol=1e-14)


def _s4(xs, w_in, a, bvec, c, dvec, w_out, h0):
    """DiagonalS4Spec.runArray: u_t = x_t W_in, h_t = A h_(t-1) + B u_t (diagonal_scan),
    y_t = (C h_t + D u_t) W_out."""
    T = xs.shape[0]
    u = ops.matmul(xs, w_in)                                         # (T, S)
    S = u.shape[1]
    h = ops.diagonal_scan(ops.broadcast_to(a, shape=(T, S)),
                          ops.mul(ops.broadcast_to(bvec, shape=(T, S)), u), h0)
    r = ops.add(ops.mul(ops.broadcast_to(c, shape=(T, S)), h),
                ops.mul(ops.broadcast_to(dvec, shape=(T, S)), u))
    return ops.sum(ops.matmul(r, w_out))


def test_diagonal_s4_layer_gradients_match_the_oracle():
    rng = np.random.default_rng(6)
    T, I, S, O = 6, 3, 4, 2
    args = (rng.standard_normal((T, I)), rng.standard_normal((I, S)),
            rng.uniform(0.5, 0.99, S), rng.standard_normal(S), rng.standard_normal(S),
            rng.standard_normal(S), rng.standard_normal((S, O)), np.zeros(S))
    got = refrt.grad(_s4, argnums=(1, 2, 3))(*args)
    want = oracle.grad(_s4, *args, argnums=(1, 2, 3))
    for g, w in zip(got, want):
        assert np.allclose(g, w, rtol=1e-13, atol=1e-14)


def test_torch_adapter_rows_agree_on_well_conditioned_inputs():
    """The differential tester's torch rows for these ops (adapters/torch_misc2.py) run and
    agree with refrt within 4 bits on N(0, 9) float64 inputs, gradients included."""
    pytest.importorskip("torch")
    from refrt.difftest import campaign
    names = ["logical_not", "any", "argmax", "detach", "clip_gradients", "clip_by_percentile",
             "diagonal_scan", "quantize", "dequantize"]
    recs = campaign(["torch"], ops=names, dtypes=["float64"], families=["normal"],
                    variants=[""])
    assert sorted(r["op"] for r in recs) == sorted(names)
    for r in recs:
        assert not r["error"], r
        assert r["max_bits"] <= 4, (r["op"], r["max_bits"])
        if r["grad"]:
            assert r["grad"]["max_bits"] <= 4, (r["op"], r["grad"])
