"""Every alarm confirmed or qualified.

For an unsafe op: (1) bisect the ``Range`` inputs, re-running the analysis on each half
and keeping a half where the op still reaches its danger zone (the region the analysis
blames, at most ``DEPTH`` halvings); (2) try the sub-box's corners and midpoint in float;
(3) uniform random draws in the sub-box; (4) else run the dynamic tester ``refrt.check``
on the sub-box, then on the whole box, and test the inputs of its findings.  An input is a witness when, evaluated in float in the analysed dtype, the op's
argument lies in the zone (for log, sqrt, div, inv, exp the op's float output is then
NaN or +-inf).  The result is
"confirmed" with the witness, or "possible: no witness within budget".
"""
from __future__ import annotations

import itertools
import time

import numpy as np

from .. import ops
from ..graph import Graph
from ..registry import get
from ..tester.inputs import Range

DEPTH = 10
MAX_CORNER_INPUTS = 4
RANDOM_DRAWS = 64


def replay(graph):
    """A function with refrt.ops calls that records ``graph`` again (same node order), for
    the tester when the user gave a Graph."""
    def fn(*xs):
        vals = {}
        for s, x in zip(graph.input_slots, xs):
            vals[s] = x
        for s, c in graph.constants.items():
            vals[s] = c
        for node in graph.nodes:
            vals[node.output] = getattr(ops, node.op)(*[vals[s] for s in node.inputs],
                                                      **node.params)
        outs = [vals[s] for s in graph.output_slots]
        return outs[0] if graph.single_output else tuple(outs)
    fn.__name__ = graph.name
    return fn


def hits(graph, node_index, zone, inputs, dtype):
    """The argument's elements in the zone, evaluated in float at ``inputs`` (or None)."""
    backend = "f32" if np.dtype(dtype) == np.float32 else "f64"
    arrays = [np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
              for a in inputs]
    try:
        with np.errstate(all="ignore"):
            run = graph.run(*arrays, backend=backend)
    except Exception:
        return None
    node = graph.nodes[node_index]
    k = get(node.op).arg_names.index(zone.arg)
    arg = np.asarray(run.values[node.inputs[k]], np.float64)
    m = zone.contains(arg) & ~np.isnan(arg)
    return m if np.any(m) else None


def _boxes(ranges, dtype):
    fmax = float(np.finfo(dtype).max)
    out = []
    for r in ranges:
        if isinstance(r, Range):
            lo, hi = (float(b) for b in r.bounds())
            out.append([max(lo, -fmax), min(hi, fmax)])
        else:
            out.append(None)
    return out


def _abstract_of(boxes, abstract):
    res = []
    for b, (lo, hi, pt) in zip(boxes, abstract):
        if b is None:
            res.append((lo, hi, pt))
        else:
            res.append((np.full(np.shape(lo), b[0]), np.full(np.shape(lo), b[1]), None))
    return res


def _still_unsafe(graph, boxes, abstract, dtype, partition, relations, node_index, zone):
    from .analyze import run_analysis
    an = run_analysis(graph, _abstract_of(boxes, abstract), dtype, partition, relations)
    for node, z, reached, _ in an.findings:
        if node.index == node_index and z == zone and np.any(reached):
            return True
    return False


def _split(b, dtype):
    lo, hi = b
    mid = 0.5 * lo + 0.5 * hi
    if lo < 0 < hi and (hi - lo) > 1:
        mid = 0.0
    mid = float(np.asarray(mid, dtype))
    if not lo < mid < hi:
        mid = float(np.nextafter(np.asarray(lo, dtype), np.asarray(hi, dtype)))
        if not mid < hi:
            return None
    return [lo, mid], [mid, hi]


def subbox(graph, boxes, abstract, dtype, partition, relations, node_index, zone, deadline):
    boxes = [None if b is None else list(b) for b in boxes]
    for _ in range(DEPTH):
        if time.perf_counter() > deadline:
            break
        widths = [(b[1] - b[0]) if b is not None else -1.0 for b in boxes]
        i = int(np.argmax(widths))
        if widths[i] <= 0:
            break
        halves = _split(boxes[i], dtype)
        if halves is None:
            break
        kept = None
        for h in halves:
            trial = list(boxes)
            trial[i] = h
            if _still_unsafe(graph, trial, abstract, dtype, partition, relations,
                             node_index, zone):
                kept = trial
                break
        if kept is None:
            break
        boxes = kept
    return boxes


def _corner_inputs(boxes, abstract, dtype):
    choices = []
    for b, (lo, hi, pt) in zip(boxes, abstract):
        if b is None:
            choices.append([pt])
            continue
        vals = [b[0], b[1], 0.5 * b[0] + 0.5 * b[1]]
        if b[0] <= 0 <= b[1]:
            vals.insert(0, 0.0)
        choices.append([np.full(np.shape(lo), v, dtype) for v in dict.fromkeys(vals)])
    ranged = sum(1 for b in boxes if b is not None)
    if ranged > MAX_CORNER_INPUTS:
        choices = [c[:1] if b is not None else c for c, b in zip(choices, boxes)]
    return itertools.product(*choices)


def _random_witness(graph, node_index, zone, boxes, abstract, dtype, seed, n=RANDOM_DRAWS):
    """Uniform draws in the sub-box (each element independently), in float."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = [pt if b is None else rng.uniform(b[0], b[1], np.shape(lo)).astype(dtype)
             for b, (lo, hi, pt) in zip(boxes, abstract)]
        x = [a if b is None else np.clip(a, np.asarray(b[0], dtype), np.asarray(b[1], dtype))
             for a, b in zip(x, boxes)]
        if hits(graph, node_index, zone, x, dtype) is not None:
            return x
    return None


def _tester_witness(check, fn, graph, r, zone, boxes, abstract, dtype, seed, budget):
    """refrt.check on the box; the first finding whose input is a witness."""
    sub = [Range(b[0], b[1], np.shape(lo), np.dtype(dtype).name) if b is not None
           else pt for b, (lo, hi, pt) in zip(boxes, abstract)]
    try:
        rep = check(fn, *sub, seed=seed, budget=budget)
    except Exception as err:    # the tester could not run this program
        r.note = f"tester: {err}"
        return None
    for f in rep.findings:
        if hits(graph, r.node, zone, f.input, dtype) is not None:
            if f.suggestion:
                r.suggestion, r.verified = f.suggestion, bool(f.verified)
            return f.input
    return None


def _verify_suggestion(check, fn, r, witness, seed, budget):
    """The tester on the witness itself: its verified rewrite, when it has one."""
    try:
        rep = check(fn, *[np.asarray(a) for a in witness], seed=seed, budget=budget)
    except Exception:
        return
    for f in rep.findings:
        if f.suggestion and f.verified:
            r.suggestion, r.verified = f.suggestion, True
            return


def confirm_all(report, fn_or_graph, graph, input_ranges, ranges, abstract, weights, dtype,
                partition, relations, budget=1.0, seed=0, params=None):
    from ..tester import check
    fn = replay(graph) if isinstance(fn_or_graph, Graph) or params else fn_or_graph
    boxes0 = _boxes(ranges, dtype)
    for r in report.unsafe:
        zone = getattr(r, "_zone", None)
        if zone is None:
            continue
        deadline = time.perf_counter() + budget
        boxes = subbox(graph, boxes0, abstract, dtype, partition, relations, r.node, zone,
                       deadline)
        r.subbox = tuple(tuple(b) for b in boxes if b is not None)
        found = None
        for x in _corner_inputs(boxes, abstract, dtype):
            if hits(graph, r.node, zone, x, dtype) is not None:
                found = x
                break
        if found is None:
            found = _random_witness(graph, r.node, zone, boxes, abstract, dtype, seed)
        for bxs in ([boxes, boxes0] if boxes != boxes0 else [boxes]):
            if found is not None or not any(b is not None for b in bxs):
                break
            found = _tester_witness(check, fn, graph, r, zone, bxs, abstract, dtype, seed,
                                    budget / 2)
        if found is not None and not r.verified:
            _verify_suggestion(check, fn, r, found, seed, budget / 2)
        if found is not None:
            m = hits(graph, r.node, zone, found, dtype)
            r.witness = tuple(np.asarray(a) for a in found)
            r.confirmed = True
            el = [tuple(int(i) for i in e) for e in np.argwhere(m)][:4] if m.ndim else [()]
            r.note = (f"confirmed: on this witness the argument is in the zone at "
                      f"{', '.join(map(str, el))}" + (" ..." if m.ndim and m.sum() > 4 else ""))
        else:
            r.confirmed = False
            r.note = "possible: no witness within budget"
