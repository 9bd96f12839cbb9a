"""Training-mode normalisation (TorchLean §1.7): batch statistics, groups, RMS, weight norm.

Every op normalises sets of elements with their own two-pass mean and variance, eps
inside the square root (TorchLean's normalizeCore: (x - mean) / sqrt(var + eps) * gamma +
beta), eps default TorchLean's 1e-6 (PyTorch: 1e-5).  Which elements form a set:

* batch_norm(channel_axis=1): x (N, C, *spatial), PyTorch's training-mode BatchNorm: per
  channel over the batch and spatial axes (F.batch_norm(training=True)).
* batch_norm(channel_axis=0): x (C, *spatial), TorchLean's ``batchNorm`` (alias
  ``instanceNorm``): no batch axis, per channel over the spatial axes of one sample
  (catalog §6.1 item 9).
* group_norm: x (N, C, *spatial), PyTorch's GroupNorm: per sample over each group of
  C / num_groups consecutive channels and the spatial axes.
* instance_norm: x (N, C, *spatial), per (sample, channel) over the spatial axes.
* rms_norm: x (..., D), x / sqrt(mean(x^2) + eps) * gamma (no centring, no beta).
* weight_norm: W (out, ...), W_r / sqrt(sum(W_r^2) + eps) * g_r per output row (eps added
  to the sum of squares, TorchLean's weightNorm; PyTorch's weight_norm has no eps).
* normalize_along_dim: TorchLean's normalizeAlongDim, mean and variance along ``dim``,
  gamma and beta of x's shape.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import bad_value
from . import _norm2_layout
from ._shapes import normalize_axis
from ._spec import EPSILON, Arg, Case, OpSpec, Param, Tol

EPS = Param("eps", EPSILON, "eps", "added to the variance inside the sqrt (TorchLean 1e-6)")
NORM_TOL = Tol(float32=2, float64=2)
NORM_VJP_TOL = Tol(float32=8, float64=8)
FAMILIES = ("normal", "wide", "large_mean", "subnormal", "cancel_max")
# cancel_max is left out where there is a beta: it draws gamma and beta as +-max too, and
# x_hat * gamma + beta then cancels +-max terms to O(1) (condition number ~1e38): no
# finite-precision formula reaches a few ulp there (the double-word one gives ~1e7 ulp
# in float32, measured: instance_norm, seed 0); x itself with +-max entries is covered
# by rms_norm/weight_norm's cancel_max and by large_mean/wide.
AFFINE_FAMILIES = ("normal", "wide", "large_mean", "subnormal")
VJP = ("x: inv_std * (gg - mean(gg) - xhat * mean(gg * xhat)), gg = g * gamma, sums over "
       "each normalised set; gamma: sum(g * xhat); beta: sum(g) over gamma's broadcast axes")


def _per_channel(spec, arrays, c, names=("gamma", "beta")):
    for name, a in zip(names, arrays[1:]):
        if a.shape != (c,):
            raise bad_value(spec.name, name, f"shape ({c},) (one value per channel)", a.shape)


def batch_norm_shape(spec, arrays, params):
    x = arrays[0]
    ca = params["channel_axis"]
    if ca not in (0, 1):
        raise bad_value(spec.name, "channel_axis", "1 for PyTorch's (N, C, spatial...) or 0 "
                        "for TorchLean's per-sample (C, spatial...)", ca)
    if x.ndim < ca + 1 or (ca == 1 and x.ndim < 2):
        raise bad_value(spec.name, "x", "(N, C, spatial...) for channel_axis=1" if ca else
                        "(C, spatial...) for channel_axis=0", f"shape {x.shape}")
    _per_channel(spec, arrays, x.shape[ca])
    return x.shape


def group_norm_shape(spec, arrays, params):
    x = arrays[0]
    if x.ndim < 2:
        raise bad_value(spec.name, "x", "an (N, C, spatial...) array", f"shape {x.shape}")
    c = x.shape[1]
    if spec.name == "group_norm":
        G = params["num_groups"]
        if G < 1 or c % G:
            raise bad_value(spec.name, "num_groups", f"a positive divisor of the {c} "
                            "channels", G)
    _per_channel(spec, arrays, c)
    return x.shape


def rms_norm_shape(spec, arrays, params):
    x, gamma = arrays
    if x.ndim < 1:
        raise bad_value(spec.name, "x", "an array of at least 1 dimension (..., D)",
                        "a 0-d array")
    if gamma.shape != x.shape[-1:]:
        raise bad_value(spec.name, "gamma", f"shape ({x.shape[-1]},) (the last axis of x)",
                        gamma.shape)
    return x.shape


def weight_norm_shape(spec, arrays, params):
    w, g = arrays
    if w.ndim < 1:
        raise bad_value(spec.name, "weight", "an (out, ...) array", "a 0-d array")
    if g.shape != w.shape[:1]:
        raise bad_value(spec.name, "g", f"shape ({w.shape[0]},) (one value per output row)",
                        g.shape)
    return w.shape


def along_dim_shape(spec, arrays, params):
    x = arrays[0]
    if x.ndim < 1:
        raise bad_value(spec.name, "x", "an array of at least 1 dimension", "a 0-d array")
    params["dim"] = normalize_axis(spec, "dim", params["dim"], x.ndim)
    for name, a in zip(("gamma", "beta"), arrays[1:]):
        if a.shape != x.shape:
            raise bad_value(spec.name, name, f"shape {x.shape} (the shape of x)", a.shape)
    return x.shape


def _vjp_terms(name):
    """Condition budget (registry/_terms.py) of the VJP: gx_i = inv (gg_i - m1 - xhat_i m2)
    is a difference of terms whose exact values can cancel far beyond the double-word
    working precision (a wide row: gg_i = g gamma_i ~ 1e306 against xhat_i m2, the real
    difference 1e-54 of it); terms_i = |inv| (|gg_i| + |m1| + |xhat_i m2|), and for gamma
    sum(|g xhat|).  float64 estimate, each row scaled by a power of two first."""
    beta_in = _norm2_layout.HAS_BETA[name]

    def terms(arrays, params, g):
        x = np.asarray(arrays[0], dtype=np.float64)
        L = _norm2_layout.layout(name, x.shape, params)
        xr = L.rows(x)
        gam = np.asarray(L.expand(np.asarray(arrays[1], np.float64)))
        gr = np.asarray(L.rows(np.asarray(g, np.float64).reshape(x.shape)))
        R, D = xr.shape
        tx = np.zeros((R, D))
        px = np.zeros((R, D))
        n = D if L.mean else 1
        with np.errstate(all="ignore"):
            for r in range(R):
                row = xr[r]
                m = np.max(np.abs(row)) if D else 0.0
                k = int(np.frexp(m)[1]) if m > 0 and np.isfinite(m) else 0
                xs = np.ldexp(row, -k)
                c = xs - xs.mean() if L.centred else xs
                v = np.sum(c * c) / n + np.ldexp(params["eps"], -2 * k)
                inv_s = 1 / np.sqrt(v)                      # inv = inv_s 2^-k
                xh = c * inv_s
                ga = np.max(np.abs(gam[r])) if D else 0.0
                kg = int(np.frexp(ga)[1]) if ga > 0 and np.isfinite(ga) else 0
                gg = gr[r] * np.ldexp(gam[r], -kg)          # gg = gg_s 2^kg
                m1 = abs(gg.sum() / n) if L.centred else 0.0
                m2 = (gg * xh).sum() / n
                tx[r] = np.ldexp(inv_s * (np.abs(gg) + m1 + np.abs(xh * m2)), kg - k)
                px[r] = np.abs(gr[r] * xh)
        tg = L.unreduce(np.sum(np.asarray(L.reduce_view(px)), axis=1))
        out = [L.unrows(tx), tg]
        if beta_in:
            out.append(None)
        return tuple(out)
    return terms


def _inv(v, eps=EPSILON):
    return 1.0 / math.sqrt(v + eps)


XGB = (Arg("x"), Arg("gamma"), Arg("beta"))

SPECS = [
    OpSpec(name="batch_norm",
           signature="batch_norm(x, gamma, beta, eps=1e-06, channel_axis=1) -> y",
           kind="norm", args=XGB,
           doc="batch-statistics normalisation per channel: channel_axis=1, x (N, C, "
           "spatial...), statistics over N and the spatial axes (PyTorch training mode); "
           "channel_axis=0, x (C, spatial...), over the spatial axes (TorchLean's per-sample "
           "batchNorm); (x - mean) / sqrt(var + eps) * gamma + beta, two-pass variance",
           tol=NORM_TOL, vjp_tol=NORM_VJP_TOL, vjp_terms=_vjp_terms("batch_norm"),
           params=(EPS, Param("channel_axis", 1, "int", "1: (N, C, ...); 0: (C, ...)")),
           special_cases=(Case(((((2.0, 2.0),),), (3.0,), (0.5,)), 0.5,
                               note="a constant channel gives beta"),
                          Case((((1.0, 3.0),), (1.0,), (0.0,)), -_inv(1.0),
                               params={"channel_axis": 0}, note="TorchLean per-sample form")),
           vjp=VJP, shape=batch_norm_shape, families=AFFINE_FAMILIES,
           example_shapes=((2, 3, 4), (3,), (3,)),
           conventions="PyTorch's F.batch_norm(training=True) (biased batch variance, eps "
           "1e-5 there); TorchLean's spec batchNorm has no batch axis (channel_axis=0); "
           "running statistics are not updated (batch_norm_inference takes them)",
           torchlean="batchNorm / batchNorm2d / instanceNorm (channel_axis=0)"),
    OpSpec(name="group_norm",
           signature="group_norm(x, gamma, beta, num_groups=1, eps=1e-06) -> y",
           kind="norm", args=XGB,
           doc="x (N, C, spatial...): per sample, statistics over each group of C / "
           "num_groups consecutive channels and the spatial axes; gamma, beta per channel",
           tol=NORM_TOL, vjp_tol=NORM_VJP_TOL, vjp_terms=_vjp_terms("group_norm"),
           params=(Param("num_groups", 1, "int", "divides C"), EPS),
           special_cases=(Case(((((1.0,), (3.0,)),), (2.0, 1.0), (0.0, 0.0)), -2 * _inv(1.0)),
                          Case(((((1.0,), (3.0,)),), (1.0, 1.0), (7.0, 7.0)), 7.0,
                               params={"num_groups": 2}, note="one element per group: beta")),
           vjp=VJP, shape=group_norm_shape, families=AFFINE_FAMILIES,
           example_shapes=((2, 4, 3), (4,), (4,)),
           conventions="PyTorch's F.group_norm (channel groups).  TorchLean's spec groupNorm "
           "takes x (B, H, W, C) channel-last and reshapes it row-major to (B, G, C/G, H*W) "
           "(catalog §1.7 [I]), so its groups are consecutive chunks of the (H, W, C) buffer, "
           "not channel groups unless H*W = 1: it equals group_norm(x.reshape(B, C, H*W)) on "
           "the raw buffer (tests/test_attention_norm.py shows both)",
           torchlean="groupNorm (see conventions) / groupNorm2dNchw"),
    OpSpec(name="instance_norm",
           signature="instance_norm(x, gamma, beta, eps=1e-06) -> y", kind="norm", args=XGB,
           doc="x (N, C, spatial...): statistics per (sample, channel) over the spatial axes; "
           "gamma, beta per channel (group_norm with num_groups = C)",
           tol=NORM_TOL, vjp_tol=NORM_VJP_TOL, vjp_terms=_vjp_terms("instance_norm"), params=(EPS,),
           special_cases=(Case(((((4.0,),),), (2.0,), (-1.0,)), -1.0,
                               note="one spatial element: beta"),
                          Case(((((1.0, 3.0),),), (1.0,), (0.0,)), -_inv(1.0))),
           vjp=VJP, shape=group_norm_shape, families=AFFINE_FAMILIES,
           example_shapes=((2, 3, 4), (3,), (3,)),
           conventions="PyTorch's F.instance_norm with weight and bias (no running stats); "
           "TorchLean's batchNorm on one sample (C, spatial...) is batch_norm(channel_axis=0)",
           torchlean="instanceNorm (per sample)"),
    OpSpec(name="rms_norm", signature="rms_norm(x, gamma, eps=1e-06) -> y", kind="norm",
           args=(Arg("x"), Arg("gamma")),
           doc="x / sqrt(mean(x^2) + eps) * gamma over the last axis (no centring, no bias)",
           tol=NORM_TOL, vjp_tol=NORM_VJP_TOL, vjp_terms=_vjp_terms("rms_norm"), params=(EPS,),
           special_cases=(Case((((3.0, 4.0),), (1.0, 1.0)), 3.0 * _inv(12.5)),
                          Case((((0.0, 0.0),), (1.0, 1.0)), 0.0, note="zero row: 0")),
           vjp="x: inv_rms * (gg - xhat * mean(gg * xhat)), gg = g * gamma; gamma: sum(g * xhat)",
           shape=rms_norm_shape, families=FAMILIES, example_shapes=((3, 5), (5,)),
           conventions="PyTorch's F.rms_norm(x, (D,), weight, eps) (eps None there: "
           "torch.finfo(dtype).eps)", torchlean="rmsNorm"),
    OpSpec(name="weight_norm", signature="weight_norm(weight, g, eps=1e-06) -> w",
           kind="norm", args=(Arg("weight"), Arg("g")),
           doc="weight_r / sqrt(sum(weight_r^2) + eps) * g_r for each output row r (the "
           "sum over every axis but the first)",
           tol=NORM_TOL, vjp_tol=NORM_VJP_TOL, vjp_terms=_vjp_terms("weight_norm"), params=(EPS,),
           special_cases=(Case((((3.0, 4.0),), (2.0,)), 6.0 * _inv(25.0)),
                          Case((((0.0, 0.0),), (2.0,)), 0.0, note="zero row: 0 (eps > 0)")),
           vjp="weight: inv_norm * (gg - what * sum(gg * what)), gg = g_out * g_r, what = "
           "weight_r * inv_norm; g: sum(g_out * what) per row",
           shape=weight_norm_shape, families=FAMILIES, example_shapes=((3, 5), (3,)),
           conventions="eps is added to the sum of squares (TorchLean weightNorm); PyTorch's "
           "torch._weight_norm(v, g, dim=0) = v * g / ||v|| has no eps (0 / 0 = NaN for a "
           "zero row)", torchlean="weightNorm"),
    OpSpec(name="normalize_along_dim",
           signature="normalize_along_dim(x, gamma, beta, dim=-1, eps=1e-06) -> y",
           kind="norm", args=XGB,
           doc="(x - mean) / sqrt(var + eps) * gamma + beta with mean and population "
           "variance along dim; gamma and beta have x's shape",
           tol=NORM_TOL, vjp_tol=NORM_VJP_TOL, vjp_terms=_vjp_terms("normalize_along_dim"),
           params=(Param("dim", -1, "axis", "the axis of the statistics"), EPS),
           special_cases=(Case((((1.0, 3.0),), ((1.0, 1.0),), ((0.0, 0.0),)), -_inv(1.0)),
                          Case((((1.0,), (3.0,)), ((2.0,), (2.0,)), ((0.0,), (0.0,))),
                               -2 * _inv(1.0), params={"dim": 0})),
           vjp="x: as batch_norm's along dim; gamma: g * xhat; beta: g",
           shape=along_dim_shape, families=AFFINE_FAMILIES, example_shapes=((3, 4), (3, 4), (3, 4)),
           conventions="TorchLean's normalizeAlongDim (catalog §1.7: the variance is not "
           "clamped there, which changes nothing: the two-pass variance is >= 0).  Not "
           "torch.nn.functional.normalize, which is x / max(||x||_p, eps) (an L2 "
           "normalisation with no mean, gamma or beta)", torchlean="normalizeAlongDim"),
]
