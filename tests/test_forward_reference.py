"""Every op x dtype x input family: float kernel vs the mp backend, within the registry
ulp budget."""
import numpy as np
import pytest

from refrt.accuracy import measure

from conftest import op_params

CASES = [pytest.param(p.values[0], fam, id=f"{p.id}-{fam}")
         for p in op_params() for fam in p.values[0].families]


@pytest.mark.parametrize("spec,family", CASES)
def test_forward_within_tolerance(spec, family, dtype):
    """Max ulp error against the mp reference is within the registry tolerance."""
    for seed in (0, 1):
        m = measure(spec, dtype, family, seed)
        tol = spec.tol[dtype]
        assert m.max_ulp <= tol, (
            f"{spec.name} {dtype.name} {family} seed={seed}: {m.max_ulp:g} ulp > {tol} at "
            f"{m.worst_index}: inputs {m.worst_inputs} got {m.got!r} want {m.want!r}")
