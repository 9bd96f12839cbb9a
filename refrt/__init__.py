"""refrt: a reference runtime for neural-network numerics.

* ``refrt.ops.<name>``: every op in float32/float64 kernels or the mp backend;
* ``refrt.registry.OPS``: the single declaration of every op;
* ``refrt.trace`` / ``refrt.vjp`` / ``refrt.grad``: recorded graphs and reverse mode on
  any backend;
* ``refrt.oracle``: certified, correctly rounded reference values;
* ``refrt.metrics``, ``refrt.testing``: ulp metrics and test helpers for any framework.
"""
import importlib

from . import ops, registry
from .autodiff import grad, vjp
from .graph import trace
from .registry import OPS

__version__ = "0.1.0"
__all__ = ["ops", "registry", "OPS", "trace", "vjp", "grad", "check", "Range", "analyze", "oracle",
           "metrics", "testing"]

_LAZY = ("oracle", "metrics", "testing", "accuracy", "families")


def __getattr__(name):
    if name in ("analyze", "Weight"):
        from . import analysis
        value = getattr(analysis, name)
        globals()[name] = value
        return value
    if name in ("check", "Range"):
        from . import tester
        value = getattr(tester, name)
        globals()[name] = value
        return value
    if name in _LAZY:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'refrt' has no attribute {name!r}")
