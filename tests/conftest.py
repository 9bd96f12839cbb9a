import numpy as np
import pytest

from refrt import backends
from refrt.registry import OPS

backends.load()

DTYPES = [np.float32, np.float64]


def op_params(predicate=lambda spec: True):
    """pytest params over registry ops, ids = op names."""
    return [pytest.param(spec, id=spec.name) for spec in OPS.values() if predicate(spec)]


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)
