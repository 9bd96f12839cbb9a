"""Gradient findings: the float gradient of the scalar output (the float VJPs through
the traced graph, as ``refrt.grad`` computes it) against the exact gradient (the mp VJPs
through the same graph, from the same float inputs).

The exact reverse walk treats a zero cotangent as contributing exactly zero: in the real
numbers 0 * f'(x) = 0 even where the float derivative is infinite (a masked division).
That is the difference the tester exposes: ``where(y != 0, x / y, 0)`` at y = 0 has
exact gradient 0, while IEEE float computes 0 / 0 = NaN in the division's VJP.

The origin of a gradient departure is the forward node whose VJP first turns an accurate
incoming cotangent into a departing contribution (walking the tape backwards).
"""
from __future__ import annotations

import numpy as np

from ..autodiff import vjp_op
from ..backends.mpctx import MPMATH_LOCK
from ..registry import get
from ..tape import seed_like
from .evaluate import BACKEND_OF, exact_info, exact_prec
from .localize import departure

ELEMENTWISE = ("unary", "binary", "select")


def _walk(run, exact):
    """Per node index: (cotangent of its output, its VJP's input contributions), and the
    input gradients."""
    graph = run.graph
    out = graph.output_slots[0]
    cot = {out: seed_like(run, run.values[out])}
    per_node = {}
    for node in reversed(graph.nodes):
        g = cot.pop(node.output, None)
        if g is None or not node.requires_grad:
            continue
        prepared, full, value = run.saved[node.index]
        with np.errstate(all="ignore"):
            grads = vjp_op(node.op, prepared, full, value, g, backend=run.backend,
                           ctx=run.ctx, threads=1, prepared=True)
        if exact and get(node.op).kind in ELEMENTWISE:
            zero = np.asarray([v == 0 for v in np.asarray(g, dtype=object).ravel()],
                              bool).reshape(np.shape(g))
            grads = tuple(None if gi is None else
                          np.where(zero, run.ctx.zero, np.asarray(gi, dtype=object))
                          for gi in grads)
        per_node[node.index] = (g, grads)
        for slot, gi in zip(node.inputs, grads):
            if gi is not None and graph._requires[slot]:
                cot[slot] = gi if slot not in cot else cot[slot] + gi
    return per_node, {s: cot.get(s) for s in graph.input_slots}


def gradient_departures(graph, inputs, dtype, threshold, prec=None):
    """[(input index, element, node index, bits, got, want)] where the float gradient
    departs from the exact one."""
    dtype = np.dtype(dtype)
    frun = graph.run(*inputs, backend=BACKEND_OF[dtype.name])
    if np.shape(frun.values[graph.output_slots[0]]) != ():
        return []
    prec = prec or exact_prec(list(inputs), dtype)
    mrun = graph.run(*inputs, backend="mp", prec=prec)
    with np.errstate(all="ignore"):
        fnodes, fgrads = _walk(frun, exact=False)
    with MPMATH_LOCK:
        mnodes, mgrads = _walk(mrun, exact=True)
    found = []
    for i, slot in enumerate(graph.input_slots):
        fg, mg = fgrads.get(slot), mgrads.get(slot)
        if fg is None or mg is None or np.asarray(inputs[i]).dtype.kind != "f":
            continue
        ex = exact_info(mg, dtype)
        d = departure(np.asarray(fg), ex, dtype, threshold, output=True)
        d.mask &= ~ex.nan & ~ex.inf       # only where the exact gradient is finite
        if not d.mask.any():
            continue
        origin = _origin(graph, fnodes, mnodes, dtype, threshold)
        flat = np.flatnonzero(d.mask.ravel())
        j = flat[np.argmax(d.bits.ravel()[flat])]
        idx = np.unravel_index(j, d.mask.shape) if d.mask.ndim else ()
        full = 32.0 if dtype == np.float32 else 64.0
        bits = full if not np.isfinite(np.asarray(fg).ravel()[j]) else float(d.bits.ravel()[j])
        found.append((i, tuple(int(t) for t in idx), origin, d.kind.ravel()[j], bits,
                      float(np.asarray(fg).ravel()[j]), float(ex.rounded.ravel()[j])))
    return found


def _departs(f, m, dtype, threshold):
    if f is None or m is None:
        return False
    d = departure(np.asarray(f), exact_info(m, dtype), dtype, threshold, output=False)
    return bool(d.mask.any())


def _origin(graph, fnodes, mnodes, dtype, threshold):
    """The first node (walking backwards) whose incoming cotangent is accurate and one of
    whose contributions departs."""
    last = None
    for node in reversed(graph.nodes):
        if node.index not in fnodes or node.index not in mnodes:
            continue
        fg, fcontrib = fnodes[node.index]
        mg, mcontrib = mnodes[node.index]
        bad_out = _departs(fg, mg, dtype, threshold)
        bad_in = any(_departs(a, b, dtype, threshold) for a, b in zip(fcontrib, mcontrib))
        if bad_in and not bad_out:
            return node.index
        if bad_in:
            last = node.index
    return last if last is not None else graph.nodes[-1].index


def gradient_screen(graph, inputs, dtype):
    """A float-only score of the gradient, for the search: 64 where the float gradient
    is inf/NaN, else (float32 programs) its bits of error against the float64
    gradient."""
    from ..metrics import bits_error
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        run = graph.run(*inputs, backend=BACKEND_OF[dtype.name])
        if np.shape(run.values[graph.output_slots[0]]) != ():
            return 0.0
        _, grads = _walk(run, exact=False)
        wide = None
        if dtype == np.float32:
            w = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
            _, wide = _walk(graph.run(*w, backend="f64"), exact=False)
    score = 0.0
    for slot, g in grads.items():
        if g is None:
            continue
        g = np.asarray(g)
        if not np.all(np.isfinite(g)):
            return 64.0
        if wide is not None and wide.get(slot) is not None:
            ref = np.asarray(wide[slot])
            with np.errstate(all="ignore"):
                b = np.asarray(bits_error(g, ref.astype(np.float32), np.float32))
            b = b[np.isfinite(ref)]
            score = max(score, float(b.max()) if b.size else 0.0)
    return score
