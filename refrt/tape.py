"""The reverse walk over a recorded ``Graph`` (reverse-mode automatic differentiation).

The tape holds no math.  Walking the nodes in reverse order (the recording order is a
topological order), each node with a cotangent calls its op's VJP through
``refrt.autodiff.vjp_op`` (the backend table entry ``FLOAT_VJP[name]`` or
``MP_VJP[name]``), and the returned input cotangents are accumulated per slot: a value
read by several nodes (or returned twice) receives the sum of its contributions, added
in reverse recording order.

Nodes that depend on no graph input (constant subgraphs) and nodes whose output
received no cotangent are skipped.  Integer inputs (class ids) get ``None``.
"""
from __future__ import annotations

import numpy as np


def _accumulate(cot, slot, g):
    prev = cot.get(slot)
    cot[slot] = g if prev is None else prev + g


def seed_like(run, value, fill=None):
    """A cotangent of ``value``'s shape in ``run``'s number system: ``fill`` (default 1)
    everywhere; float arrays in the run's dtype, mp values in its context."""
    if run.backend == "mp":
        one = run.ctx.one if fill is None else run.ctx.mpf(fill)
        out = np.empty(np.shape(value), dtype=object)
        out.reshape(-1)[:] = one if out.size else []
        if out.ndim == 0:
            out[()] = one
        return out
    return np.full(np.shape(value), 1.0 if fill is None else fill, dtype=run.dtype)


def _as_cotangent(run, slot, g):
    """Convert a user cotangent to the run's number system (exactly, for mp)."""
    shape = np.shape(run.values[slot])
    g = np.asarray(g) if not isinstance(g, np.ndarray) else g
    if g.shape != shape:
        raise ValueError(f"vjp: cotangent for output %{slot} expected shape {shape}, "
                         f"got {g.shape}")
    if run.backend == "mp":
        if g.dtype == object:
            return g
        from .backends.mpctx import to_ctx
        return to_ctx(run.ctx, np.asarray(g, dtype=np.float64, order="C")
                      if g.dtype.kind != "f" else np.asarray(g, order="C"))
    return np.asarray(g, dtype=run.dtype, order="C")


def backward(run, cotangents):
    """Input cotangents (one per graph input, ``None`` for integer inputs) of ``run``'s
    outputs seeded with ``cotangents`` (one per output, ``None`` meaning zero)."""
    from .autodiff import vjp_op
    graph = run.graph
    if len(cotangents) != len(graph.output_slots):
        raise TypeError(f"vjp: expected {len(graph.output_slots)} cotangent(s), one per "
                        f"output, got {len(cotangents)}")
    cot = {}
    for slot, g in zip(graph.output_slots, cotangents):
        if g is not None:
            _accumulate(cot, slot, _as_cotangent(run, slot, g))
    requires = graph._requires
    for node in reversed(graph.nodes):
        g = cot.pop(node.output, None)
        if g is None or not node.requires_grad:
            continue
        prepared, full, out = run.saved[node.index]
        grads = vjp_op(node.op, prepared, full, out, g, backend=run.backend, ctx=run.ctx,
                       threads=run.threads, prepared=True)
        for slot, gi in zip(node.inputs, grads):
            if gi is not None and requires[slot]:
                _accumulate(cot, slot, gi)
    result = []
    for slot in graph.input_slots:
        value = run.values[slot]
        if np.asarray(value).dtype.kind in "iu":
            result.append(None)
        elif slot in cot:
            result.append(cot[slot])
        else:
            result.append(seed_like(run, value, 0.0))
    return result
