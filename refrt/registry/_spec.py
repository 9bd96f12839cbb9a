"""The op declaration: one ``OpSpec`` per op is the single source of truth.

Kernels know nothing of it.  Backends bind implementations to ``OpSpec.name``;
``refrt.ops``, the tape, the oracle, the tester, the generated docs tables and the
generic tests all read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from ..domains import REALS, Interval

EPSILON = 1e-6  # TorchLean's Numbers.epsilon (not PyTorch's 1e-5)


@dataclass(frozen=True)
class Arg:
    """One array input of an op."""

    name: str
    domain: Interval = REALS
    differentiable: bool = True
    # "float": float32/float64 array; "target": float array that receives no
    # gradient by default; "class_target": float probabilities or integer class ids;
    # "index": an integer array (positions: embedding ids, gather/scatter indices),
    # int64 after prepare, never differentiable; "condition": a bool array.
    role: str = "float"
    # an optional array (conv's bias): passed as a keyword (or positionally after the
    # required arrays); when omitted, ``optional(shapes, params)`` gives the shape of the
    # zeros that stand in for it (y = sum + 0 is y: sums start at +0)
    optional: Callable | None = None


@dataclass(frozen=True)
class Param:
    """A keyword parameter with its TorchLean default.

    kind: "eps" (finite float >= 0), "float" (finite float), "axis" (int),
    "axis_or_none", "int", "int_tuple", "shape", "bool".
    """

    name: str
    default: Any
    kind: str
    doc: str = ""


@dataclass(frozen=True)
class Case:
    """A special case as data.

    ``inputs`` holds one entry per array argument: a scalar becomes a 1-element array,
    a (nested) tuple becomes an array of that shape.  ``expected`` is the exact value of
    the result's first element (NaN allowed; the sign of a zero is checked for the float
    kernels)."""

    inputs: tuple
    expected: float
    params: dict = field(default_factory=dict)
    note: str = ""
    # dtypes in which the inputs are exact (a case like var(1e8, 1e8 + 2) = 1 only holds
    # where 1e8 + 2 is representable)
    dtypes: tuple = ("float32", "float64")


@dataclass(frozen=True)
class Tol:
    """Budget in ulps of the output dtype, per float dtype."""

    float32: float
    float64: float

    def __getitem__(self, dtype) -> float:
        return getattr(self, np.dtype(dtype).name)


@dataclass(frozen=True)
class Precondition:
    """A condition from TorchLean's correctness certificates (e.g. relu at x != 0).

    ``violated(arrays, params) -> bool`` is evaluated on float inputs; a violation is
    reported, never raised.
    """

    name: str
    description: str
    violated: Callable[..., bool]


@dataclass(frozen=True)
class OpSpec:
    name: str
    signature: str
    kind: str  # unary | binary | reduction | softmax | loss | linalg | norm | shape
    args: tuple
    doc: str
    tol: Tol
    special_cases: tuple = ()
    params: tuple = ()
    # Derivative contract in derivatives.yaml vocabulary (g = upstream, y = result).
    # The rule itself is the function named ``<name>_vjp`` in each backend.
    vjp: str | None = None
    vjp_tol: Tol | None = None
    # condition-number budget for VJPs that are differences of terms (registry/_terms.py):
    # vjp_terms(arrays, params, g) -> per input, |a| + |b| of each component a - b
    vjp_terms: Callable | None = None
    # absolute floor of the tolerance model, in eps * max|grad| (refrt.autodiff): None
    # means 0; declared only where no stable formula exists yet (documented there)
    vjp_floor: float | None = None
    conventions: str = ""
    preconditions: tuple = ()
    # input families (refrt.families.DESCRIPTIONS); the adversarial ones of issue 9 by default
    families: tuple = ("normal", "wide", "extremal", "large_mean", "subnormal", "cancel_max")
    stable_alternative: str = ""
    # shape(spec, arrays, params) -> output shape; validates and may normalise params.
    shape: Callable | None = None
    torchlean: str = ""  # the TorchLean name(s) this op implements
    # example input shapes for the input families (default: by kind, see refrt.families)
    example_shapes: tuple | None = None
    # multi-output ops (lstm_cell): the names of the results.  The registry op returns
    # them stacked along a new leading axis; refrt.ops.<name> returns a tuple of them,
    # each taken by the traced ``select`` op (docs/architecture.md, "Multi-output ops")
    outputs: tuple = ()

    @cached_property
    def arg_names(self) -> tuple:
        return tuple(a.name for a in self.args)

    @cached_property
    def param_names(self) -> frozenset:
        return frozenset(p.name for p in self.params)

    @property
    def param_defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def __repr__(self) -> str:  # short, for pytest ids and messages
        return f"OpSpec({self.name})"
