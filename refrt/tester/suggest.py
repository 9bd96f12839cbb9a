"""Suggestions, verified: the pattern table's rewrites (``patterns``) tried on a
finding's witness, first one at a time in table order, then all same-semantics rewrites
on the finding's path together (a loss with two unstable terms needs both fixed).  A
rewrite is printed only when the rewritten program is clean on the witness; a guarded
rewrite (an eps, a clip, a guard) must also agree with the program on typical inputs,
and with its limit at a removable singularity (so safe_div is never offered for
(exp(x) - 1) / x at 0)."""
from __future__ import annotations

import numpy as np

from ..metrics import bits_error
from . import patterns as P
from .evaluate import evaluate
from .gradients import gradient_departures
from .localize import departure, path_nodes
from .rewrite import Builder


def _output_clean(graph, inputs, dtype, threshold, element):
    """Whether the output element ``element`` is clean (no departure, not NaN/inf where
    the exact value is undefined), its bits of error, and the exact output."""
    ev = evaluate(graph, inputs, dtype)
    out = graph.output_slots[0]
    f, ex = ev.fvalue(out), ev.info(out)
    d = departure(f, ex, dtype, threshold, output=True)
    bad = d.mask | (~np.isfinite(f) & ex.nan)
    if np.ndim(f) != len(element):
        element = ()
    sel = (lambda a: a[element]) if element else (lambda a: a)
    with np.errstate(all="ignore"):
        bits = float(np.max(sel(d.bits))) if np.size(sel(d.bits)) else 0.0
    return not np.any(sel(bad)), bits, ex


def _f64(graph, inputs):
    wide = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    with np.errstate(all="ignore"):
        out = graph.run(*wide, backend="f64").outputs
    return np.asarray(out[0] if isinstance(out, tuple) else out, dtype=np.float64)


def _agrees(g_old, g_new, inputs, dtype, threshold):
    """The rewrite computes (in float64, on an input where the program is well-behaved)
    what the program computes, to within the bits threshold in the program's dtype."""
    from ..metrics import bits_error
    a, b = _f64(g_old, inputs), _f64(g_new, inputs)
    ok = np.isfinite(a)
    with np.errstate(all="ignore"):
        d = np.asarray(bits_error(b.astype(dtype), a.astype(dtype), dtype))
    return not np.any(ok & (d > threshold))


def _limit(graph, finding, dtype, threshold):
    """The program's exact value at the witness approached from both sides (every float
    input moved 4 ulps up, then down), when both sides agree: the removable
    singularity's value.  None when the sides differ or are undefined."""
    sides = []
    for direction in (np.inf, -np.inf):
        x = []
        for a in finding.input:
            a = np.asarray(a)
            if a.dtype.kind == "f":
                for _ in range(4):
                    a = np.nextafter(a, a.dtype.type(direction))
            x.append(a)
        ex = evaluate(graph, x, dtype).info(graph.output_slots[0])
        v = ex.rounded[finding.element] if np.ndim(ex.rounded) == len(finding.element) \
            else ex.rounded
        if np.any(ex.nan) or not np.all(np.isfinite(v)):
            return None
        sides.append(np.asarray(v, dtype=dtype))
    from ..metrics import bits_error
    if np.any(np.asarray(bits_error(sides[0], sides[1], dtype)) > threshold):
        return None
    return sides[0]


def _on_path(graph, finding):
    return {n.output for n in path_nodes(graph, finding._node)} | \
        {graph.nodes[finding._node].output}


def _clean(g2, finding, dtype, threshold, grad):
    if grad:
        return not gradient_departures(g2, finding.input, dtype, threshold), 0.0, None
    return _output_clean(g2, finding.input, dtype, threshold, finding.element)


def _combined(graph, finding, dtype, threshold, found, grad):
    """All same-semantics rewrites on the path, applied together (non-overlapping)."""
    chosen, used = [], set()
    for pat, root, bind, nodes in found:
        ids = {id(n) for n in nodes.get("_all", [])}
        if pat.semantics != "same" or ids & used:
            continue
        chosen.append((pat, root, bind, nodes))
        used |= ids
    if len(chosen) < 2:
        return None
    b = Builder(graph, chosen[0][1])
    for pat, root, bind, nodes in chosen:
        b.set_anchor(root)
        b.replace(root.output, pat.rewrite(b, bind, nodes))
    g2 = b.build()
    clean, bits, _ = _clean(g2, finding, dtype, threshold, grad)
    if not clean:
        return None
    merged = P.Pattern("+".join(p.name for p, *_ in chosen), (), None,
                       "; ".join(p.suggestion for p, *_ in chosen),
                       " / ".join(p.explanation for p, *_ in chosen))
    return merged, bits


def suggest(graph, finding, dtype, threshold, typical=(), grad=False):
    """(pattern, rewritten bits) of the first pattern on the finding's path whose rewrite
    makes the witness clean, else the combination of the path's same-semantics
    rewrites, else None.  A guarded rewrite must also agree with the program on
    ``typical`` inputs, and with the limit at a removable singularity."""
    on_path = _on_path(graph, finding)
    base_ex = None
    limit = "unknown"
    found = [m for m in P.matches(graph)
             if {n.output for n in m[3].get("_all", [])} & on_path and m[0].answers(finding)]
    for pat, root, bind, nodes in found:
        try:
            b = Builder(graph, root)
            new = pat.rewrite(b, bind, nodes)
            g2 = b.build(root.output, new)
            clean, bits, ex2 = _clean(g2, finding, dtype, threshold, grad)
        except Exception:
            continue
        if not clean:
            continue
        if grad:
            return pat, bits
        if pat.semantics == "guarded":
            el = finding.element if np.ndim(ex2.rounded) == len(finding.element) else ()
            if finding.kind == "domain":
                if isinstance(limit, str):
                    limit = _limit(graph, finding, dtype, threshold)
                ref = limit
            else:
                if base_ex is None:
                    base_ex = evaluate(graph, finding.input, dtype).info(graph.output_slots[0])
                ref = base_ex.rounded[el] if el else base_ex.rounded
            if ref is not None:
                with np.errstate(all="ignore"):
                    drift = np.asarray(bits_error(ex2.rounded[el] if el else ex2.rounded,
                                                  ref, dtype))
                if np.any(drift > threshold):
                    continue
            if not all(_agrees(graph, g2, x, dtype, threshold) for x in typical):
                continue
        return pat, bits
    try:
        return _combined(graph, finding, dtype, threshold, found, grad)
    except Exception:
        return None


