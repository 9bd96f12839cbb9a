"""refrt.testing: assert_close_to_reference, the hypothesis strategies and the plugin."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from refrt import oracle
from refrt.registry import OPS
from refrt.testing import UndecidedReferenceWarning, assert_close_to_reference
from refrt.testing import strategies as S


def test_passes_on_the_reference_itself():
    x = np.linspace(-5, 5, 11)
    assert_close_to_reference(oracle.tanh(x), "tanh", x)
    x32 = x.astype(np.float32)
    assert_close_to_reference(np.tanh(x32), "tanh", x32)           # float32 budget


def test_failure_message_lists_worst_elements_and_reproducer():
    x = np.array([0.5, 1.0, 2.0])
    bad = oracle.exp(x)
    bad[1] = np.nextafter(np.nextafter(bad[1], 9), 9)
    bad[2] = np.nan
    with pytest.raises(AssertionError) as err:
        assert_close_to_reference(bad, "exp", x, max_ulp=1)
    msg = str(err.value)
    assert "exp (float64): 2 of 3" in msg
    assert "NaN/Inf where the exact value is finite" in msg
    assert "at (2,): inputs (2.0) got nan" in msg and "2 ulp" in msg
    assert "reproduce: refrt.oracle.evaluate('exp', np.array([2.0], dtype=np.float64)" in msg


def test_default_tolerance_comes_from_the_registry():
    x = np.array([1.0])
    off = np.nextafter(oracle.exp(x), 9)                  # 1 ulp: within exp's budget
    assert_close_to_reference(off, "exp", x)
    far = oracle.exp(x)
    for _ in range(int(OPS["exp"].tol.float64) + 1):
        far = np.nextafter(far, 9)
    with pytest.raises(AssertionError):
        assert_close_to_reference(far, "exp", x)


def test_float16_and_shape_mismatch():
    x = np.array([0.25, 3.0], dtype=np.float32)
    assert_close_to_reference(np.exp(x).astype(np.float16), "exp", x)
    with pytest.raises(AssertionError, match="shape"):
        assert_close_to_reference(np.exp(x)[:1], "exp", x)


def test_undecided_elements_warn_not_fail():
    x = np.array([2.0 ** -52])
    import refrt.oracle as o
    saved = o.DEFAULT_MAX_PREC
    try:
        o.evaluate.__kwdefaults__["max_prec"] = 80
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert_close_to_reference(np.expm1(x), "expm1", x)
        assert any(issubclass(i.category, UndecidedReferenceWarning) for i in w)
    finally:
        o.evaluate.__kwdefaults__["max_prec"] = saved


def test_plugin_fixtures(refrt_oracle, refrt_assert_close):
    """The pytest11 plugin gives any suite the oracle and the assertion."""
    x = np.array([1.0, 2.0])
    refrt_assert_close(refrt_oracle.log1p(x), "log1p", x)


STRATEGY_OPS = ["log_softmax", "bce_with_logits", "kl_div", "mean", "tanh"]


@pytest.mark.parametrize("name", STRATEGY_OPS)
def test_strategies_draw_valid_inputs(name):
    """op_inputs draws inputs the op accepts; the oracle decides them all."""
    @settings(max_examples=15, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(S.op_inputs(name, np.float64))
    def check(drawn):
        arrays, params = drawn
        enc = oracle.evaluate(name, *arrays, return_enclosure=True, on_undecided="nan",
                              **params)
        assert not enc.undecided.any()
    check()


@settings(max_examples=50, deadline=None, database=None)
@given(S.probabilities((5,), np.float32))
def test_probabilities_stay_in_unit_interval(p):
    assert p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))


@settings(max_examples=50, deadline=None, database=None)
@given(S.near_domain_edge(OPS["log1p"].args[0].domain, np.float64))
def test_domain_edge_values_are_inside(v):
    assert OPS["log1p"].args[0].domain.includes(v) and v < -0.999
