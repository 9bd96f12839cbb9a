"""refrt: a reference runtime for neural-network numerics.

* ``refrt.ops.<name>``: every op in float32/float64 kernels or the mp backend;
* ``refrt.registry.OPS``: the single declaration of every op.
"""
from . import ops, registry
from .registry import OPS

__version__ = "0.1.0"
__all__ = ["ops", "registry", "OPS"]
