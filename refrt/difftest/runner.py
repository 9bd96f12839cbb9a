"""The campaign: select cases, run them (serially, in a process pool, or on a Dask
cluster), stream each record into the store.

Cases are independent; the unit of work is a *task*, the cases of one input set (same
op, dtype, family, seed, variant) across backends and semantics, so one oracle
evaluation serves them all.  Any engine yields the same records (only ``elapsed_s``
differs), so a store begun with one engine can be resumed with another.
"""
from __future__ import annotations

import time
from collections import OrderedDict

from ..registry import OPS
from . import adapters as A
from .cases import DTYPES, Case, families_for, variants_for


def plan(backends, ops=None, dtypes=DTYPES, families=None, seeds=(0,), semantics=("native",),
         variants=None):
    """Every case of the selection, in an order that covers every (op, backend) early:
    seed, then family position, then op, dtype, variant, backend."""
    cases = []
    loaded = {b: A.load(b) for b in backends}
    for seed in seeds:
        for pos in range(16):
            for name in (ops or list(OPS)):
                spec = OPS[name]
                fams = families_for(spec)
                if pos >= len(fams):
                    continue
                fam = fams[pos]
                if families and fam not in families:
                    continue
                for dt in dtypes:
                    for var in variants_for(spec):
                        if variants is not None and var not in variants:
                            continue
                        for b, ad in loaded.items():
                            e = ad.entries.get(name)
                            if e is None or dt not in ad.dtypes or (e.dtypes and dt not in e.dtypes):
                                continue
                            if e.variants is not None and var not in e.variants:
                                continue
                            for sem in semantics:
                                if sem == "spec" and not (e.native or e.spec):
                                    if "native" in semantics:
                                        continue   # same call either way: run it once
                                cases.append(Case(b, name, dt, fam, seed, var, sem))
    return cases


def tasks(cases):
    groups = OrderedDict()
    for c in cases:
        groups.setdefault(c.inputs_id, []).append(c)
    return list(groups.values())


def run_task(cases, deadline=None):
    """Records of the cases of one task (top-level, so pools and Dask can pickle it).
    ``deadline`` (a ``time.time()`` value): cases not started by then are left out, and
    the caller counts them as not run."""
    import warnings
    from .compare import run_case
    out = []
    for c in cases:
        if deadline is not None and time.time() > deadline:
            break
        try:
            with warnings.catch_warnings():
                # a backend's own warnings (NumPy's "Mean of empty slice", ...) are what
                # the records classify; they are not the campaign's output
                warnings.simplefilter("ignore")
                out.append(run_case(c))
        except Exception as err:   # a harness failure is a record too, never a lost case
            out.append(dict(c.to_dict(), key=c.key, schema=1, error=f"harness: {type(err).__name__}: {err}"[:300],
                            n=0, classes={}, max_bits=0.0, max_ulp=0.0, findings=[], grad=None, xla={},
                            points=[], params={}))
    return out


def execute(cases, store, workers=1, dask=None, budget=None, progress=None):
    """Run the cases not yet in ``store``; returns the number skipped by the budget."""
    todo = [c for c in cases if c.key not in store.done]
    groups = tasks(todo)
    deadline = None if budget is None else time.time() + budget
    left = 0

    def over():
        return deadline is not None and time.time() > deadline

    def done(records):
        for r in records:
            store.add(r)
            if progress:
                progress(r)

    if dask:
        from .engines import run_dask
        run_dask(groups, done, dask, over, deadline)
    elif workers and workers > 1:
        from .engines import run_pool
        run_pool(groups, done, workers, over, deadline)
    else:
        for g in groups:
            if over():
                break
            done(run_task(g, deadline))
    return len(todo) - sum(1 for c in todo if c.key in store.done)
