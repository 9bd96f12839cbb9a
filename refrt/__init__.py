"""refrt: a reference runtime for neural-network numerics.

* ``refrt.ops.<name>``: every op in float32/float64 kernels or the mp backend;
* ``refrt.registry.OPS``: the single declaration of every op;
* ``refrt.trace`` / ``refrt.vjp`` / ``refrt.grad``: recorded graphs and reverse mode on
  any backend;
* ``refrt.oracle``: certified, correctly rounded reference values;
* ``refrt.metrics``, ``refrt.testing``: ulp metrics and test helpers for any framework;
* ``refrt.from_torch``: a PyTorch model as a refrt graph (``refrt.importers``, lazy).
"""
import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES


def _missing_kernels():
    """The .pyx kernel modules next to this file with no extension built for this
    interpreter: a source tree (a clone, not built in place) shadowing the install."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels")
    names = os.listdir(here)
    return [n[:-4] for n in names if n.endswith(".pyx")
            and not any(n[:-4] + suffix in names for suffix in EXTENSION_SUFFIXES)]


_missing = _missing_kernels()
if _missing:
    raise ImportError(
        f"refrt is imported from its source tree ({os.path.dirname(os.path.abspath(__file__))}), "
        f"which has no compiled kernels ({', '.join(sorted(_missing))} not built for this "
        "Python); run from another directory or `pip install -e .` (docs/contributing.md)")

from . import ops, registry  # noqa: E402
from .autodiff import grad, vjp  # noqa: E402
from .graph import trace  # noqa: E402
from .registry import OPS  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ops", "registry", "OPS", "trace", "vjp", "grad", "check", "Range", "analyze", "oracle",
           "metrics", "testing", "from_torch", "node_report"]

_LAZY = ("oracle", "metrics", "testing", "accuracy", "families")


def __getattr__(name):
    if name in ("analyze", "Weight"):
        from . import analysis
        value = getattr(analysis, name)
        globals()[name] = value
        return value
    if name in ("from_torch", "node_report"):
        from . import importers
        value = getattr(importers, name)
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
