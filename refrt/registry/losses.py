"""Losses and normalisation (TorchLean §1.6, §1.7, §2.8).  Every loss returns a 0-d array."""
from __future__ import annotations

import math

import numpy as np

from ..domains import NONNEGATIVE, UNIT, Interval
from . import _shapes, _terms
from ._spec import EPSILON, Arg, Case, OpSpec, Param, Precondition, Tol

INF, NAN = math.inf, math.nan
LOSS_TOL = Tol(float32=4, float64=4)
EPS = Param("eps", EPSILON, "eps", "TorchLean Numbers.epsilon")
PROBS = Interval(0.0, 1.0)
LOG_PROBS = Interval(-INF, 0.0, False, True)


def _zero_targets(arrays, params):
    return bool(np.any(arrays[1] == 0))


def _var_eps_nonpositive_bn(arrays, params):
    return bool(np.any(~(np.maximum(arrays[2], 0) + params["eps"] > 0)))


def _var_eps_nonpositive_ln(arrays, params):
    x = arrays[0]
    var = x.var(axis=-1) if x.size else np.zeros(x.shape[:-1])
    return bool(np.any(~(var + params["eps"] > 0)))


def loss(name, args, doc, vjp, shape=_shapes.pairwise_loss, cases=(), params=(), **kw):
    sig = ", ".join(a.name for a in args) + "".join(f", {p.name}={p.default!r}" for p in params)
    return OpSpec(name=name, signature=f"{name}({sig}) -> loss", kind="loss", args=tuple(args),
                  doc=doc, tol=LOSS_TOL, special_cases=tuple(cases), params=tuple(params),
                  vjp=vjp, shape=shape, **kw)


FAMILIES = ("normal", "wide", "large_spread", "dominant", "probs_near_0_1", "zero_targets",
            "margins", "large_mean", "inf_logits")
# subnormal is left out: the layer_norm VJP forms products of a subnormal gamma with
# O(1) factors before the final scaling (803 ulp of a subnormal gradient), not yet fixed
NORM_FAMILIES = ("normal", "wide", "large_mean")

SPECS = [
    loss("mse_loss", (Arg("pred"), Arg("target")),
         "sum((pred - target)^2) / meanDenom, meanDenom = size or 1 when empty",
         "pred: g * 2 * (pred - target) / n; target: -g * 2 * (pred - target) / n",
         cases=[Case(((1.0, 3.0), (0.0, 0.0)), 5.0), Case(((INF,), (INF,)), NAN)],
         families=("normal", "wide", "zero_targets", "large_mean"), torchlean="mseSpec / mseLoss"),
    loss("cross_entropy_logits", (Arg("logits"), Arg("target", PROBS, False, "class_target")),
         "-sum(target * log_softmax(logits, -1)) / (number of last-axis slices); target is "
         "class probabilities / one-hot rows, or integer class ids",
         "logits: g * (softmax(logits) * sum(target, -1) - target) / m; "
         "target: -g * log_softmax(logits) / m",
         shape=_shapes.class_loss,
         cases=[Case((((0.0, 0.0),), ((1.0, 0.0),)), math.log(2.0)),
                Case((((1000.0, 0.0),), ((0.0, 1.0),)), 1000.0)],
         families=FAMILIES, stable_alternative="cross_entropy_logits instead of "
         "-(target * log(softmax(logits))).sum()",
         vjp_terms=_terms.cross_entropy_logits, torchlean="crossEntropyLogitsSpec / crossEntropyOneHotLast"),
    loss("cross_entropy_probs", (Arg("probs", PROBS), Arg("target", PROBS, False, "class_target")),
         "-sum(target * log(clip(probs, eps, 1 - eps))) / (number of last-axis slices)",
         "probs: g * (-target / probs if eps < probs < 1 - eps else 0) / m",
         shape=_shapes.class_loss, params=(EPS,),
         cases=[Case((((0.0, 1.0),), ((1.0, 0.0),)), -math.log(1e-6))],
         families=("normal", "probs_near_0_1", "zero_targets"),
         stable_alternative="cross_entropy_logits on logits", conventions="refrt's choice: the clip bound is the exact real 1 - eps (eps rounded "
         "to the input dtype), in every backend; TorchLean's float32 code clips at "
         "fl32(1 - eps)", torchlean="crossEntropySpec"),
    loss("nll_loss", (Arg("log_probs", Interval(-INF, 0.0, False, True)),
                      Arg("target", PROBS, False, "class_target")),
         "-sum(target * log_probs) / (number of last-axis slices)",
         "log_probs: -g * target / m; target: -g * log_probs / m", shape=_shapes.class_loss,
         cases=[Case((((-1.0, -2.0),), ((0.0, 1.0),)), 2.0),
                Case((((-INF, -1.0),), ((0.0, 1.0),)), 1.0)],
         families=("normal", "zero_targets"), torchlean="nllOneHotLast"),
    loss("bce_with_logits", (Arg("logits"), Arg("target", UNIT, False, "target")),
         "mean(softplus(x) - t * x), evaluated per element as "
         "(x > 0 ? (1 - t) * x : -t * x) + log1p(exp(-|x|)) so every term is >= 0 for t in "
         "[0, 1]; x = +-inf gives +inf or 0, never NaN",
         "logits: g * (sigmoid(logits) - target) / n; target: -g * logits / n",
         cases=[Case(((INF,), (1.0,)), 0.0), Case(((-INF,), (0.0,)), 0.0),
                Case(((INF,), (0.5,)), INF), Case(((0.0,), (0.0,)), math.log(2.0)),
                Case(((100.0,), (1.0,)), math.log1p(math.exp(-100.0)))],
         families=FAMILIES, vjp_terms=_terms.bce_with_logits, torchlean="bceWithLogits"),
    loss("binary_cross_entropy", (Arg("probs", PROBS), Arg("target", UNIT, False, "target")),
         "mean(-(t log p' + (1 - t) log(1 - p'))), p' = clip(p, eps, 1 - eps); the clip bound "
         "1 - eps is exact (log(1 - p') = log(eps) there), not the rounded float 1 - eps",
         "probs: g * ((p - t) / (p (1 - p)) if eps < p < 1 - eps else 0) / n",
         params=(EPS,),
         cases=[Case(((1.0,), (1.0,)), -math.log1p(-1e-6)), Case(((1.0,), (0.0,)), -math.log(1e-6)),
                Case(((0.5,), (1.0,)), math.log(2.0))],
         families=("normal", "probs_near_0_1", "zero_targets"),
         stable_alternative="bce_with_logits on logits", vjp_terms=_terms.binary_cross_entropy, torchlean="binaryCrossEntropyTensorSpec"),
    loss("kl_div", (Arg("log_probs", Interval(-INF, 0.0, False, True)),
                    Arg("target", PROBS, False, "target")),
         "sum(xlogy(t, t) - t * log_probs) / (number of last-axis slices) (batchmean, "
         "log_target=False; 0 * log 0 = 0)",
         "log_probs: -g * target / m; target: g * (log(target) + 1 - log_probs) / m",
         shape=_shapes.class_loss,
         cases=[Case((((-INF, 0.0),), ((0.0, 1.0),)), 0.0),
                Case((((-1.0, -2.0),), ((1.0, 0.0),)), 1.0)],
         preconditions=(Precondition("target != 0", "KL node is differentiable in target only "
                                     "where target != 0", _zero_targets),),
         families=("normal", "zero_targets", "probs_near_0_1"), vjp_terms=_terms.kl_div, torchlean="klDivLast"),
    OpSpec(name="batch_norm_inference",
           signature="batch_norm_inference(x, running_mean, running_var, gamma, beta, eps=1e-06, channel_axis=0) -> y",
           kind="norm",
           args=(Arg("x"), Arg("running_mean", differentiable=False),
                 Arg("running_var", NONNEGATIVE, False), Arg("gamma"), Arg("beta")),
           doc="(x - mean) / sqrt(max(max(var, 0) + eps, 0)) * gamma + beta per channel; x is "
           "(C, spatial...) (channel_axis=0, TorchLean) or (N, C, spatial...) (channel_axis=1)",
           tol=LOSS_TOL, params=(EPS, Param("channel_axis", 0, "int")),
           special_cases=(Case(((2.0,), (1.0,), (0.0,), (1.0,), (0.0,)), 1.0 / math.sqrt(1e-6)),),
           vjp="x: g * gamma / std; gamma: sum(g * xhat); beta: sum(g)",
           preconditions=(Precondition("var + eps > 0", "normalisation by sqrt(var + eps) needs "
                                       "var + eps > 0", _var_eps_nonpositive_bn),),
           shape=_shapes.batch_norm, families=NORM_FAMILIES,
           example_shapes=((3, 4, 5),) + ((3,),) * 4,
           torchlean="batchNormInference"),
    OpSpec(name="layer_norm", signature="layer_norm(x, gamma, beta, eps=1e-06) -> y", kind="norm",
           args=(Arg("x"), Arg("gamma"), Arg("beta")),
           doc="(x - mean) / sqrt(max(var, 0) + eps) * gamma + beta over the last axis, with "
           "the two-pass variance", tol=LOSS_TOL, params=(EPS,),
           special_cases=(Case(((1e6,), (2.0,), (3.0,)), 3.0),),
           vjp="x: inv_std * (gg - mean(gg) - xhat * mean(gg * xhat)), gg = g * gamma; "
           "gamma: sum(g * xhat); beta: sum(g)",
           preconditions=(Precondition("var + eps > 0", "layer norm needs var + eps > 0",
                                       _var_eps_nonpositive_ln),),
           shape=_shapes.layer_norm, families=NORM_FAMILIES, vjp_floor=16.0, torchlean="layerNorm",
           example_shapes=((4, 8), (8,), (8,))),
]
