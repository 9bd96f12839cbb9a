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
    with pytest.raises(AssertionError, match="by more than 1 ulp"):
        assert_close_to_reference(bad, "exp", x, ulps=1)


def test_rtol_atol_as_torch_testing():
    x = np.array([0.5, 1.0, 2.0])
    off = oracle.exp(x) * (1 + 1e-9)                       # ~4500 ulp in float64
    with pytest.raises(AssertionError):
        assert_close_to_reference(off, "exp", x)
    assert_close_to_reference(off, "exp", x, rtol=1e-8, atol=0.0)
    with pytest.raises(AssertionError, match=r"atol \+ rtol"):
        assert_close_to_reference(off, "exp", x, rtol=1e-10, atol=0.0)
    with pytest.raises(ValueError, match="both or neither"):
        assert_close_to_reference(off, "exp", x, rtol=1e-8)
    nan = off.copy()
    nan[0] = np.nan
    with pytest.raises(AssertionError, match="NaN/Inf"):
        assert_close_to_reference(nan, "exp", x, rtol=1.0, atol=1.0)


def test_dim_is_an_alias_of_axis():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert_close_to_reference(oracle.log_softmax(x, axis=0), "log_softmax", x, dim=0)
    with pytest.raises(AssertionError):
        assert_close_to_reference(oracle.log_softmax(x, axis=0), "log_softmax", x, dim=1)
    with pytest.raises(TypeError, match="not both"):
        assert_close_to_reference(oracle.log_softmax(x), "log_softmax", x, dim=0, axis=0)
    with pytest.raises(TypeError, match="'dim'.*not a parameter of exp"):
        assert_close_to_reference(oracle.exp(x), "exp", x, dim=0)


def _layer_norm_inputs(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)).astype(np.float32), np.ones(d, np.float32),
            np.zeros(d, np.float32))


def test_eps_default_differs_from_torch_hint():
    """Results computed with torch's eps = 1e-5 fail against refrt's 1e-6, and the
    failure says which eps to pass (checked: with it the comparison passes)."""
    x, g, b = _layer_norm_inputs(4, 8)
    torch_like = oracle.layer_norm(x, g, b, eps=1e-5, dtype=np.float32)
    with pytest.raises(AssertionError) as err:
        assert_close_to_reference(torch_like, "layer_norm", x, g, b)
    msg = str(err.value)
    assert ("refrt uses eps = 1e-06 (TorchLean); torch.nn.functional.layer_norm's default is "
            "1e-05: pass eps=1e-05") in msg
    assert "with it, every element is within tolerance" in msg
    assert_close_to_reference(torch_like, "layer_norm", x, g, b, eps=1e-5)


def test_large_input_reproducer_is_saved_and_runs(tmp_path):
    """A failing row too long to inline is saved; the printed line loads it and gives the
    reference value at the failing element."""
    x, g, b = _layer_norm_inputs(6, 200, seed=1)
    got = oracle.layer_norm(x, g, b, dtype=np.float32)
    got[4, 17] = np.nextafter(got[4, 17], np.float32(np.inf)) * np.float32(1.001)
    with pytest.raises(AssertionError) as err:
        assert_close_to_reference(got, "layer_norm", x, g, b, reproducer_dir=tmp_path)
    line = str(err.value).splitlines()[-1]
    assert "the failing row, shapes (1, 200), (200,), (200,), saved" in line
    code = line.split("reproduce: ")[1].split("  (")[0]
    import refrt
    value = eval(code, {"refrt": refrt, "np": np})
    assert value.shape == (1, 200)
    assert value[0, 17] == oracle.layer_norm(x, g, b, dtype=np.float32)[4, 17]
    assert list(tmp_path.iterdir())[0].name.startswith("refrt_repro_layer_norm_test_large")


def test_row_reproducer_inline_for_short_rows():
    x = np.random.default_rng(2).standard_normal((50, 5))
    got = oracle.log_softmax(x)
    got[31, 2] += 1e-6
    with pytest.raises(AssertionError) as err:
        assert_close_to_reference(got, "log_softmax", x)
    line = str(err.value).splitlines()[-1]
    import refrt
    value = eval(line.split("reproduce: ")[1], {"refrt": refrt, "np": np})
    assert value.shape == (1, 5) and value[0, 2] == oracle.log_softmax(x)[31, 2]


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


PLUGIN_SUITE = '''
import numpy as np
import pytest
import my_ops


@pytest.mark.refrt_reference("log_softmax", dtypes=["float32", "float64"], seeds=2)
def test_refrt_kernel(refrt_case):
    x, = refrt_case.inputs
    refrt_case.check(my_ops.log_softmax(x, refrt_case.params["axis"]))


@pytest.mark.refrt_reference("log_softmax", dtypes=["float32"], families=["dominant"])
def test_textbook(refrt_case):
    x, = refrt_case.inputs
    refrt_case.check(my_ops.textbook_log_softmax(x, refrt_case.params["axis"]))


@pytest.mark.refrt_reference("exp", dtypes=["float32"], families=["normal"])
def test_wrong_dtype(refrt_case):
    refrt_case.check(np.exp(refrt_case.inputs[0].astype(np.float64)))


def test_max_prec(refrt_oracle, refrt_assert_close, request):
    assert request.config.getoption("--refrt-max-prec") == 80
    with pytest.warns(UserWarning, match="not compared"):
        refrt_assert_close(np.expm1(np.array([2.0 ** -52])), "expm1", np.array([2.0 ** -52]))
    assert refrt_oracle.exp(np.array([1.0]))[0] == np.e
'''

MY_OPS = '''
import numpy as np


def log_softmax(x, axis):
    import refrt
    return refrt.ops.log_softmax(x, axis=axis)


def textbook_log_softmax(x, axis):
    with np.errstate(all="ignore"):
        return np.log(np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True))
'''


def test_plugin_marker_and_option(tmp_path):
    """The refrt_reference marker runs a test per dtype x family x seed on refrt's input
    families (a textbook log_softmax fails on dominant logits, passes on normal ones);
    --refrt-max-prec reaches the fixtures."""
    import os
    import subprocess
    import sys
    from importlib.metadata import entry_points
    import refrt
    (tmp_path / "test_suite.py").write_text(PLUGIN_SUITE)
    (tmp_path / "my_ops.py").write_text(MY_OPS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    autoload = (not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") and any(
        ep.value == "refrt.testing.plugin" for ep in entry_points(group="pytest11")))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.path.dirname(os.path.dirname(refrt.__file__))]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         *([] if autoload else ["-p", "refrt.testing.plugin"]), "--refrt-max-prec=80",
         "test_suite.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    fams = tuple(OPS["log_softmax"].families)      # the registry's, adversarial ones included
    assert {"normal", "dominant"} <= set(fams)
    for dt in ("float32", "float64"):
        for fam in fams:
            for seed in (0, 1):
                assert f"PASSED test_suite.py::test_refrt_kernel[{dt}-{fam}-{seed}]" in out, out
    assert "FAILED test_suite.py::test_textbook[float32-dominant-0]" in out
    assert "log_softmax (float32): 6 of 54 element(s) differ" in out
    assert "the result has dtype float64, the case is float32" in out
    assert "PASSED test_suite.py::test_max_prec" in out
    assert f"2 failed, {2 * 2 * len(fams) + 1} passed" in out, out
