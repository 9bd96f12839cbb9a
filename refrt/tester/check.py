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
        if arg.role in ("condition", "class_target", "index"):
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
    docstring and docs/tester.md."""
    t0 = time.perf_counter()
    threshold = _validate(budget, bits)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise RefrtTypeError(f"check: argument 'seed' expected an integer, got {seed!r}")
    fixed, ranges, dtype = normalise(inputs)
    graph = trace(fn, *_example(fixed, ranges), **params)
    report = Report(getattr(fn, "__name__", "fn"), bits=threshold, nodes=len(graph.nodes))
    # the clock is only a cap: the counts below decide what is evaluated
    cap = t0 + 3.0 * float(budget)
    if any(r is not None for r in ranges):
        search = _search(graph, fixed, ranges, dtype, threshold, int(seed), float(budget), cap)
        candidates = [c.inputs for c in search.best(64) if c.score > threshold] or \
            [c.inputs for c in search.best(2)]
        quiet = [c.inputs for c in search.pool if c.score <= threshold]
        typical = [quiet[i] for i in np.linspace(0, len(quiet) - 1, min(4, len(quiet))).astype(int)] \
            if quiet else []
        trivials = quiet_trivials(graph, fixed, ranges, dtype, threshold)
    else:
        search, trivials, candidates = None, None, [fixed]
        rng = np.random.default_rng(seed)
        typical = [[a * rng.uniform(0.5, 2.0, a.shape).astype(a.dtype) if a.dtype.kind == "f"
                    else a for a in fixed] for _ in range(3)]
    shrink_to = (ranges, trivials) if search is not None else None
    findings = _confirm(fn, graph, candidates, dtype, threshold, report, cap, shrink_to)
    if grad:
        gcands = _gradient_candidates(graph, search, candidates, dtype, threshold) \
            if search is not None else [fixed]
        findings.update(_gradient_findings(graph, gcands, dtype, threshold, report))
    for f in findings.values():
        res = suggest(graph, f, dtype, threshold, typical, grad=f.phase == "gradient")
        if res is not None:
            pat, rb = res
            f.suggestion, f.explanation, f.verified, f.rewritten_bits = \
                pat.suggestion, pat.explanation, True, rb
        f.reproducer = reproducer(fn, f.input, f.phase)
    report.findings = sorted(findings.values(), key=lambda f: (-f.bits_error, f.location))
    if search is not None:
        report.evaluations = search.evaluations
        report.truncated |= search.truncated
    report.seconds = time.perf_counter() - t0
    return report


def _search(graph, fixed, ranges, dtype, threshold, seed, span, cap):
    """Sample, bisect and climb, with evaluation counts from ``screen_cost`` and the
    budget (deterministic for a seed); ``cap`` is the wall-clock limit."""
    s = Search(graph, fixed, ranges, dtype, threshold, seed, cap)
    each = screen_cost(graph)
    runs = s.sample(cap, count=int(np.clip(0.3 * span / each, 50, 20000)))
    s.bisect(runs, cap, max_pairs=int(np.clip(0.1 * span / (60 * each), 4, 200)))
    s.climb(cap, steps=int(np.clip(0.15 * span / each, 40, 10000)))
    return s


def _exact(graph, inputs, dtype, report):
    """The exact evaluation of one candidate, or None (listed in ``report.skipped``) when
    mpmath cannot represent it (e^(e^100))."""
    try:
        ev = evaluate(graph, inputs, dtype)
    except EXACT_FAILURES as err:
        report.skipped.append(f"{type(err).__name__}: {err}"[:200])
        return None
    report.exact_evaluations += 1
    return ev


def _confirm(fn, graph, candidates, dtype, threshold, report, cap, shrink_to):
    """Forward findings of the candidates, worst-screened first, until one adds no new
    origin (at most MAX_CONFIRM); each new finding's witness is shrunk."""
    findings = {}
    for n, inputs in enumerate(candidates[:MAX_CONFIRM]):
        if n and time.perf_counter() > cap:
            report.truncated = True
            break
        ev = _exact(graph, inputs, dtype, report)
        if ev is None:
            continue
        found = forward_findings(fn, graph, ev, threshold)
        if n and not set(found) - set(findings):
            break
        for key, f in found.items():
            if shrink_to is not None and key not in findings:
                f = _shrunk(fn, graph, f, key, *shrink_to, dtype, threshold, cap, report)
            prev = findings.get(key)
            if prev is None or f.bits_error > prev.bits_error:
                findings[key] = f
    return findings


def _gradient_candidates(graph, search, candidates, dtype, threshold):
    """The gradient can fail where the forward is fine (a masked division): the samples
    whose float gradient screens worst (a deterministic subset), plus the worst forward
    candidate."""
    pool = search.pool[:: max(1, len(search.pool) // GRAD_SCREENS)]
    scored = sorted(((gradient_screen(graph, c.inputs, dtype), k, c.inputs)
                     for k, c in enumerate(pool)), key=lambda t: (-t[0], t[1]))
    return [x for sc, _, x in scored[:3] if sc > threshold] + candidates[:1]


def _gradient_findings(graph, candidates, dtype, threshold, report):
    findings = {}
    for x in candidates:
        try:
            deps = gradient_departures(graph, x, dtype, threshold)
        except EXACT_FAILURES as err:
            report.skipped.append(f"gradient: {type(err).__name__}: {err}"[:200])
            continue
        report.exact_evaluations += 1
        for i, elem, k, dk, b, got, want in deps:
            node = graph.nodes[k]
            key = ("grad", k)
            if key in findings and b <= findings[key].bits_error:
                continue
            f = Finding(kind={"bits": "accuracy", "zero": "accuracy"}.get(dk, dk),
                        phase="gradient", op=node.op, location=node.location, bits_error=b,
                        input=tuple(x), got=got, want=want, path=(_fmt_node(node),),
                        element=(i,) + elem)
            f._node = k
            findings[key] = f
    return findings


def _shrunk(fn, graph, f, key, ranges, trivials, dtype, threshold, cap, report):
    """The finding on a shrunk witness when the shrunk witness still shows it (exactly),
    else the finding as it was."""
    def still(x):
        return screen_score(graph, x, dtype)[0] > threshold
    if not still(list(f.input)):
        return f
    small = shrink(graph, list(f.input), ranges, dtype, still, cap, trivials)
    ev = _exact(graph, small, dtype, report)
    again = forward_findings(fn, graph, ev, threshold).get(key) if ev is not None else None
    return again if again is not None else f
