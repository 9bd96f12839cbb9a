"""Reductions, the softmax family and linear algebra (TorchLean §1.2, §1.5, §1.9)."""
from __future__ import annotations

import math

import numpy as np

from . import _shapes, _terms
from ._spec import Arg, Case, OpSpec, Param, Tol

INF, NAN = math.inf, math.nan
X = (Arg("x"),)
AXIS_NONE = Param("axis", None, "axis_or_none", "None reduces over all elements")
AXIS_LAST = Param("axis", -1, "axis", "the axis the op runs along")

SUM_TOL = Tol(float32=2, float64=2)
SOFTMAX_TOL = Tol(float32=4, float64=4)
LOSS_FAMILIES = ("normal", "wide", "extremal", "large_spread", "dominant", "margins",
                 "large_mean", "subnormal", "inf_logits")
LINALG_FAMILIES = ("normal", "wide", "large_mean", "subnormal", "cancel_max")


def reduction(name, doc, tol=SUM_TOL, cases=(), vjp=None, params=(AXIS_NONE,), **kw):
    return OpSpec(name=name, signature=f"{name}(x, axis={params[0].default!r}) -> y",
                  kind="reduction", args=X, doc=doc, tol=tol, special_cases=tuple(cases),
                  params=tuple(params), vjp=vjp, shape=_shapes.reduction, **kw)


SPECS = [
    reduction("sum", "sum over axis, correctly rounded (the exact sum rounded once: a "
              "certified compensated sum, else an exact superaccumulator), so +-max terms "
              "that cancel give the exact small remainder",
              cases=[Case(((1e308, 1e308),), INF), Case(((INF, -INF),), NAN),
                     Case(((1.0, 1e-30, -1.0),), 1e-30)],
              vjp="x: broadcast(g)", conventions="refrt's choice: an all -0 row sums to -0 "
              "(IEEE 754 addition, as NumPy and PyTorch); TorchLean's foldl seeded with +0 "
              "gives +0; an empty row gives +0", torchlean="sumSpec / reduceSum"),
    reduction("mean", "sum / count along axis; an empty reduction divides by 1 (TorchLean "
              "meanDenom), so mean of an empty axis is 0",
              cases=[Case(((1.0, 2.0),), 1.5), Case(((),), 0.0)],
              vjp="x: broadcast(g) / count", conventions="the exact sum divided by count "
              "(TorchLean's meanSpec is a mean of means: the same real number); an all -0 "
              "row gives -0 (IEEE, see sum)", torchlean="meanSpec / reduceMean"),
    reduction("amax", "maximum along axis (NaN propagates)", Tol(0, 0),
              cases=[Case(((1.0, NAN, 3.0),), NAN), Case(((-INF, -1.0),), -1.0)],
              vjp="x: g split equally among the tied maxima",
              conventions="tied maxima share the gradient equally",
              torchlean="reduceMax"),
    reduction("amin", "minimum along axis (NaN propagates)", Tol(0, 0),
              cases=[Case(((1.0, NAN, 3.0),), NAN), Case(((INF, 1.0),), 1.0)],
              vjp="x: g split equally among the tied minima",
              conventions="tied minima share the gradient equally",
              torchlean="reduceMin"),
    reduction("var", "population variance, two-pass: mean, then mean of squared deviations "
              "(TorchLean reduceVar); empty -> 0", Tol(float32=4, float64=4),
              cases=[Case(((1.0, 1.0, 1.0),), 0.0), Case(((1e8, 1e8 + 2.0),), 1.0, dtypes=("float64",))],
              vjp="x: g * 2 * (x - mean(x)) / count", torchlean="reduceVar"),
    reduction("logsumexp", "log(sum(exp(x))) along axis, max-shifted with log1p: "
              "m + log1p(sum_{j != argmax} exp(x_j - m))", SOFTMAX_TOL,
              cases=[Case(((-INF, -INF),), -INF), Case(((INF, 1.0),), INF),
                     Case(((1000.0, 1000.0),), 1000.0 + math.log(2.0))],
              vjp="x: g * softmax(x)", params=(Param("axis", -1, "axis_or_none"),),
              families=LOSS_FAMILIES),
    OpSpec(name="softmax", signature="softmax(x, axis=-1) -> y", kind="softmax", args=X,
           doc="exp(x - max) / sum(exp(x - max)) along axis; a 0-d input gives 1",
           tol=SOFTMAX_TOL, params=(AXIS_LAST,),
           special_cases=(Case(((0.0, -INF),), 1.0), Case(((1000.0, 1000.0),), 0.5)),
           vjp="x: y * (g - sum(g * y, axis))", shape=_shapes.along_axis,
           families=LOSS_FAMILIES, vjp_terms=_terms.softmax, torchlean="softmaxSpec"),
    OpSpec(name="log_softmax", signature="log_softmax(x, axis=-1) -> y", kind="softmax",
           args=X, doc="(x - m) - log1p(sum_{j != argmax} exp(x_j - m)) along axis; "
           "a 0-d input gives 0", tol=SOFTMAX_TOL, params=(AXIS_LAST,),
           special_cases=(Case(((0.0, -INF),), 0.0), Case(((10.0, 0.0),), -math.log1p(math.exp(-10.0)))),
           vjp="x: g - exp(y) * sum(g, axis)", shape=_shapes.along_axis,
           families=LOSS_FAMILIES, stable_alternative="log_softmax instead of log(softmax(x))",
           vjp_terms=_terms.log_softmax,
           torchlean="logSoftmaxSpec"),
    OpSpec(name="matmul", signature="matmul(a, b) -> c", kind="linalg",
           args=(Arg("a"), Arg("b")),
           doc="(m,n)@(n,p), batched (..., m, n)@(..., n, p) (equal leading dims) or "
           "(..., m, n)@(n, p) (one matrix for every batch entry); each dot product is accumulated with "
           "an FMA-based compensated dot (Ogita-Rump-Oishi Dot2), so it is as accurate as if "
           "computed in twice the working precision", tol=Tol(float32=2, float64=2),
           special_cases=(Case((((1.0, 1.0),), ((1.0,), (-1.0,))), 0.0),),
           vjp="a: g @ b^T; b: a^T @ g", shape=_shapes.matmul, example_shapes=((5, 7), (7, 3)), families=LINALG_FAMILIES,
           torchlean="matMulSpec / bmmSpec"),
    OpSpec(name="linear", signature="linear(x, weight, bias) -> y", kind="linalg",
           args=(Arg("x"), Arg("weight"), Arg("bias")),
           doc="x @ weight^T + bias; rows of x are samples (weight is (out, in)); x may have "
           "any leading batch dimensions (..., in)",
           tol=Tol(float32=2, float64=2),
           special_cases=(Case((((1.0, 2.0),), ((3.0, 4.0),), (0.5,)), 11.5),
                          Case((((2.0 ** 60, 1.0),), ((1.0, 1.0),), (-2.0 ** 60,)), 1.0,
                               note="the compensated dot keeps the 1 that a plain dot loses"),
                          Case((((1.0,),), ((np.inf,),), (-np.inf,)), np.nan)),
           vjp="x: g @ weight; weight: g^T @ x; bias: sum(g, 0)", shape=_shapes.linear,
           example_shapes=((4, 7), (3, 7), (3,)),
           families=LINALG_FAMILIES, torchlean="linearSpec / linearBatchedSpec"),
]
