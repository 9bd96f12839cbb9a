"""Math and activations that real models use beyond the proof tape (issue 10, part 1):
sin, cos, erf, the erf form of GELU (PyTorch's default), leaky_relu, log_sigmoid and the
product reduction.  Semantics and defaults follow ``torch`` / ``torch.nn.functional``.
"""
from __future__ import annotations

import math

from . import _shapes
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
