"""Selection (TorchLean's masks as a node): ``where(cond, x, y)``."""
from __future__ import annotations

import math

from . import _shapes
from ._spec import Arg, Case, OpSpec, Tol

INF, NAN = math.inf, math.nan

SPECS = [
    OpSpec(
        name="where", signature="where(cond, x, y) -> z", kind="select",
        args=(Arg("cond", differentiable=False, role="condition"), Arg("x"), Arg("y")),
        doc="x where cond else y, elementwise (cond a bool array of the same shape, or a "
            "float mask of exact 0s and 1s as eq/lt/... return; the selected element is "
            "copied bit for bit, the other branch is never read)",
        tol=Tol(float32=0, float64=0),
        special_cases=(Case((True, 1.5, NAN), 1.5), Case((False, NAN, 2.0), 2.0),
                       Case((True, -0.0, 1.0), -0.0), Case((False, 1.0, -INF), -INF)),
        vjp="cond: non_differentiable; x: g where cond else 0; y: 0 where cond else g",
        conventions="the unselected branch gets an exact +0 cotangent, which an upstream "
                    "rule multiplies by its local derivative (IEEE: 0 * inf = NaN), as in "
                    "PyTorch: guard a denominator with where before dividing, not after",
        shape=_shapes.elementwise, families=("normal", "wide", "extremal"),
        torchlean="maskAfterSafeDiv / hard-mask selection (BugZoo AutogradDomain)"),
]
