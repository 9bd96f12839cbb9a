"""What an adapter is: a table of ``Entry`` records, one per registry op the framework
has, plus how to move arrays in and out of the framework.

An adapter module defines ``ADAPTER = Adapter(...)``; ``refrt.difftest.adapters.load``
finds it by the table in ``adapters/__init__.py``.  See the README, "How to add an
adapter".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ByDesign:
    """A documented departure: findings of ``kinds`` whose witness satisfies ``where``
    (``where(arrays, params) -> bool``; None: always) are annotated with ``note``."""

    kinds: tuple
    note: str
    where: Callable | None = None
    phase: str = "forward"
    # flush-to-zero: applies where an input or the exact value is subnormal
    ftz: bool = False


def subnormal_involved(arrays, want, dtype) -> bool:
    from ...rounding import format_of
    tiny = 2.0 ** format_of(dtype).emin
    for a in list(arrays) + [want]:
        a = np.asarray(a)
        if a.dtype.kind == "f":
            v = np.abs(a.astype(np.float64))
            if np.any((v > 0) & (v < tiny)):
                return True
    return False


@dataclass(frozen=True)
class Fix:
    """The rewrite in the framework's own terms, checked on the witness before it is
    printed: ``fn`` has the entry's signature; ``code`` is what the user writes."""

    code: str
    fn: Callable


@dataclass(frozen=True)
class Entry:
    """One registry op in one framework.

    fn(*inputs, **params): the framework call, inputs already framework arrays.
    code: the same call as a user writes it; ``{name}`` fields are the registry's arg and
        param names (args become variables of that name in the reproducer).
    params: the registry params this call passes explicitly (the rest are fixed).
    native: param values the framework's own defaults imply, so that the oracle computes
        the exact op with the same explicit parameters under ``--semantics native``
        (e.g. torch's layer_norm eps=1e-5).  Under ``--semantics spec`` the registry's
        TorchLean defaults are passed instead.
    spec: a different call that aligns with TorchLean's convention where passing params
        cannot (e.g. BCE's eps clip); ``spec_code`` is its source.
    conventions: in words, what is passed explicitly (eps, reduction, channel axis).
    variants: which case variants the framework has (None: all; "target=ids" needs
        class-index targets support).
    """

    fn: Callable
    code: str
    params: tuple = ()
    native: dict = field(default_factory=dict)
    spec: Callable | None = None
    spec_code: str = ""
    conventions: str = ""
    by_design: tuple = ()
    fixes: tuple = ()
    variants: tuple | None = None
    grad: bool = True
    dtypes: tuple | None = None


@dataclass
class Adapter:
    """A backend: its entries and how to convert arrays.

    to_backend(np_array, dtype_name) -> framework array; to_numpy(value) -> ndarray;
    vjp(fn, inputs, params, g, wrt) -> cotangents (None: no autograd);
    header: the reproducer's import lines; literal(array, dtype_name) -> source of a
    framework array holding exactly those values."""

    name: str
    version: Callable
    entries: dict
    dtypes: tuple
    to_backend: Callable
    to_numpy: Callable
    literal: Callable
    header: str
    vjp: Callable | None = None
    extra: str = ""           # pip extra that installs the framework
    description: str = ""
    helpers: dict = field(default_factory=dict)   # name -> source, added to a reproducer that calls it

    def params_for(self, entry, params):
        return {k: params[k] for k in entry.params if k in params}


def as_float(v) -> np.ndarray:
    """Any framework result as a NumPy float array (bfloat16 widened to float32)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":
            v = v.float()
        v = v.numpy()
    a = np.asarray(v)
    if a.dtype.name == "bfloat16" or a.dtype.kind not in "fiub":
        a = a.astype(np.float32)
    return a


def py_literal(a: np.ndarray) -> str:
    """Exact Python source of an array's values (float repr round-trips; +-inf and NaN
    written as float('inf') / float('nan'))."""
    def lit(v):
        if isinstance(v, list):
            return "[" + ", ".join(lit(u) for u in v) + "]"
        if isinstance(v, float):
            if v != v:
                return "float('nan')"
            if v in (float("inf"), float("-inf")):
                return "float('inf')" if v > 0 else "-float('inf')"
            return repr(v)
        return repr(v)
    a = np.asarray(a)
    return lit(a.astype(np.float64).tolist() if a.dtype.kind == "f" else a.tolist())


def kink(op, framework):
    """A gradient convention at a kink (x == 0 for abs, x at a clamp bound): frameworks
    choose a subgradient there; the registry's is TorchLean's (0 at the kink)."""
    def at_kink(arrays, params):
        x = np.asarray(arrays[0])
        if op == "abs":
            return bool(np.any(x == 0))
        return bool(np.any((x == params.get("lo")) | (x == params.get("hi"))))
    return ByDesign(("bits",), f"by design: {framework}'s gradient of {op} at its kink is its own "
                    "subgradient choice (the registry's, TorchLean's, is 0 there)", at_kink, phase="gradient")


def empty_mean(framework):
    return ByDesign(("nan",), f"by design: {framework} gives NaN (0 / 0) for the mean of an empty axis; "
                    "TorchLean's meanDenom divides by 1, giving 0",
                    lambda a, p: 0 in np.shape(a[0]))
