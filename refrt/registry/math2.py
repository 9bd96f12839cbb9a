"""Math and activations that real models use beyond the proof tape (issue 10, part 1):
sin, cos, erf, the erf form of GELU (PyTorch's default), leaky_relu, log_sigmoid and the
product reduction.  Semantics and defaults follow ``torch`` / ``torch.nn.functional``.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import bad_value
from . import _shapes, _terms
from ._spec import Arg, Case, OpSpec, Param, Precondition, Tol
from .elementwise import AT_ZERO, COMPOSITE, EXACT, LIBM, unary
from .reductions import AXIS_NONE

INF, NAN = math.inf, math.nan


def _zero_in_row(arrays, params):
    return bool((arrays[0] == 0).any())


SLOPE = Param("negative_slope", 0.01, "float", "torch.nn.functional.leaky_relu's default")

SPECS = [
    unary("sin", "sine (C99 sin / sinf: argument reduction with enough bits of pi for any "
          "finite x; sin(+-inf) = NaN)", LIBM,
          [Case((0.0,), 0.0), Case((-0.0,), -0.0), Case((INF,), NAN), Case((-INF,), NAN),
           Case((NAN,), NAN), Case((1e22,), -0.8522008497671888, dtypes=("float64",),
                                   note="a large argument: needs a 1100-bit pi")],
          vjp="x: g * cos(x)", torchlean="sin (torch.sin)"),
    unary("cos", "cosine (C99 cos / cosf; cos(+-inf) = NaN)", LIBM,
          [Case((0.0,), 1.0), Case((-0.0,), 1.0), Case((INF,), NAN), Case((NAN,), NAN)],
          vjp="x: -g * sin(x)", torchlean="cos (torch.cos)"),
    unary("erf", "error function 2/sqrt(pi) * integral_0^x e^(-t^2) dt; erf(+-inf) = +-1",
          LIBM,
          [Case((0.0,), 0.0), Case((-0.0,), -0.0), Case((INF,), 1.0), Case((-INF,), -1.0),
           Case((NAN,), NAN), Case((0.5,), 0.5204998778130465), Case((10.0,), 1.0)],
          vjp="x: g * 2 / sqrt(pi) * exp(-x**2)", torchlean="erf (torch.erf)"),
    unary("gelu_erf", "exact GELU x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2 "
          "(torch.nn.functional.gelu with approximate='none', PyTorch's default; refrt's "
          "`gelu` is TorchLean's tanh form); evaluated as x erfc(-x / sqrt 2) / 2 so the "
          "negative tail does not cancel; gelu_erf(-inf) = -0",
          COMPOSITE,
          [Case((0.0,), 0.0), Case((-0.0,), -0.0), Case((INF,), INF), Case((-INF,), -0.0),
           Case((NAN,), NAN), Case((1.0,), 0.8413447460685429),
           Case((-40.0,), -0.0, note="-20 erfc(28.3) ~ -1e-349 underflows")],
          vjp="x: g * (Phi(x) + x * phi(x)), Phi(x) = erfc(-x / sqrt 2) / 2, "
              "phi(x) = exp(-x**2 / 2) / sqrt(2 pi)",
          conventions="PyTorch's gelu(approximate='none'); the tanh form is the op `gelu`",
          torchlean="(not in TorchLean: its geluSpec is the tanh form)"),
    unary("leaky_relu", "x if x > 0 else negative_slope * x (NaN -> NaN, -0 -> -0)", EXACT,
          [Case((-2.0,), -0.02), Case((3.0,), 3.0), Case((-0.0,), -0.0), Case((INF,), INF),
           Case((-INF,), -INF), Case((NAN,), NAN),
           Case((-1.0,), -0.25, params={"negative_slope": 0.25})],
          vjp="x: g if x > 0 else g * negative_slope", params=(SLOPE,),
          conventions="leaky_relu'(0) = negative_slope (PyTorch: the x > 0 test fails at 0)",
          preconditions=(AT_ZERO,), torchlean="leakyReluSpec"),
    unary("log_sigmoid", "log(sigmoid(x)) = -softplus(-x), branch-stable: x - log1p(e^x) "
          "for x < 0, -log1p(e^-x) for x >= 0; log_sigmoid(+inf) = -0 (the limit from "
          "below: PyTorch returns +0 there)",
          Tol(float32=2, float64=2),
          [Case((0.0,), -math.log(2.0)), Case((-INF,), -INF), Case((INF,), -0.0),
           Case((NAN,), NAN), Case((-1000.0,), -1000.0), Case((800.0,), -0.0),
           Case((30.0,), -math.log1p(math.exp(-30.0)))],
          vjp="x: g * sigmoid(-x)", stable_alternative="log_sigmoid instead of log(sigmoid(x))",
          torchlean="(log of sigmoidSpec; torch.nn.functional.logsigmoid)"),
    OpSpec(name="prod", signature="prod(x, axis=None) -> y", kind="reduction",
           args=(Arg("x"),),
           doc="product over axis (None: all elements); an empty product is 1.  Computed "
               "exactly as if in twice the working precision (compensated, with the "
               "exponent carried apart), so it over/underflows only when the result does",
           tol=Tol(float32=1, float64=1), params=(AXIS_NONE,),
           special_cases=(Case(((2.0, 3.0, 4.0),), 24.0), Case(((),), 1.0),
                          Case(((0.0, INF),), NAN), Case(((NAN, 0.0),), NAN),
                          Case(((-0.0, 2.0),), -0.0), Case(((-2.0, INF),), -INF),
                          Case(((2.0 ** 600, 2.0 ** 600, 2.0 ** -1000),), 2.0 ** 200,
                               dtypes=("float64",), note="the partial product overflows"),
                          Case(((2.0 ** 100, 2.0 ** 100, 2.0 ** -140),), 2.0 ** 60,
                               dtypes=("float32",), note="the partial product overflows")),
           vjp="x: g * prod(x[j] for j != i) (a zero among the others gives 0, as PyTorch)",
           preconditions=(Precondition("x != 0", "prod's gradient at a zero is the product "
                                       "of the others (no division by x)", _zero_in_row),),
           shape=_shapes.reduction, families=("normal", "wide", "extremal"),
           torchlean="(no TorchLean spec; torch.prod)"),
]


def _cosine_shape(spec, arrays, params):
    x, y = arrays
    if x.ndim < 1:
        raise bad_value(spec.name, spec.arg_names[0], "an array of at least 1 dimension",
                        "a 0-d array")
    if y.shape != x.shape:
        raise bad_value(spec.name, spec.arg_names[1], f"shape {x.shape} (the shape of "
                        f"'{spec.arg_names[0]}'; refrt does not broadcast implicitly)", y.shape)
    if "axis" not in params:
        return ()
    params["axis"] = _shapes.normalize_axis(spec, "axis", params["axis"], x.ndim)
    return x.shape[:params["axis"]] + x.shape[params["axis"] + 1:]


def _small_norm(arrays, params):
    eps = params["eps"]
    axis = params.get("axis")
    with np.errstate(over="ignore"):     # an overflowing square means |x| > eps anyway
        return any(bool(np.any(np.sqrt(np.sum(np.square(a.astype(np.float64)), axis=axis)) <= eps))
                   for a in arrays)


CLAMP = Precondition("|x| > eps and |y| > eps", "at a clamped norm the derivative treats "
                     "it as the constant eps (PyTorch 2.13 differentiates the unclamped "
                     "norm there)", _small_norm)
COSINE_RULE = ("x: g * (y / (Nx Ny) - [|x| > eps] * cos * x / |x|**2), Nx = max(|x|, eps); "
               "y: symmetric (TorchLean's catalog rule divides by |p|**2 |t| instead of "
               "|p|**3 |t|: catalog §6.1(4), fixed upstream)")

SPECS += [
    OpSpec(name="cosine_similarity", signature="cosine_similarity(x, y, axis=-1, eps=1e-08) -> c",
           kind="reduction", args=(Arg("x"), Arg("y")),
           doc="<x, y> / (max(|x|, eps) max(|y|, eps)) along axis (PyTorch 2.x "
               "torch.nn.functional.cosine_similarity, which clamps each norm; TorchLean "
               "max'(a, eps) = a > eps ? a : eps).  Computed with Dot2 sums and "
               "double-word norms on power-of-two-scaled rows: no overflow of |x|**2",
           tol=Tol(float32=2, float64=2),
           params=(Param("axis", -1, "axis", "the axis the vectors lie along"),
                   Param("eps", 1e-8, "eps", "PyTorch's default")),
           special_cases=(Case((((3.0, 4.0),), ((4.0, 3.0),)), 0.96),
                          Case((((0.0, 0.0),), ((1.0, 0.0),)), 0.0),
                          Case((((3e-9, 4e-9),), ((1.0, 0.0),)), 0.3, dtypes=("float64",),
                               note="|x| = 5e-9 is clamped to eps = 1e-8"),
                          Case((((1e300, 1e300),), ((1.0, 1.0),)), 1.0, dtypes=("float64",),
                               note="|x|**2 overflows in the naive form"),
                          Case((((1.0, NAN),), ((1.0, 1.0),)), NAN)),
           vjp=COSINE_RULE, preconditions=(CLAMP,), shape=_cosine_shape,
           families=("normal", "wide"), example_shapes=((6, 9), (6, 9)),
           vjp_terms=_terms.cosine_similarity,
           torchlean="cosineSimilaritySpec (the similarity part)"),
    OpSpec(name="cosine_similarity_loss",
           signature="cosine_similarity_loss(pred, target, eps=1e-06) -> loss", kind="loss",
           args=(Arg("pred"), Arg("target")),
           doc="1 - <p, t> / (max(|p|, eps) max(|t|, eps)) over all elements (TorchLean "
               "cosineSimilaritySpec, eps = Numbers.epsilon); unclamped, 1 - cos is formed from double-word "
               "unit vectors as |p/|p| - t/|t||^2 / 2 (no cancellation of a rounded cos; within "
               "a few ulp while 1 - cos > eps_dtype^2, i.e. 1.4e-14 in float32, 4.9e-32 in "
               "float64; below that the error grows as eps / sqrt(2 (1 - cos)) ulp)",
           tol=Tol(float32=4, float64=4), params=(Param("eps", 1e-6, "eps", "TorchLean Numbers.epsilon"),),
           special_cases=(Case(((3.0, 4.0), (4.0, 3.0)), 0.04),
                          Case(((0.0, 0.0), (1.0, 0.0)), 1.0),
                          Case(((1.0, 2.0 ** -30), (1.0, 0.0)), 2.0 ** -61 - 3 * 2.0 ** -123,
                               dtypes=("float64",), note="1 - cos(2**-30) ~ 2**-61: the "
                               "naive 1 - fl(cos) gives 0")),
           vjp="pred, target: -(the cosine_similarity rule) " + COSINE_RULE[COSINE_RULE.index("("):],
           preconditions=(CLAMP,), shape=_cosine_shape,
           families=("normal", "wide", "zero_targets"), vjp_terms=_terms.cosine_similarity_loss,
           torchlean="cosineSimilaritySpec"),
]
