"""docs/accuracy.md and docs/vjp_accuracy.md (issue 9): regenerated with the
adversarial families, a legend naming every family, the forward status line, and the
VJP table measured against certified gradients with the budget kind per op."""
import os

import pytest

from refrt.families import ADVERSARIAL, DESCRIPTIONS
from refrt.registry import OPS

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")


def _read(name):
    path = os.path.join(DOCS, name)
    if not os.path.exists(path):
        pytest.skip("docs/ not shipped with this installation")
    return open(path).read()


def test_every_family_has_a_description():
    assert set(ADVERSARIAL) <= set(DESCRIPTIONS)
    for spec in OPS.values():
        unknown = set(spec.families) - set(DESCRIPTIONS)
        assert not unknown, f"{spec.name}: families without a description: {unknown}"
    for name in ("large_mean", "subnormal", "cancel_max"):
        assert any(name in s.families for s in OPS.values() if s.kind == "reduction")


def test_accuracy_doc_has_the_legend_and_is_green():
    text = _read("accuracy.md")
    for fam, desc in DESCRIPTIONS.items():
        assert f"`{fam}`" in text and desc in text, f"accuracy.md: no legend entry for {fam}"
    assert "Status: all within tolerance." in text


def test_vjp_doc_is_measured_against_certified_gradients():
    text = _read("vjp_accuracy.md")
    assert "refrt.oracle.vjp" in text
    missing = [n for n, s in OPS.items() if s.vjp is not None and f"`{n}`" not in text]
    assert not missing, f"vjp_accuracy.md is stale: missing {missing}"
    for line in text.splitlines():
        if line.startswith("| `") and "absolute floor" in line:
            assert line.startswith("| `layer_norm`"), line
