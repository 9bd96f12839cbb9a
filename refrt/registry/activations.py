"""Tape-node activations and fixed-coefficient scalings (TorchLean §1.4, §2.2, §2.3)."""
from __future__ import annotations

import math
from dataclasses import replace

from ..errors import bad_value
from . import _shapes
from ._spec import EPSILON, Arg, Case, Param, Precondition, Tol
from .elementwise import COMPOSITE, EPS, LIBM, ROUNDED, binary, unary

INF, NAN = math.inf, math.nan
ACTIVATION_FAMILIES = ("normal", "wide", "extremal")
# A non-differentiable same-shape float array; "zero_targets" exercises exact zeros in it.
COEFF_FAMILIES = ("normal", "wide", "extremal", "zero_targets", "large_mean", "subnormal")


def _eps_zero(arrays, params):
    return params.get("eps", EPSILON) == 0


def _elu_kink(arrays, params):
    return params.get("alpha", 1.0) != 1.0 and bool((arrays[0] == 0).any())


POSITIVE_EPS = Precondition("eps > 0", "sqrt(x^2 + eps) / log(softplus + eps) are smooth "
                            "only for eps > 0", _eps_zero)
ELU_KINK = Precondition("x != 0 or alpha == 1", "elu has a kink at 0 unless alpha = 1; "
                        "the derivative there is alpha by convention", _elu_kink)


def _dropout_shape(spec, arrays, params):
    keep = params["keep"]
    if not 0 < keep <= 1:
        raise bad_value(spec.name, "keep", "a keep probability in (0, 1]", keep)
    return _shapes.elementwise(spec, arrays, params)


SPECS = [
    unary("logistic", "e**x / (e**x + 1) (TorchLean logisticSpec: the sigmoid function as "
          "its own tape node; evaluated branch-stably, the naive form is inf/inf for large x)",
          COMPOSITE, [Case((0.0,), 0.5), Case((-INF,), 0.0), Case((INF,), 1.0),
                      Case((NAN,), NAN), Case((800.0,), 1.0)],
          vjp="x: g * y * (1 - y)", torchlean="TapeNodes.logistic, logisticSpec"),
    unary("silu", "x * sigmoid(x) (swish); silu(-inf) = -0, the limit", COMPOSITE,
          [Case((0.0,), 0.0), Case((INF,), INF), Case((-INF,), -0.0), Case((NAN,), NAN),
           Case((-0.0,), -0.0)],
          vjp="x: g * (s + x * s * (1 - s)) with s = sigmoid(x)",
          torchlean="TapeNodes.silu, swishSpec"),
    unary("gelu", "tanh approximation x * (1 + tanh(k (x + c x**3))) / 2, c = 0.044715, "
          "k = sqrt(2/pi); evaluated as x * sigmoid(2 k (x + c x**3)); gelu(-inf) = -0",
          COMPOSITE, [Case((0.0,), 0.0), Case((INF,), INF), Case((-INF,), -0.0),
                      Case((NAN,), NAN), Case((2000.0,), 2000.0)],
          vjp="x: g * (1 + t + x * (1 - t**2) * k * (1 + 3 c x**2)) / 2 with "
              "t = tanh(k (x + c x**3))",
          torchlean="TapeNodes.gelu, geluSpec"),
    unary("smooth_abs", "sqrt(x**2 + eps) (evaluated as hypot(x, sqrt(eps)): no overflow "
          "of x**2)", Tol(float32=2, float64=2),
          [Case((0.0,), 1e-3), Case((INF,), INF), Case((-INF,), INF), Case((NAN,), NAN),
           Case((-3e30,), 3e30, dtypes=("float64",)), Case((0.0,), 0.0, {"eps": 0.0})],
          params=(EPS,), vjp="x: g * x / y", preconditions=(POSITIVE_EPS,),
          torchlean="TapeNodes.smoothAbs, smoothAbsSpec"),
    unary("sinh", "hyperbolic sine", LIBM,
          [Case((0.0,), 0.0), Case((-0.0,), -0.0), Case((INF,), INF), Case((-INF,), -INF),
           Case((1000.0,), INF), Case((NAN,), NAN)],
          vjp="x: g * cosh(x)", torchlean="TapeNodes.sinh, sinhSpec"),
    unary("cosh", "hyperbolic cosine", LIBM,
          [Case((0.0,), 1.0), Case((-INF,), INF), Case((INF,), INF), Case((-1000.0,), INF),
           Case((NAN,), NAN)],
          vjp="x: g * sinh(x)", torchlean="TapeNodes.cosh, coshSpec"),
    unary("elu", "x if x > 0 else alpha * (exp(x) - 1) (argument order of the tape node "
          "and the scalar spec; TorchLean's tensor eluSpec swaps x and alpha)",
          Tol(float32=2, float64=2),
          [Case((2.0,), 2.0), Case((-INF,), -1.0), Case((INF,), INF), Case((NAN,), NAN),
           Case((-0.0,), -0.0), Case((-INF,), -0.5, {"alpha": 0.5})],
          params=(Param("alpha", 1.0, "float", "value scale of the negative branch"),),
          vjp="x: g if x > 0 else g * alpha * exp(x)",
          conventions="elu'(0) = alpha (the x <= 0 branch)", preconditions=(ELU_KINK,),
          torchlean="TapeNodes.elu (correct order); not tensor eluSpec (§6.1 item 3)"),
    unary("scale", "x * c (c a fixed scalar)", ROUNDED,
          [Case((3.0,), 6.0, {"c": 2.0}), Case((INF,), NAN, {"c": 0.0}),
           Case((-0.0,), -0.0), Case((1.0,), -0.5, {"c": -0.5})],
          params=(Param("c", 1.0, "float", "the fixed scale"),), vjp="x: g * c",
          torchlean="TapeNodes.scale, scaleSpec"),
    binary("fixed_mask_scale", "coeff * x elementwise (coeff a fixed array, IEEE product: "
           "0 * inf = NaN)", ROUNDED,
           [Case((3.0, 0.5), 1.5), Case((INF, 0.0), NAN), Case((-2.0, 0.0), -0.0),
            Case((NAN, 1.0), NAN)],
           args=(Arg("x"), Arg("coeff", differentiable=False, role="target")),
           vjp="x: g * coeff; coeff: non_differentiable", families=COEFF_FAMILIES,
           torchlean="TapeNodes.fixedMaskScale"),
    replace(binary("fixed_inverted_dropout", "coeff * x with coeff = 1/keep where mask != 0, else 0 "
           "(computed as x / keep, one rounding; a zero coeff keeps IEEE product semantics)",
           ROUNDED,
           [Case((3.0, 1.0), 6.0), Case((3.0, 0.0), 0.0), Case((INF, 0.0), NAN),
            Case((1.0, 1.0), 1.0, {"keep": 1.0}), Case((1.0, NAN), 2.0)],
           args=(Arg("x"), Arg("mask", differentiable=False, role="target")),
           params=(Param("keep", 0.5, "float", "keep probability in (0, 1]"),),
           vjp="x: g / keep where mask != 0, else 0 * g; mask: non_differentiable",
           conventions="mask_i != 0 selects (NaN counts as nonzero); keep outside (0, 1] "
                       "is an error (TorchLean has no eps guard)",
           families=COEFF_FAMILIES, torchlean="TapeNodes.fixedInvertedDropout"),
            shape=_dropout_shape),  # the elementwise rule plus the check of keep
]
