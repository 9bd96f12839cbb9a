"""pytest plugin (entry point ``pytest11``, so ``pip install refrt`` enables it in any test
suite): the ``refrt_oracle`` and ``refrt_assert_close`` fixtures."""
import pytest


@pytest.fixture
def refrt_oracle():
    """The certified oracle module: ``refrt_oracle.evaluate(op, *inputs, dtype=...)`` or
    ``refrt_oracle.<op>(...)``."""
    from refrt import oracle
    return oracle


@pytest.fixture
def refrt_assert_close():
    """``refrt.testing.assert_close_to_reference(actual, op, *inputs, max_ulp=None, **params)``."""
    from refrt.testing import assert_close_to_reference
    return assert_close_to_reference
