"""pytest plugin (entry point ``pytest11``): provides the ``refrt_oracle`` fixture."""
import pytest


@pytest.fixture
def refrt_oracle():
    """The certified oracle module, ``refrt.oracle``."""
    from refrt import oracle
    return oracle
