"""Differential campaigns find the known failures of textbook formulations and pass
correct ones."""
import sys

import numpy as np
import pytest

from refrt.difftest import adapter, campaign, classify


def test_classify_each_failure_class():
    """overflow, underflow, NaN and bits lost are told apart; accurate values are ''."""
    got = np.array([np.inf, 0.0, np.nan, 1.5, 1.0, np.nan])
    want = np.array([1e30, 1e-300, 2.0, 1.0, 1.0, np.nan])
    bits = np.array([64, 60, 64, 50, 0, 0.0])
    assert classify(got, want, bits).tolist() == ["overflow", "underflow", "NaN", "bits lost", "", ""]


def test_numpy_textbook_softplus_overflows_and_exp_is_fine():
    """log(1 + exp(x)) overflows on wide inputs; np.exp agrees with the oracle."""
    found = {(f.op, f.dtype): f for f in campaign("numpy", ["softplus", "exp"], ("float32",))}
    assert found[("softplus", "float32")].classes["overflow"] > 0
    assert found[("exp", "float32")].ok and found[("exp", "float32")].max_bits <= 1.6


def test_user_module_backend(tmp_path, monkeypatch):
    """module:<name> runs a user's functions named like refrt's ops."""
    (tmp_path / "my_backend.py").write_text(
        "import numpy as np\n"
        "def relu(x):\n    return np.maximum(x, 0)\n"
        "def expm1(x):\n    return np.exp(x) - 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(adapter("module:my_backend")) == {"relu", "expm1"}
    found = {f.op: f for f in campaign("module:my_backend", dtypes=("float64",))}
    assert found["relu"].ok
    assert found["expm1"].classes["bits lost"] + found["expm1"].classes["underflow"] > 0


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="difftest: argument 'backend'"):
        adapter("tensorflow")


def test_torch_adapter_runs_when_installed():
    """PyTorch (optional): its log_softmax is accurate on ordinary logits."""
    pytest.importorskip("torch")
    (f,) = campaign("torch", ["log_softmax"], ("float64",))
    assert not f.error
    assert f.classes.get("NaN", 0) == 0


def test_node_report_finds_the_log_of_softmax_line():
    """Per node of a user's loss: the origin is log(softmax), and the stable form is clean."""
    from refrt import ops
    from refrt.difftest import node_report

    def unstable(logits, target):
        p = ops.softmax(logits)
        return ops.neg(ops.mean(ops.sum(ops.mul(target, ops.log(p)), axis=-1)))

    def stable(logits, target):
        return ops.cross_entropy_logits(logits, target)

    x = np.array([[0.0, -120.0, 3.0], [1.0, 2.0, -200.0]], np.float32)
    t = np.array([[0, 1, 0], [0, 0, 1]], np.float32)
    report = node_report(unstable, x, t)
    origins = [f for f in report if f.origin]
    assert [f.node.op for f in origins] == ["log"]
    assert "log_softmax" in origins[0].alternative
    assert report[-1].classes["overflow"] == 1
    assert all(not f.classes for f in node_report(stable, x, t))
