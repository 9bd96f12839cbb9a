"""The generated docs tables cover every registry op (regenerate with `refrt docs`)."""
import os

import pytest

from refrt.registry import OPS

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")


@pytest.mark.parametrize("name", ["ops.md", "accuracy.md"])
def test_generated_table_lists_every_op(name):
    """docs/ops.md and docs/accuracy.md have a row for each op in the registry."""
    path = os.path.join(DOCS, name)
    if not os.path.exists(path):
        pytest.skip("docs/ not shipped with this installation")
    text = open(path).read()
    missing = [op for op in OPS if f"`{op}`" not in text]
    assert not missing, f"{name} is stale (run `refrt docs`): missing {missing}"
