"""Attention and training-mode normalisation against PyTorch 2.13 float64 (forward and
autograd), TorchLean's documented differences (fully masked rows, groupNorm's row-major
reshape, eps), bad input, and sampled soundness of the interval transformers."""
import math

import numpy as np
import pytest

from refrt import ops
from refrt.autodiff import vjp_op
from refrt.errors import RefrtError, RefrtTypeError

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(20261201)
RTOL = 1e-12   # torch float64 vs refrt float64 (refrt is within a few ulp of exact)


def _t(a, grad=False):
    t = torch.from_numpy(np.array(a, dtype=np.float64))
    return t.requires_grad_(True) if grad else t


def _grads(name, arrays, g, **params):
    out = ops.evaluate(name, *arrays, **params)
    return vjp_op(name, arrays, params, out, g)


def _check_vs_torch(name, arrays, torch_fn, params, nout_grads=None):
    y = ops.evaluate(name, *arrays, **params)
    leaves = [_t(a, True) for a in arrays]
    ty = torch_fn(*leaves)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL, atol=1e-13)
    g = RNG.standard_normal(y.shape)
    tg = torch.autograd.grad(ty, leaves, grad_outputs=_t(g))
    got = _grads(name, arrays, g, **params)
    for a, b in zip(got, tg):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- attention

@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_torch_with_heads(causal):
    q, k, v = (RNG.standard_normal(s) for s in ((2, 3, 5, 4), (2, 3, 5, 4), (2, 3, 5, 6)))
    _check_vs_torch("scaled_dot_product_attention", [q, k, v],
                    lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                    {"is_causal": causal})


def test_sdpa_bool_mask_and_scale_match_torch():
    q, k, v = (RNG.standard_normal(s) for s in ((2, 4, 3), (2, 6, 3), (2, 6, 2)))
    mask = RNG.random((4, 6)) < 0.6
    mask[:, 0] = True                     # no fully masked row (torch gives NaN there)
    _check_vs_torch("scaled_dot_product_attention", [q, k, v],
                    lambda q, k, v: F.scaled_dot_product_attention(
                        q, k, v, attn_mask=torch.from_numpy(mask), scale=0.3),
                    {"mask": mask, "scale": 0.3})


def test_fully_masked_row_is_zero_as_torch_sdpa_and_nan_in_the_softmax_composition():
    """TorchLean's hardMaskedSoftmax: a row with every key blocked gives zeros (and zero
    gradients).  PyTorch 2.13's F.scaled_dot_product_attention (CPU) gives zeros too
    (pytorch#160064 was fixed), but the composition users write, softmax(masked_fill(
    scores, ~mask, -inf)) @ v, gives NaN (softmax of all -inf)."""
    q, k, v = (RNG.standard_normal(s) for s in ((3, 2), (4, 2), (4, 3)))
    mask = np.ones((3, 4), bool)
    mask[1] = False
    y = ops.scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.all(y[1] == 0) and np.all(np.isfinite(y))
    ty = F.scaled_dot_product_attention(_t(q), _t(k), _t(v), attn_mask=torch.from_numpy(mask))
    np.testing.assert_allclose(y, ty.numpy(), rtol=RTOL, atol=0)
    s = (_t(q) @ _t(k).T / math.sqrt(2)).masked_fill(~torch.from_numpy(mask), -math.inf)
    manual = torch.softmax(s, -1) @ _t(v)
    assert torch.isnan(manual[1]).all() and not torch.isnan(manual[0]).any()
    gq, gk, gv = _grads("scaled_dot_product_attention", [q, k, v], np.ones(y.shape), mask=mask)
    assert np.all(gq[1] == 0) and np.all(np.isfinite(gk)) and np.all(np.isfinite(gv))
    # the mp backend agrees (exact zeros)
    m = ops.scaled_dot_product_attention(q, k, v, mask=mask, backend="mp")
    assert all(v == 0 for v in m[1])


def test_causal_row_zero_sees_only_key_zero():
    q, k, v = (RNG.standard_normal(s) for s in ((4, 3), (4, 3), (4, 2)))
    y = ops.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert np.array_equal(y[0], v[0])


def test_sdpa_one_hot_scores_far_beyond_float_range():
    """Scores of ~1e600 (q, k ~ 1e300): the weights are one-hot, the output is exactly the
    winning key's value row (a float softmax overflows to NaN)."""
    q = np.array([[1e300, 1e300]])
    k = np.array([[1e300, 1e300], [1e300, -1e300], [-1e300, 1e300]])
    v = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = ops.scaled_dot_product_attention(q, k, v)
    assert np.array_equal(y, v[:1])
    with np.errstate(all="ignore"):
        ty = F.scaled_dot_product_attention(_t(q), _t(k), _t(v))
    assert torch.isnan(ty).all()


@pytest.mark.parametrize("kw,arg,what", [
    (dict(mask=np.ones((3, 5), np.float64)), "mask", "bool"),
    (dict(mask=np.ones((3, 4), bool)), "mask", "broadcastable"),
    (dict(mask=np.ones((3, 5), bool), is_causal=True), "mask", "is_causal"),
    (dict(scale=math.inf), "scale", "finite"),
])
def test_sdpa_bad_masks_name_op_argument_expected_and_got(kw, arg, what):
    q, k, v = np.zeros((3, 2)), np.zeros((5, 2)), np.zeros((5, 4))
    with pytest.raises((RefrtError, RefrtTypeError)) as e:
        ops.scaled_dot_product_attention(q, k, v, **kw)
    msg = str(e.value)
    assert "scaled_dot_product_attention" in msg and f"'{arg}'" in msg and what in msg


@pytest.mark.parametrize("shapes,arg", [
    (((3,), (5, 2), (5, 4)), "q"),
    (((3, 2), (5, 3), (5, 4)), "k"),
    (((3, 2), (5, 2), (4, 4)), "v"),
    (((2, 3, 2), (3, 5, 2), (3, 5, 4)), "k"),
])
def test_sdpa_bad_shapes(shapes, arg):
    with pytest.raises(RefrtError, match=f"scaled_dot_product_attention: argument '{arg}'"):
        ops.scaled_dot_product_attention(*(np.zeros(s) for s in shapes))


# ---------------------------------------------------------------- normalisation

def test_batch_norm_training_matches_torch():
    x, g, b = RNG.standard_normal((4, 3, 5, 2)), RNG.standard_normal(3), RNG.standard_normal(3)
    _check_vs_torch("batch_norm", [x, g, b],
                    lambda x, g, b: F.batch_norm(x, None, None, g, b, True, 0.0, 1e-6), {})


def test_batch_norm_torchlean_per_sample_form_is_torch_with_n_1():
    x, g, b = RNG.standard_normal((3, 5, 2)), RNG.standard_normal(3), RNG.standard_normal(3)
    _check_vs_torch("batch_norm", [x, g, b],
                    lambda x, g, b: F.batch_norm(x[None], None, None, g, b, True, 0.0, 1e-6)[0],
                    {"channel_axis": 0})
    # ... which is instance_norm of the one sample
    np.testing.assert_allclose(ops.batch_norm(x, g, b, channel_axis=0),
                               ops.instance_norm(x[None], g, b)[0], rtol=0, atol=0)


@pytest.mark.parametrize("G", [1, 2, 4])
def test_group_norm_matches_torch(G):
    x, g, b = RNG.standard_normal((2, 4, 3, 2)), RNG.standard_normal(4), RNG.standard_normal(4)
    _check_vs_torch("group_norm", [x, g, b],
                    lambda x, g, b: F.group_norm(x, G, g, b, 1e-6), {"num_groups": G})


def test_torchlean_group_norm_row_major_reshape():
    """TorchLean's spec groupNorm (catalog §1.7 [I]): x (B, H, W, C) reshaped row-major to
    (B, G, C/G, H*W), so its groups are consecutive chunks of the (H, W, C) buffer.  It is
    refrt's group_norm on the raw buffer viewed as (B, C, H*W), and differs from channel
    grouping (group_norm of x permuted to (B, C, H, W)) unless H*W = 1."""
    B, H, W, C, G = 2, 3, 2, 4, 2
    x = RNG.standard_normal((B, H, W, C))
    gam, bet = RNG.standard_normal(C), RNG.standard_normal(C)
    eps = 1e-6
    # the catalog's definition, literally
    r = x.reshape(B, G, C // G, H * W)
    mean = r.mean(axis=(2, 3), keepdims=True)
    var = np.maximum(((r - mean) ** 2).mean(axis=(2, 3), keepdims=True), 0)
    spec = ((r - mean) / np.sqrt(var + eps) * gam.reshape(G, C // G, 1)
            + bet.reshape(G, C // G, 1)).reshape(B, H, W, C)
    ours = ops.group_norm(x.reshape(B, C, H * W), gam, bet, num_groups=G).reshape(B, H, W, C)
    np.testing.assert_allclose(ours, spec, rtol=1e-12, atol=1e-12)
    channel = ops.group_norm(x.transpose(0, 3, 1, 2), gam, bet, num_groups=G).transpose(0, 2, 3, 1)
    assert np.max(np.abs(channel - spec)) > 0.1


def test_instance_norm_matches_torch():
    x, g, b = RNG.standard_normal((2, 3, 4, 2)), RNG.standard_normal(3), RNG.standard_normal(3)
    _check_vs_torch("instance_norm", [x, g, b],
                    lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=1e-6), {})


def test_rms_norm_matches_torch():
    x, g = RNG.standard_normal((3, 2, 6)), RNG.standard_normal(6)
    _check_vs_torch("rms_norm", [x, g], lambda x, g: F.rms_norm(x, (6,), g, 1e-6), {})


def test_weight_norm_matches_torch_at_eps_0_and_catalog_eps_inside():
    w, g = RNG.standard_normal((4, 3, 2)), RNG.standard_normal(4)
    _check_vs_torch("weight_norm", [w, g],
                    lambda w, g: torch._weight_norm(w, g.reshape(-1, 1, 1), 0), {"eps": 0.0})
    # TorchLean's eps is added to the sum of squares (not to the norm)
    y = ops.weight_norm(w, g, eps=0.5)
    ref = w / np.sqrt((w ** 2).sum(axis=(1, 2), keepdims=True) + 0.5) * g[:, None, None]
    np.testing.assert_allclose(y, ref, rtol=1e-14)


def test_normalize_along_dim_is_the_catalog_form_not_F_normalize():
    x, g, b = (RNG.standard_normal((3, 4)) for _ in range(3))
    for dim in (0, 1):
        c = x - x.mean(dim, keepdims=True)
        ref = c / np.sqrt((c * c).mean(dim, keepdims=True) + 1e-6) * g + b
        np.testing.assert_allclose(ops.normalize_along_dim(x, g, b, dim=dim), ref, rtol=1e-13)
    l2 = F.normalize(_t(x), dim=1).numpy()
    assert np.max(np.abs(ops.normalize_along_dim(x, np.ones_like(x), np.zeros_like(x)) - l2)) > 0.1


def test_eps_default_is_torchlean_1e_6():
    x = np.array([[[1.0, 1.0 + 2e-3]]])
    g, b = np.ones(1), np.zeros(1)
    y6 = ops.batch_norm(x, g, b)
    want = -1e-3 / math.sqrt(1e-6 + 1e-6)
    assert abs(y6[0, 0, 0] - want) < 1e-9
    y5 = F.batch_norm(_t(x), None, None, _t(g), _t(b), True).numpy()   # torch: eps 1e-5
    assert abs(y5[0, 0, 0] - y6[0, 0, 0]) > 0.1


def test_norm_on_subnormal_and_huge_rows_is_exact_after_scaling():
    """A subnormal channel and a +-max channel normalise as their scaled copies do (the
    normalised value is scale invariant; eps scales by 4^k, so compare at eps = 0)."""
    tiny = np.array([[[3.0, -1.0, 2.0, 5.0]]]) * 5e-324
    big = np.array([[[1.7e308, -1.7e308, 0.5, 1.0]]])
    for x in (tiny, big):
        s = np.ldexp(x, -int(np.frexp(np.max(np.abs(x)))[1]))    # exact: max in [1/2, 1)
        np.testing.assert_array_equal(ops.batch_norm(x, np.ones(1), np.zeros(1), eps=0.0),
                                      ops.batch_norm(s, np.ones(1), np.zeros(1), eps=0.0))


@pytest.mark.parametrize("name,arrays,params,arg,what", [
    ("group_norm", [(2, 6, 3), (6,), (6,)], {"num_groups": 4}, "num_groups", "divisor"),
    ("group_norm", [(6,), (6,), (6,)], {}, "x", "(N, C"),
    ("batch_norm", [(2, 3, 4), (4,), (3,)], {}, "gamma", "(3,)"),
    ("batch_norm", [(2, 3), (3,), (3,)], {"channel_axis": 2}, "channel_axis", "1 for"),
    ("instance_norm", [(2, 3, 4), (3,), (2,)], {}, "beta", "(3,)"),
    ("rms_norm", [(3, 4), (3,)], {}, "gamma", "(4,)"),
    ("weight_norm", [(3, 4), (4,)], {}, "g", "(3,)"),
    ("normalize_along_dim", [(3, 4), (3, 4), (4,)], {}, "beta", "(3, 4)"),
])
def test_norm_bad_input(name, arrays, params, arg, what):
    with pytest.raises(RefrtError) as e:
        ops.evaluate(name, *(np.zeros(s) for s in arrays), **params)
    msg = str(e.value)
    assert msg.startswith(f"{name}: argument '{arg}'") and what in msg and "got" in msg


# ---------------------------------------------------------------- analysis

@pytest.mark.parametrize("name,shapes,params", [
    ("scaled_dot_product_attention", [(2, 3, 4), (2, 5, 4), (2, 5, 3)], {"is_causal": True}),
    ("batch_norm", [(2, 3, 4), (3,), (3,)], {}),
    ("group_norm", [(2, 4, 3), (4,), (4,)], {"num_groups": 2}),
    ("rms_norm", [(3, 5), (5,)], {}),
    ("weight_norm", [(3, 5), (3,)], {}),
    ("normalize_along_dim", [(3, 4), (3, 4), (3, 4)], {"dim": 0}),
])
def test_interval_transformers_are_sound_on_samples(name, shapes, params):
    from refrt._prepare import prepare
    from refrt.analysis.domain import ATensor
    from refrt.analysis.transfer import INTERVAL
    from refrt.registry import get
    rng = np.random.default_rng(7)
    los = [rng.standard_normal(s) - 1 for s in shapes]
    his = [lo + 2 * rng.random(lo.shape) for lo in los]
    _, full, _, shape = prepare(get(name), [np.zeros(s) for s in shapes], dict(params))
    lo, hi, nan = INTERVAL[name]([ATensor(a, b) for a, b in zip(los, his)], full, shape)[:3]
    assert not np.any(nan)
    for _ in range(100):
        y = ops.evaluate(name, *(a + (b - a) * rng.random(a.shape) for a, b in zip(los, his)),
                         **params)
        assert np.all(y >= lo) and np.all(y <= hi)
