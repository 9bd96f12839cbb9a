"""Registry completeness: every op has a kernel, an mp formula, VJPs, a tolerance and a
special-case table."""
import pytest

from refrt import backends
from refrt.registry import OPS

from conftest import op_params


@pytest.mark.parametrize("spec", op_params())
def test_op_is_complete(spec):
    """Each op declares everything the generic tests need and every backend binds it."""
    assert spec.name in backends.FLOAT, f"{spec.name}: no float kernel bound"
    assert spec.name in backends.MP, f"{spec.name}: no mp formula"
    assert spec.tol.float32 >= 0 and spec.tol.float64 >= 0
    assert spec.special_cases, f"{spec.name}: empty special-case table"
    assert spec.doc and spec.signature.startswith(spec.name + "(")
    assert spec.shape is not None, f"{spec.name}: no shape rule"


def test_names_are_unique_and_snake_case():
    """Op names are snake_case identifiers."""
    for name in OPS:
        assert name.isidentifier() and name == name.lower()
