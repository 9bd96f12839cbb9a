import numpy as np
import pytest

from refrt import backends
from refrt.registry import OPS

backends.load()

DTYPES = [np.float32, np.float64]


def op_params(predicate=lambda spec: True):
    """pytest params over registry ops, ids = op names."""
    return [pytest.param(spec, id=spec.name) for spec in OPS.values() if predicate(spec)]


@pytest.fixture(params=("arb", "interval"))
def oracle_engine(request, monkeypatch):
    """Run a test on both certified paths: Arb balls first (python-flint) and mpmath
    intervals only (refrt/oracle.py design note g)."""
    from refrt import oracle
    if request.param == "arb" and not oracle.ARB_AVAILABLE:
        pytest.skip("python-flint is not installed")
    monkeypatch.setattr(oracle, "ENGINE", request.param)
    return request.param


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


def _refrt_plugin_autoloaded():
    """Whether pytest loads refrt's plugin from an installed entry point."""
    import os
    from importlib.metadata import entry_points
    return (not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
            and any(ep.value == "refrt.testing.plugin" for ep in entry_points(group="pytest11")))


# In a source tree that is not pip-installed, load the plugin explicitly.
if not _refrt_plugin_autoloaded():
    pytest_plugins = ["refrt.testing.plugin"]
