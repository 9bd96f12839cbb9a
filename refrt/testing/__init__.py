"""Testing helpers for users of refrt: check any framework's output against the certified
oracle.

    from refrt.testing import assert_close_to_reference
    assert_close_to_reference(my_log_softmax(x), "log_softmax", x, dim=-1)

``refrt.testing.strategies`` has hypothesis strategies for adversarial inputs, and the
pytest plugin (installed with refrt; ``refrt.testing.plugin``) provides the
``refrt_oracle``, ``refrt_assert_close`` and ``refrt_case`` fixtures, the
``refrt_reference`` marker and the ``--refrt-max-prec`` option (docs/testing.md).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import oracle
from ..metrics import bits_error, ulp_distance
from ..registry import get
from ..rounding import format_of
from ._report import failure_message

__all__ = ["assert_close_to_reference", "default_ulps", "UndecidedReferenceWarning"]


class UndecidedReferenceWarning(UserWarning):
    """Some elements were not compared: the oracle could not certify them."""


def _dtype_name(actual):
    name = actual.dtype.name
    if actual.dtype.kind != "f" and name != "bfloat16":
        raise TypeError(f"assert_close_to_reference: argument 'actual' expected a float "
                        f"array (float16, bfloat16, float32 or float64), got dtype {actual.dtype}")
    return format_of(name).name


def default_ulps(op_name, dtype) -> float:
    """The registry's ulp budget of ``op_name`` for results in ``dtype``: the op's
    float64 tolerance for float64, its float32 tolerance for float32, float16 and
    bfloat16 (counted in ulps of that format: a half-precision result computed in float32
    and rounded once is within 0.5 ulp of the reference, a budget of a few ulps leaves
    room for half-precision arithmetic in between)."""
    name = format_of(dtype if isinstance(dtype, str) else np.dtype(dtype).name).name
    return get(op_name).tol["float64" if name == "float64" else "float32"]


def _check_tolerances(op, ulps, max_ulp, rtol, atol):
    if max_ulp is not None:
        if ulps is not None:
            raise TypeError(f"{op}: pass ulps= or its older name max_ulp=, not both")
        ulps = max_ulp
    if (rtol is None) != (atol is None):
        # as torch.testing.assert_close: a relative tolerance alone has no meaning near 0
        raise ValueError(f"{op}: argument 'rtol'/'atol' expected both or neither, got "
                         f"rtol={rtol!r}, atol={atol!r}")
    for name, v in (("ulps", ulps), ("rtol", rtol), ("atol", atol)):
        if v is not None and (isinstance(v, bool) or not np.isfinite(v) or v < 0):
            raise ValueError(f"{op}: argument '{name}' expected a finite number >= 0, got {v!r}")
    return ulps


def _axis_alias(spec, params, dim):
    if dim is None:
        return params
    if "axis" in params:
        raise TypeError(f"{spec.name}: pass axis= or its torch name dim=, not both")
    if "axis" not in spec.param_names:
        raise TypeError(f"{spec.name}: argument 'dim' (an alias of axis=) is not a parameter "
                        f"of {spec.name}; its parameters are "
                        f"{', '.join(sorted(spec.param_names)) or 'none'}")
    return {**params, "axis": dim}


def assert_close_to_reference(actual, op_name, *inputs, ulps=None, rtol=None, atol=None,
                              dim=None, max_prec=None, reproducer_dir=None, max_ulp=None,
                              **params):
    """Assert that ``actual`` matches the correctly rounded exact result of
    ``op_name(*inputs, **params)`` in the dtype of ``actual``.

    Tolerance: ``ulps`` (default: the op's registry budget for that dtype, see
    ``default_ulps``; ``max_ulp`` is its older name), or ``rtol`` and ``atol`` together
    as in ``torch.testing.assert_close`` (``|actual - want| <= atol + rtol * |want|``).
    Given both, an element passes when it meets either.  A NaN or infinity where the
    exact result is finite always fails, and is named as such.

    ``dim`` is an alias of ``axis`` (torch's name).  ``max_prec`` caps the oracle's
    precision (default ``refrt.oracle.DEFAULT_MAX_PREC``); elements it cannot certify are
    skipped with an ``UndecidedReferenceWarning``.  A failure lists the worst elements,
    says when one of refrt's TorchLean defaults (eps) differs from the framework's and
    whether passing the framework's value makes the comparison pass, and gives a one-line
    reproducer: the failing element or row inline when small, else saved to an ``.npz``
    in ``reproducer_dir`` (default: beside the running test, or the current directory).
    """
    __tracebackhide__ = True                     # pytest shows the caller's line, not ours
    spec = get(op_name)
    ulps = _check_tolerances(spec.name, ulps, max_ulp, rtol, atol)
    params = _axis_alias(spec, params, dim)
    actual = np.asarray(actual)
    dtype = _dtype_name(actual)
    if ulps is None and rtol is None:
        ulps = default_ulps(spec.name, dtype)
    opts = {} if max_prec is None else {"max_prec": max_prec}
    got = actual.astype(np.float64)
    want, ulp, bad, undecided = _compare(spec, got, dtype, inputs, params, ulps, rtol, atol, opts)
    if undecided:
        warnings.warn(f"{spec.name}: {undecided} element(s) not compared: the oracle could "
                      "not certify them", UndecidedReferenceWarning, stacklevel=2)
    if not bad.any():
        return
    bits = bits_error(got, want, dtype)

    def passes_with(**changed):
        *_, bad2, _ = _compare(spec, got, dtype, inputs, {**params, **changed}, ulps, rtol,
                               atol, opts)
        return not bad2.any()

    raise AssertionError(failure_message(
        spec, actual, inputs, params, dtype, got, want, ulp, bits, bad,
        tolerance=_describe(ulps, rtol, atol), passes_with=passes_with,
        reproducer_dir=reproducer_dir, oracle_opts=opts))


def _compare(spec, got, dtype, inputs, params, ulps, rtol, atol, opts):
    enc = oracle.evaluate(spec.name, *inputs, dtype=dtype, return_enclosure=True,
                          on_undecided="nan", **params, **opts)
    want = np.asarray(enc.value, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{spec.name}: result shape {got.shape} differs from the "
                             f"reference shape {want.shape}")
    checked = ~enc.undecided
    ulp = np.where(checked, ulp_distance(got, want, dtype), 0.0)
    ok = np.zeros(got.shape, dtype=bool)
    if ulps is not None:
        ok |= ulp <= ulps
    if rtol is not None:
        with np.errstate(invalid="ignore", over="ignore"):
            close = np.abs(got - want) <= atol + rtol * np.abs(want)
        same = (got == want) | (np.isnan(got) & np.isnan(want))     # equal infinities, NaN
        ok |= (close & np.isfinite(got)) | same
    bad = checked & ~ok
    return want, ulp, bad, int(enc.undecided.sum())


def _describe(ulps, rtol, atol):
    parts = []
    if ulps is not None:
        parts.append(f"{ulps:g} ulp")
    if rtol is not None:
        parts.append(f"atol + rtol * |want| (atol={atol:g}, rtol={rtol:g})")
    return " and ".join(parts)
