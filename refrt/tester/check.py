"""``refrt.check``: where a program written with ``refrt.ops`` departs from its exact
value, on which line and input, and what to write instead (verified).

Flow: trace ``fn`` once; with ``Range`` inputs, search the box (``search``: sampling,
bisection on danger quantities, climbing, all screened in float); confirm the worst
candidates exactly (``evaluate``: every node in float and in mp); localize each failing
output element to its origin node and name the mechanism (``localize``); shrink the
witness and confirm it again; try the pattern table's rewrites on the witness
(``patterns``, ``rewrite``) and keep the first that makes the output clean; with
``grad=True`` do the same for the gradient (``gradients``).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import RefrtError, RefrtTypeError
from ..graph import trace
from ..registry import get
from .evaluate import evaluate
from .gradients import gradient_departures, gradient_screen
from .inputs import normalise
from .localize import classify, departure, first_bit, indices, localize, path_nodes
from .report import Finding, Report, reproducer
from .suggest import suggest
from .search import Search, quiet_trivials, screen_score, shrink, trivial_value

DEFAULT_BITS = 4.0
EXACT_FAILURES = (OverflowError, ZeroDivisionError, MemoryError, RecursionError)
GRAD_SCREENS = 120        # samples whose float gradient is screened (grad=True)
MAX_CONFIRM = 8           # candidates confirmed exactly, worst-screened first
FULL_BITS = {"float32": 32.0, "float64": 64.0}


def screen_cost(graph) -> float:
    """A deterministic estimate of the seconds one float screen takes (two graph runs:
    a per-node dispatch cost plus a per-element cost, both set generously so that the
    counts derived from it fit the budget on a loaded 2-core machine).  The search's
    evaluation counts come from it, not from the clock, so a seed gives one report."""
    return 2 * sum(150e-6 + 60e-9 * max(1, int(np.prod(n.shape))) for n in graph.nodes) + 1e-4


def _validate(budget, bits):
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise RefrtError(f"check: argument 'budget' expected a positive number of seconds, "
                         f"got {budget!r}")
    if bits is None:
        return DEFAULT_BITS
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or not bits >= 0:
        raise RefrtError(f"check: argument 'bits' expected a number of bits >= 0, got {bits!r}")
    return float(bits)


def _example(fixed, ranges):
    return [a if r is None else np.full(r.shape, trivial_value(r), dtype=r.np_dtype)
            for a, r in zip(fixed, ranges)]


def _fmt_node(node):
    return f"%{node.output} = {node.op} at {node.location}"


def _domain_text(ev, node, idx):
    spec = get(node.op)
    for arg, s in zip(spec.args, node.inputs):
        if arg.role in ("condition", "class_target"):
            continue
        ex = ev.info(s)
        f = np.asarray(ev.exact_run.values[s], dtype=object)
        if f.shape == tuple(node.shape):
            cand = [idx]
        else:
            cand = list(np.ndindex(f.shape))[:4096]
        for j in cand:
            v = f[j]
            if ex.nan[j]:
                continue
            fv = float(v) if not ex.inf[j] else (-math.inf if ex.neg[j] else math.inf)
            if not arg.domain.includes(fv):
                return f"argument '{arg.name}' = {fv:g} outside {arg.domain}"
            if node.op in ("div", "inv") and arg.name in ("y", "x") and ex.zero[j] and \
                    (node.op == "inv" or arg.name == "y"):
                return f"argument '{arg.name}' = 0 (division by zero)"
    return "undefined at these inputs (inf - inf, 0 * inf, 0 / 0 or an all -inf row)"


def forward_findings(fn, graph, ev, threshold):
    """Forward findings of one exact evaluation, one per origin node (its worst failing
    output element), keyed by the node index."""
    org = localize(ev, threshold)
    found = {}
    for out in graph.output_slots:
        f = ev.fvalue(out)
        if f.dtype.kind != "f":
            continue
        ex = ev.info(out)
        d = departure(f, ex, ev.dtype, threshold, output=True)
        if out not in org.labels:        # the program returns an input or a constant
            continue
        dom = ~np.isfinite(f) & (org.undef_labels[out] != 0)
        for idx in indices(d.mask | dom):
            full = FULL_BITS[ev.dtype.name]
            if dom[idx]:
                k, _ = first_bit(org.undef_labels[out][idx])
                node = graph.nodes[k]
                oidx = _origin_elem(org.domain_origin[k], node, idx)
                kind, canc, text = "domain", None, _domain_text(ev, node, oidx)
                bits = full
            else:
                label = org.labels[out][idx]
                if not np.isfinite(f[idx]) and org.nonfinite_labels[out][idx]:
                    label = org.nonfinite_labels[out][idx]
                k, dk = first_bit(label, d.kind[idx])
                if k < 0:
                    k, dk = next(n.index for n in graph.nodes if n.output == out), "bits"
                node = graph.nodes[k]
                dep = org.departures[k]
                oidx = _origin_elem(org.origin[k] & (dep.kind == dk), node, idx, dep.bits)
                bits = full if not np.isfinite(f[idx]) else float(d.bits[idx])
                kind, canc = classify(ev, node, oidx, dk, bits)
                text = ""
            key = k     # one finding per origin node: its worst element
            prev = found.get(key)
            if prev is None or bits > prev.bits_error:
                found[key] = Finding(
                    kind=kind, phase="forward", op=node.op, location=node.location,
                    bits_error=bits, input=tuple(ev.inputs), got=float(f[idx]),
                    want=float(ex.rounded[idx]),
                    path=tuple(_fmt_node(n) for n in path_nodes(graph, k)),
                    bits_cancelled=canc, domain=text, element=idx)
                found[key]._node = k
    return found


def _origin_elem(mask, node, idx, bits=None):
    """The origin element feeding output element ``idx``: the same index when the
    shapes agree, else the worst origin element of that kind."""
    if mask.ndim == len(idx) and mask[idx]:
        return idx
    nz = np.argwhere(mask)
    if not nz.size:
        return idx if mask.ndim == len(idx) else (0,) * mask.ndim
    if bits is not None:
        j = int(np.argmax([bits[tuple(r)] for r in nz]))
        return tuple(int(i) for i in nz[j])
    return tuple(int(i) for i in nz[0])


# ------------------------------------------------------------------------ check ----
def check(fn, *inputs, grad=False, seed=0, budget=5.0, bits=None, **params) -> Report:
    """Check ``fn`` (written with ``refrt.ops``) against its exact value; see the module
    docstring of ``refrt.tester``."""
    t0 = time.perf_counter()
    threshold = _validate(budget, bits)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise RefrtTypeError(f"check: argument 'seed' expected an integer, got {seed!r}")
    fixed, ranges, dtype = normalise(inputs)
    graph = trace(fn, *_example(fixed, ranges), **params)
    name = getattr(fn, "__name__", "fn")
    report = Report(name, bits=threshold, nodes=len(graph.nodes))
    deadline = t0 + float(budget)
    has_range = any(r is not None for r in ranges)

    if has_range:
        s = Search(graph, fixed, ranges, dtype, threshold, int(seed), deadline)
        # evaluation counts scale with the budget (deterministic for a seed); the time
        # fractions are caps for slow machines and big graphs
        span = float(budget)
        cap = t0 + 3.0 * span
        each = screen_cost(graph)
        runs = s.sample(cap, count=int(np.clip(0.3 * span / each, 50, 20000)))
        s.bisect(runs, cap, max_pairs=int(np.clip(0.1 * span / (60 * each), 4, 200)))
        s.climb(cap, steps=int(np.clip(0.15 * span / each, 40, 10000)))
        report.evaluations = s.evaluations
        flagged = [c for c in s.best(64) if c.score > threshold]
        candidates = (flagged or s.best(2))
        quiet = [c.inputs for c in s.pool if c.score <= threshold]
        typical = [quiet[i] for i in np.linspace(0, len(quiet) - 1, min(4, len(quiet))).astype(int)] \
            if quiet else []
        trivials = quiet_trivials(graph, fixed, ranges, dtype, threshold)
    else:
        s, trivials = None, None
        candidates = [type("C", (), {"inputs": fixed, "score": math.inf})()]
        rng = np.random.default_rng(seed)
        typical = [[a * rng.uniform(0.5, 2.0, a.shape).astype(a.dtype) if a.dtype.kind == "f"
                    else a for a in fixed] for _ in range(3)]

    findings = {}
    for n, cand in enumerate(candidates):
        if n and time.perf_counter() > t0 + 3 * float(budget):
            report.truncated = True
            break
        try:
            ev = evaluate(graph, cand.inputs, dtype)
        except EXACT_FAILURES as err:    # beyond what mpmath can represent (e^(e^100))
            report.skipped.append(f"{type(err).__name__}: {err}"[:200])
            continue
        report.exact_evaluations += 1
        found = forward_findings(fn, graph, ev, threshold)
        if n and not set(found) - set(findings):
            break          # the next-worst candidate adds no new origin: stop confirming
        for key, f in found.items():
            if has_range and key not in findings:
                f = _shrunk(fn, graph, f, key, ranges, dtype, threshold, deadline, report,
                            trivials)
            prev = findings.get(key)
            if prev is None or f.bits_error > prev.bits_error:
                findings[key] = f
        if n >= MAX_CONFIRM:
            break

    if grad:
        gcands = [fixed]
        if has_range:
            # the gradient can fail where the forward is fine (a masked division):
            # screen a deterministic subset of the samples by their float gradient
            pool = s.pool[:: max(1, len(s.pool) // GRAD_SCREENS)]
            scored = sorted(((gradient_screen(graph, c.inputs, dtype), k, c.inputs)
                             for k, c in enumerate(pool)), key=lambda t: (-t[0], t[1]))
            gcands = [x for sc, _, x in scored[:3] if sc > threshold] + \
                [c.inputs for c in candidates[:1]]
        for x in gcands:
            try:
                deps = gradient_departures(graph, x, dtype, threshold)
            except EXACT_FAILURES as err:
                report.skipped.append(f"gradient: {type(err).__name__}: {err}"[:200])
                continue
            for i, elem, k, dk, b, got, want in deps:
                node = graph.nodes[k]
                kind = {"bits": "accuracy", "zero": "accuracy"}.get(dk, dk)
                key = ("grad", k)
                if key not in findings or b > findings[key].bits_error:
                    f = Finding(kind=kind, phase="gradient", op=node.op,
                                location=node.location, bits_error=b, input=tuple(x),
                                got=got, want=want, path=(_fmt_node(node),),
                                element=(i,) + elem)
                    f._node = k
                    findings[key] = f
            report.exact_evaluations += 1

    for f in findings.values():
        res = suggest(graph, f, dtype, threshold, typical, grad=f.phase == "gradient")
        if res is not None:
            pat, rb = res
            f.suggestion, f.explanation, f.verified, f.rewritten_bits = \
                pat.suggestion, pat.explanation, True, rb
        f.reproducer = reproducer(fn, f.input, f.phase)
    report.findings = sorted(findings.values(), key=lambda f: (-f.bits_error, f.location))
    if s is not None:
        report.evaluations, report.truncated = s.evaluations, s.truncated
    report.seconds = time.perf_counter() - t0
    return report


def _shrunk(fn, graph, f, key, ranges, dtype, threshold, deadline, report, trivials):
    """The finding on a shrunk witness when the shrunk witness still shows it (exactly),
    else the finding as it was."""
    still = lambda x: screen_score(graph, x, dtype)[0] > threshold
    if not still(list(f.input)):
        return f
    small = shrink(graph, list(f.input), ranges, dtype, still,
                   deadline + 1.0, trivials)
    ev = evaluate(graph, small, dtype)
    report.exact_evaluations += 1
    again = forward_findings(fn, graph, ev, threshold).get(key)
    return again if again is not None else f
