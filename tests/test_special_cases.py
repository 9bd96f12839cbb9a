"""Special cases declared as data in the registry hold in every backend and dtype."""
import math

import numpy as np
import pytest

from refrt import ops
from refrt.metrics import ulp_distance
from refrt.registry import OPS

CASES = [pytest.param(spec, case, id=f"{spec.name}-{i}")
         for spec in OPS.values() for i, case in enumerate(spec.special_cases)]


def _arrays(spec, case, dtype):
    out = []
    for arg, value in zip(spec.args, case.inputs):
        if arg.role == "condition":
            out.append(np.array(value if isinstance(value, tuple) else [value], dtype=bool))
        elif arg.role == "index":
            out.append(np.array(value if isinstance(value, tuple) else [value], dtype=np.int64))
        elif isinstance(value, tuple):
            if arg.role == "class_target" and value and all(isinstance(v, (int, np.integer)) for v in np.ravel(value)):
                out.append(np.array(value, dtype=np.int64))
            else:
                out.append(np.array(value, dtype=dtype))
        else:
            out.append(np.array([value], dtype=dtype))
    return out


def _check(got, expected, dtype, tol, zero_sign=True):
    if math.isnan(expected):
        assert math.isnan(got), f"got {got!r}, want NaN"
        return
    assert not math.isnan(got), f"got NaN, want {expected!r}"
    want = float(np.asarray(expected, dtype=dtype))
    if want == 0 and zero_sign:
        assert got == 0 and math.copysign(1, got) == math.copysign(1, want), \
            f"got {got!r}, want {want!r}"
        return
    if math.isinf(want):
        assert got == want, f"got {got!r}, want {want!r}"
        return
    # +1: the float64 literal is rounded once more to the dtype
    d = float(ulp_distance(np.array([got], dtype=dtype), np.array([want], dtype=dtype), dtype)[0])
    assert d <= tol + 1, f"got {got!r}, want {want!r} ({d:g} ulp)"


@pytest.mark.parametrize("spec,case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_special_case_float_kernel(spec, case, dtype):
    """The float kernel returns the declared special value (IEEE: NaN, inf, signed zero)."""
    dtype = np.dtype(dtype)
    if dtype.name not in case.dtypes:
        pytest.skip(f"inputs not exact in {dtype.name}")
    with np.errstate(all="ignore"):
        got = ops.evaluate(spec.name, *_arrays(spec, case, dtype), **case.params)
    got = float(np.asarray(got).ravel()[0])
    _check(got, case.expected, dtype, spec.tol[dtype])


@pytest.mark.parametrize("spec,case", CASES)
def test_special_case_mp(spec, case):
    """The mp backend gives the real-number value (or its limit, or NaN) of the case."""
    if "float64" not in case.dtypes:
        pytest.skip("inputs not exact in float64")
    if any(v == 0 and math.copysign(1, v) < 0
           for inp in case.inputs for v in np.ravel(np.asarray(inp, dtype=float))):
        pytest.skip("a -0.0 input: real numbers have no signed zero (IEEE-only case)")
    got = ops.evaluate(spec.name, *_arrays(spec, case, np.float64), backend="mp", prec=200,
                       **case.params)
    value = np.asarray(got, dtype=object).ravel()[0]
    from refrt.rounding import round_mpf
    _check(round_mpf(value, "float64"), case.expected, np.dtype(np.float64),
           spec.tol.float64, zero_sign=False)
