"""Differential campaigns: other backends' ops against the certified oracle.

``refrt check`` (``refrt.difftest.cli``) runs a campaign: every registry op each backend
has (``refrt.difftest.adapters``), on every input family, dtype, axis/target variant
and seed, forward and through the framework's autograd, element by element against
``refrt.oracle``; each departure is classified (``refrt.difftest.classes``), shrunk to
its failing row or element, and given a reproducer in the backend's own API.  Records
stream into a JSON Lines store (``refrt.difftest.store``) and ``refrt report`` renders
them (``refrt.difftest.report``).

Python API::

    from refrt.difftest import campaign
    records = campaign(["torch"], ops=["log_softmax"], dtypes=["float32"])

A user's own program is checked per node by ``refrt.check`` (``refrt.tester``).
"""
from __future__ import annotations

from .cases import Case
from .classes import KINDS


def campaign(backends=("numpy",), ops=None, dtypes=("float32", "float64"), families=None, seeds=(0,),
             semantics=("native",), variants=None, path=None, resume=False, workers=1, dask=None,
             budget=None):
    """Run a campaign and return its records (also written to ``path`` when given)."""
    from .runner import execute, plan
    from .store import Store
    cases = plan(list(backends), ops, tuple(dtypes), families, tuple(seeds), tuple(semantics), variants)
    store = Store(path, resume)
    try:
        execute(cases, store, workers, dask, budget)
    finally:
        store.close()
    keys = {c.key for c in cases}
    return [r for r in store.records if r["key"] in keys]


__all__ = ["campaign", "Case", "KINDS"]
