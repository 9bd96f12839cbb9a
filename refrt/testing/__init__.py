"""Testing helpers for users of refrt: check any framework's output against the certified
oracle.

    from refrt.testing import assert_close_to_reference
    assert_close_to_reference(my_log_softmax(x), "log_softmax", x, axis=-1)

``refrt.testing.strategies`` has hypothesis strategies for adversarial inputs, and the
pytest plugin (installed with refrt) provides the ``refrt_oracle`` fixture.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import oracle
from ..metrics import bits_error, ulp_distance
from ..registry import get
from ..rounding import format_of

__all__ = ["assert_close_to_reference", "UndecidedReferenceWarning"]

_SHOW = 5          # worst elements listed in a failure message
_REPRO_MAX = 64    # inputs up to this many elements are written out in the reproducer


class UndecidedReferenceWarning(UserWarning):
    """Some elements were not compared: the oracle could not certify them."""


def _dtype_name(actual):
    name = actual.dtype.name
    if actual.dtype.kind != "f" and name != "bfloat16":
        raise TypeError(f"assert_close_to_reference: argument 'actual' expected a float "
                        f"array (float16, bfloat16, float32 or float64), got dtype {actual.dtype}")
    return format_of(name).name


def _array_literal(a):
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return f"np.array({a.tolist()!r}, dtype=np.int64)"
    vals = np.asarray(a, dtype=np.float64).tolist()
    text = repr(vals).replace("inf", "np.inf").replace("nan", "np.nan")
    return f"np.array({text}, dtype=np.{a.dtype.name})"


def _reproducer(op_name, inputs, params, dtype, index=None, elementwise=False):
    arrays = [np.asarray(v) for v in inputs]
    if elementwise and index is not None and all(a.shape == arrays[0].shape for a in arrays):
        arrays = [a[index].reshape(1) for a in arrays]
    if any(a.size > _REPRO_MAX for a in arrays):
        shapes = ", ".join(str(a.shape) for a in arrays)
        return (f"(inputs too large to inline: shapes {shapes}) refrt.oracle.evaluate("
                f"{op_name!r}, *inputs, dtype={dtype!r}{_kw(params)})")
    args = ", ".join(_array_literal(a) for a in arrays)
    return f"refrt.oracle.evaluate({op_name!r}, {args}, dtype={dtype!r}{_kw(params)})"


def _kw(params):
    return "".join(f", {k}={v!r}" for k, v in params.items())


def assert_close_to_reference(actual, op_name, *inputs, max_ulp=None, **params):
    """Assert that ``actual`` is within ``max_ulp`` ulps of the correctly rounded exact
    result of ``op_name(*inputs, **params)`` in the dtype of ``actual``.

    ``max_ulp`` defaults to the op's registry tolerance for that dtype (float16 and
    bfloat16 use the float32 budget).  A NaN or infinity where the exact result is
    finite always fails, and is named as such.  Elements the oracle cannot certify are
    skipped with an ``UndecidedReferenceWarning``.
    """
    spec = get(op_name)
    actual = np.asarray(actual)
    dtype = _dtype_name(actual)
    if max_ulp is None:
        max_ulp = spec.tol["float64" if dtype == "float64" else "float32"]
    enc = oracle.evaluate(op_name, *inputs, dtype=dtype, return_enclosure=True,
                          on_undecided="nan", **params)
    want = enc.value
    if actual.shape != want.shape:
        raise AssertionError(f"{op_name}: result shape {actual.shape} differs from the "
                             f"reference shape {want.shape}")
    got = actual.astype(np.float64)
    want64 = np.asarray(want, dtype=np.float64)
    checked = ~enc.undecided
    ulp = np.where(checked, ulp_distance(got, want64, dtype), 0.0)
    if enc.undecided.any():
        warnings.warn(f"{op_name}: {int(enc.undecided.sum())} element(s) not compared: the "
                      "oracle could not certify them", UndecidedReferenceWarning, stacklevel=2)
    bad = ulp > max_ulp
    if not bad.any():
        return
    raise AssertionError(_failure(spec, actual, inputs, params, dtype, got, want64, ulp,
                                  bad, max_ulp))


def _failure(spec, actual, inputs, params, dtype, got, want, ulp, bad, max_ulp):
    bits = bits_error(got, want, dtype)
    flat_bad = np.flatnonzero(bad.ravel()) if bad.ndim else np.array([0])
    order = flat_bad[np.argsort(-ulp.ravel()[flat_bad], kind="stable")][:_SHOW]
    arrays = [np.asarray(v) for v in inputs]
    elementwise = spec.kind in ("unary", "binary") and all(a.shape == actual.shape for a in arrays)
    nonfinite = (~np.isfinite(got)) & np.isfinite(want) & bad
    lines = [f"{spec.name} ({dtype}): {int(bad.sum())} of {bad.size} element(s) differ from "
             f"the correctly rounded reference by more than {max_ulp:g} ulp "
             f"(max {ulp.max():g} ulp, {bits.max():.1f} bits)"]
    if nonfinite.any():
        lines.append(f"  {int(nonfinite.sum())} of them are NaN/Inf where the exact value is "
                     "finite")
    for i in order:
        idx = np.unravel_index(i, actual.shape) if actual.ndim else ()
        where = tuple(int(j) for j in idx)
        ins = (", ".join(repr(float(a.ravel()[i])) for a in arrays) if elementwise
               else "(see reproducer)")
        lines.append(f"  at {where}: inputs ({ins}) got {float(got.ravel()[i])!r} want "
                     f"{float(want.ravel()[i])!r} ({ulp.ravel()[i]:g} ulp, {bits.ravel()[i]:.1f} bits)")
    first = np.unravel_index(order[0], actual.shape) if actual.ndim else None
    lines.append("  reproduce: " + _reproducer(spec.name, inputs, params, dtype, first,
                                                elementwise))
    return "\n".join(lines)
