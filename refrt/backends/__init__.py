"""Backend tables: op name -> implementation, filled by the binding modules.

``FLOAT`` / ``FLOAT_VJP``: float32/float64 kernels (``refrt._kernels``), signature
``impl(arrays, params, threads) -> ndarray`` and
``vjp(arrays, params, out, g, threads) -> tuple`` (one gradient or None per input).

``FLOAT_LEAN``: optional lean forwards for ``refrt.ops``' fast path, signature
``make(dtype, params) -> call(*arrays) -> ndarray | None``: ``make`` runs once per
(op, dtype) with the op's default params (checked and rounded to ``dtype``); ``call``
receives the user's arguments, of which the first is already known to be a plain
``np.ndarray`` (not a subclass) of the native ``dtype``; it checks the others and
contiguity itself and returns the result, or None (having written nothing) when the
inputs are not that common case, which then takes the general path.

``MP`` / ``MP_VJP``: formulas written once against a context ``ctx`` (an
``mpmath.MPContext`` for the mp backend, an interval or exact-rational context for the
oracle), signature ``formula(ctx, arrays, params) -> object ndarray`` and
``vjp(ctx, arrays, params, out, g) -> tuple``.

The registry never imports this package; this package never imports the tester.
"""
from __future__ import annotations

FLOAT: dict = {}
FLOAT_VJP: dict = {}
FLOAT_LEAN: dict = {}
MP: dict = {}
MP_VJP: dict = {}


def _register(table, name):
    def deco(fn):
        if name in table:
            raise RuntimeError(f"{name!r} registered twice in one backend table")
        table[name] = fn
        return fn
    return deco


def float_impl(name):
    return _register(FLOAT, name)


def float_vjp(name):
    return _register(FLOAT_VJP, name)


def float_lean(name):
    return _register(FLOAT_LEAN, name)


def mp_impl(name):
    return _register(MP, name)


def mp_vjp(name):
    return _register(MP_VJP, name)


_LOADED = False


def load():
    """Import every binding module once (they fill the tables above)."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith(("float_", "mp_")):
            importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True
