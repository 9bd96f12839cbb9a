"""The BugZoo cases: each textbook formulation really fails, and refrt's op does not."""
import pytest

from refrt.bugzoo import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.op)
def test_textbook_fails_and_refrt_is_accurate(case):
    """The naive formulation loses at least 4 bits; refrt's op is within its tolerance."""
    from refrt.registry import OPS
    import math
    r = run_case(case)
    assert r.naive_bits >= 4, f"{case.name}: the textbook form is accurate here ({r.naive_bits} bits)"
    budget = math.log2(1 + OPS[case.op].tol[case.dtype])
    assert r.refrt_bits <= budget, f"{case.name}: refrt {r.refrt_bits} bits > {budget}"
