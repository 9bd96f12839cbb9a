"""Elementwise ops (TorchLean §1.1, §1.4): one declaration each."""
from __future__ import annotations

import math

import numpy as np

from ..domains import NONNEGATIVE, POSITIVE, REALS, Interval
from . import _shapes
from ._spec import EPSILON, Arg, Case, OpSpec, Param, Precondition, Tol

INF, NAN = math.inf, math.nan
X = (Arg("x"),)
XY = (Arg("x"), Arg("y"))
EPS = Param("eps", EPSILON, "eps", "TorchLean Numbers.epsilon")

# Budgets in ulps. A single correctly-rounded-ish libm call is <= 1 ulp in glibc;
# composites add an ulp or two per rounding that reaches the result.
LIBM = Tol(float32=2, float64=2)
EXACT = Tol(float32=0, float64=0)
ROUNDED = Tol(float32=1, float64=1)
COMPOSITE = Tol(float32=4, float64=4)


def _any_zero(arrays, params):
    return bool(np.any(arrays[0] == 0))


def _any_nonpositive(arrays, params):
    return bool(np.any(~(arrays[0] > 0)))


def _any_tie(arrays, params):
    return bool(np.any(arrays[0] == arrays[1]))


def _any_y_zero(arrays, params):
    return bool(np.any(arrays[1] == 0))


AT_ZERO = Precondition("x != 0", "the derivative is a convention at x = 0", _any_zero)
NONZERO_DENOM = Precondition("y != 0", "division by zero", _any_y_zero)
POSITIVE_X = Precondition("x > 0", "derivative undefined for x <= 0", _any_nonpositive)
NO_TIES = Precondition("x != y", "tie: the gradient is split 0.5/0.5 by convention", _any_tie)


# ops with a root where relative accuracy is hardest (log(1) = 0, log1p(0) = 0, ...):
# they get the near_root family
NEAR_ROOT = frozenset({"log", "log1p", "safe_log", "expm1"})


def _families(domain, name=""):
    edge = math.isfinite(domain.low) or math.isfinite(domain.high)
    return (("normal", "wide", "extremal", "large_mean", "subnormal")
            + (("domain_edge",) if edge else ()) + (("near_root",) if name in NEAR_ROOT else ()))


def unary(name, doc, tol=LIBM, cases=(), vjp=None, domain=REALS, params=(), **kw):
    kw.setdefault("families", _families(domain, name))
    return OpSpec(name=name, signature=f"{name}(x{''.join(', ' + p.name + '=' + repr(p.default) for p in params)}) -> y",
                  kind="unary", args=(Arg("x", domain),), doc=doc, tol=tol,
                  special_cases=tuple(cases), params=tuple(params), vjp=vjp,
                  shape=_shapes.elementwise, **kw)


def binary(name, doc, tol=ROUNDED, cases=(), vjp=None, args=XY, params=(), **kw):
    kw.setdefault("families", _families(args[0].domain))
    return OpSpec(name=name, signature=f"{name}(x, y{''.join(', ' + p.name + '=' + repr(p.default) for p in params)}) -> z",
                  kind="binary", args=args, doc=doc, tol=tol, special_cases=tuple(cases),
                  params=tuple(params), vjp=vjp, shape=_shapes.elementwise, **kw)


SPECS = [
    binary("add", "x + y", ROUNDED,
           [Case((1.0, 2.0), 3.0), Case((INF, -INF), NAN), Case((-0.0, -0.0), -0.0)],
           vjp="x: g; y: g", torchlean="addSpec"),
    binary("sub", "x - y", ROUNDED,
           [Case((1.0, 1.0), 0.0), Case((INF, INF), NAN)], vjp="x: g; y: -g", torchlean="subSpec"),
    binary("mul", "x * y", ROUNDED,
           [Case((0.0, INF), NAN), Case((-0.0, 1.0), -0.0)], vjp="x: g * y; y: g * x",
           torchlean="mulSpec"),
    binary("div", "x / y (raw IEEE division: y = 0 gives +-inf or NaN)", ROUNDED,
           [Case((1.0, 0.0), INF), Case((-1.0, 0.0), -INF), Case((0.0, 0.0), NAN)],
           vjp="x: g / y; y: -g * x / y**2", preconditions=(NONZERO_DENOM,),
           stable_alternative="safe_div", torchlean="divSpec"),
    unary("neg", "-x", EXACT, [Case((0.0,), -0.0), Case((INF,), -INF)], vjp="x: -g",
          torchlean="negSpec"),
    unary("abs", "|x|", EXACT, [Case((-0.0,), 0.0), Case((-INF,), INF)], vjp="x: g * sign(x)",
          conventions="abs'(0) = 0", preconditions=(AT_ZERO,), torchlean="absSpec"),
    unary("sign", "1 if x > 0, -1 if x < 0, else 0 (NaN -> NaN)", EXACT,
          [Case((0.0,), 0.0), Case((-3.0,), -1.0), Case((NAN,), NAN), Case((-0.0,), -0.0)],
          vjp="x: 0", conventions="refrt's choice: sign(+-0) = +-0 (the zero keeps its sign, as "
          "NumPy and PyTorch) and sign(NaN) = NaN (IEEE propagation); TorchLean's signSpec "
          "on reals has no signed zero or NaN", torchlean="signSpec"),
    unary("square", "x * x", ROUNDED, [Case((-3.0,), 9.0), Case((-INF,), INF)],
          vjp="x: 2 * g * x", torchlean="squareSpec"),
    unary("inv", "1 / x", ROUNDED, [Case((0.0,), INF), Case((-0.0,), -INF), Case((INF,), 0.0)],
          vjp="x: -g / x**2", preconditions=(AT_ZERO,), stable_alternative="safe_inv",
          torchlean="invSpec"),
    binary("pow", "x ** y (C pow semantics: pow(x, 0) = 1, negative x with non-integer y is NaN)",
           LIBM, [Case((2.0, 10.0), 1024.0), Case((NAN, 0.0), 1.0), Case((-8.0, 1.0 / 3.0), NAN),
                  Case((0.0, -1.0), INF)],
           vjp="x: g * y * x**(y - 1); y: g * log(x) * x**y (0 where x**y == 0)",
           args=(Arg("x", POSITIVE), Arg("y")), torchlean="powSpec"),
    unary("exp", "e**x", LIBM, [Case((0.0,), 1.0), Case((-INF,), 0.0), Case((INF,), INF),
                                Case((1000.0,), INF)], vjp="x: g * y", torchlean="expSpec"),
    unary("log", "natural log (raw: log(0) = -inf, log(x < 0) = NaN)", LIBM,
          [Case((0.0,), -INF), Case((-1.0,), NAN), Case((1.0,), 0.0), Case((INF,), INF)],
          vjp="x: g / x", domain=POSITIVE, preconditions=(POSITIVE_X,),
          stable_alternative="safe_log, or log_softmax/cross_entropy_logits for log(softmax)",
          torchlean="logSpec"),
    unary("log1p", "log(1 + x), accurate for small x", LIBM,
          [Case((-1.0,), -INF), Case((-2.0,), NAN), Case((-0.0,), -0.0)], vjp="x: g / (1 + x)",
          domain=Interval(-1.0, INF, False, False)),
    unary("expm1", "exp(x) - 1, accurate for small x", LIBM,
          [Case((-INF,), -1.0), Case((-0.0,), -0.0), Case((INF,), INF)], vjp="x: g * (y + 1)"),
    unary("sqrt", "raw square root: NaN below 0", ROUNDED,
          [Case((-1.0,), NAN), Case((-0.0,), -0.0), Case((INF,), INF)],
          vjp="x: g / (2 * y)", domain=NONNEGATIVE, preconditions=(POSITIVE_X,),
          stable_alternative="sqrt_clamp"),
    unary("sqrt_clamp", "TorchLean sqrtSpec: sqrt(max(x, 0)); negative input gives 0, NaN gives NaN",
          ROUNDED, [Case((-1.0,), 0.0), Case((NAN,), NAN), Case((4.0,), 2.0)],
          vjp="x: g / (2 * y) if x > 0 else 0", conventions="sqrt_clamp'(x) = 0 for x <= 0",
          preconditions=(POSITIVE_X,), torchlean="sqrtSpec"),
    binary("safe_div", "x / (y + eps) (TorchLean safedivSpec; not sign-aware: y = -eps divides by 0)",
           COMPOSITE, [Case((1.0, 0.0), 1e6), Case((0.0, -1e-6), NAN)], params=(EPS,),
           vjp="x: g / (y + eps); y: -g * x / (y + eps)**2", torchlean="safedivSpec"),
    unary("safe_inv", "1 / (x + eps) (TorchLean safeInvOp)", COMPOSITE,
          [Case((0.0,), 1e6), Case((INF,), 0.0)], params=(EPS,),
          vjp="x: -g / (x + eps)**2", torchlean="safeInvOp"),
    unary("safe_log", "TorchLean safeLogSpec: log(softplus(x) + eps) (not log(x + eps))",
          COMPOSITE, [Case((INF,), INF), Case((0.0,), math.log(math.log(2.0) + 1e-6))],
          params=(EPS,), vjp="x: g * sigmoid(x) / (softplus(x) + eps)",
          torchlean="Activation.Math.safeLogSpec"),
    OpSpec(name="clamp", signature="clamp(x, lo=-1.0, hi=1.0) -> y", kind="unary",
           args=X, doc="min(hi, max(lo, x)) (TorchLean clampSpec; NaN gives lo)", tol=EXACT,
           params=(Param("lo", -1.0, "float"), Param("hi", 1.0, "float")),
           special_cases=(Case((5.0,), 1.0), Case((-5.0,), -1.0), Case((NAN,), -1.0)),
           vjp="x: g if lo < x < hi else 0", conventions="derivative 1 on the open interval (lo, hi); clamp(NaN) = lo "
           "as TorchLean's clampSpec (Lean's max lo NaN returns lo), while maximum/minimum "
           "propagate NaN (IEEE 754-2019): refrt follows each spec as written",
           shape=_shapes.elementwise, torchlean="clampSpec"),
    binary("minimum", "min(x, y); NaN propagates (IEEE 754-2019 minimum), min(-0, +0) = -0", EXACT,
           [Case((1.0, NAN), NAN), Case((-0.0, 0.0), -0.0)],
           vjp="x: g * (x < y) + 0.5 * g * (x == y); y: g * (y < x) + 0.5 * g * (x == y)",
           conventions="ties split the gradient 0.5/0.5 (TorchLean runtime engine)",
           preconditions=(NO_TIES,), torchlean="minSpec"),
    binary("maximum", "max(x, y); NaN propagates (IEEE 754-2019 maximum), max(-0, +0) = +0", EXACT,
           [Case((1.0, NAN), NAN), Case((-0.0, 0.0), 0.0)],
           vjp="x: g * (x > y) + 0.5 * g * (x == y); y: g * (y > x) + 0.5 * g * (x == y)",
           conventions="ties split the gradient 0.5/0.5 (TorchLean runtime engine)",
           preconditions=(NO_TIES,), torchlean="maxSpec"),
    unary("relu", "max(x, 0); relu(NaN) = NaN", EXACT,
          [Case((-1.0,), 0.0), Case((NAN,), NAN), Case((INF,), INF)],
          vjp="x: g if x > 0 else 0", conventions="relu'(0) = 0", preconditions=(AT_ZERO,),
          torchlean="reluSpec"),
    unary("sigmoid", "1 / (1 + exp(-x))", COMPOSITE,
          [Case((-INF,), 0.0), Case((INF,), 1.0), Case((0.0,), 0.5), Case((-800.0,), 0.0)],
          vjp="x: g * y * (1 - y)", torchlean="sigmoidSpec"),
    unary("tanh", "hyperbolic tangent", LIBM,
          [Case((-INF,), -1.0), Case((INF,), 1.0), Case((-0.0,), -0.0)],
          vjp="x: g * (1 - y**2)", torchlean="tanhSpec"),
    unary("softplus", "log(1 + exp(x)), branch-stable: x + log1p(exp(-x)) for x > 0", COMPOSITE,
          [Case((-INF,), 0.0), Case((INF,), INF), Case((0.0,), math.log(2.0)),
           Case((1000.0,), 1000.0)],
          vjp="x: g * sigmoid(x)", torchlean="softplusSpec"),
]
