"""Backends the campaign can run, one small module each (data: name -> module, extra).

``load(name)`` returns the module's ``ADAPTER`` (``refrt.difftest.adapters._base.Adapter``).
``module:<python.module>`` loads a user's module (see ``adapters/module.py``).
"""
from __future__ import annotations

import importlib

from ._base import Adapter, ByDesign, Entry, Fix

# name -> (module, pip extra that installs the framework, one line)
BACKENDS = {
    "refrt": ("refrt", "", "refrt's own float32/float64 kernels"),
    "textbook": ("textbook", "", "the naive formulas as commonly written (a teaching baseline)"),
    "numpy": ("numpy_scipy", "", "NumPy and SciPy's real functions (scipy.special.log_softmax, ...)"),
    "torch": ("torch", "torch", "PyTorch (CPU; CUDA too when a GPU is present: torch-cuda)"),
    "torch-cuda": ("torch_cuda", "torch", "PyTorch on the first CUDA device"),
    "jax": ("jax", "jax", "JAX (CPU)"),
}
DEFAULT = ("refrt", "textbook", "numpy", "torch", "jax")


class MissingFramework(ImportError):
    def __init__(self, name, extra, err):
        hint = f'pip install "refrt[{extra}]"' if extra else "see the error"
        super().__init__(f"backend {name!r} needs a framework that is not installed "
                         f"({err}); install it with: {hint}")
        self.extra = extra


_CACHE: dict = {}
_REGISTERED: dict = {}


def register(name: str, make, extra: str = "", description: str = ""):
    """Add a backend at run time: ``make()`` returns its ``Adapter`` (an ImportError in it
    is reported with ``extra``, the pip extra that installs the framework)."""
    _REGISTERED[name] = (make, extra)
    BACKENDS.setdefault(name, (None, extra, description))
    _CACHE.pop(name, None)


def load(name: str) -> Adapter:
    if name in _CACHE:
        return _CACHE[name]
    if name.startswith("module:"):
        from .module import load_module
        adapter = load_module(name.split(":", 1)[1])
    else:
        if name not in BACKENDS:
            raise KeyError(name)
        mod, extra, _ = BACKENDS[name]
        try:
            if name in _REGISTERED:
                adapter = _REGISTERED[name][0]()
            else:
                adapter = importlib.import_module(f"{__name__}.{mod}").make()
        except ImportError as err:
            raise MissingFramework(name, extra, err) from None
    _CACHE[name] = adapter
    return adapter


def available(name: str) -> bool:
    try:
        load(name)
        return True
    except (ImportError, RuntimeError):
        return False


from ._base import as_float, py_literal  # noqa: E402  (for adapters written outside refrt)

__all__ = ["Adapter", "ByDesign", "Entry", "Fix", "BACKENDS", "DEFAULT", "load", "register",
           "available", "MissingFramework", "as_float", "py_literal"]
