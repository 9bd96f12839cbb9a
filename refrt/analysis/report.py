"""What ``refrt.analyze`` returns: one ``OpResult`` per op with a danger zone (and per op
without a transformer), as a table and as JSON."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tester.report import short_location


@dataclass
class OpResult:
    op: str
    location: str                  # the user's file:line
    status: str                    # "unsafe" | "safe" | "not analysed"
    zone: str = ""                 # the danger zone reached, in words and as an interval
    zone_interval: tuple | None = None   # (lo, hi) of the argument inside the zone
    part: str = ""                 # which part of the argument tensor reaches it
    witness: tuple | None = None   # an input (one array per input) reaching the zone
    confirmed: bool | None = None  # None: not tried; False: no witness within budget
    node: int = -1                 # index of the node in the graph
    elements: tuple = ()           # the argument's elements that reach the zone
    suggestion: str = ""           # from the tester's pattern table
    verified: bool = False         # the suggestion was verified by refrt.check on a witness
    note: str = ""
    subbox: tuple = ()             # the (low, high) per Range input confirmed on

    @property
    def verdict(self):
        if self.status != "unsafe":
            return self.status
        if self.confirmed:
            return "unsafe (confirmed)"
        if self.confirmed is False:
            return "unsafe (possible: no witness within budget)"
        return "unsafe"

    def to_dict(self):
        d = {k: v for k, v in self.__dict__.items() if k != "witness" and not k.startswith("_")}
        d["confirmed"] = None if self.confirmed is None else bool(self.confirmed)
        d["witness"] = None if self.witness is None else \
            [np.asarray(a).tolist() for a in self.witness]
        d["zone_interval"] = None if self.zone_interval is None else \
            [float(v) for v in self.zone_interval]
        d["elements"] = [list(map(int, e)) for e in self.elements]
        d["subbox"] = [list(map(float, b)) for b in self.subbox]
        d["verdict"] = self.verdict
        return d


def _fmt(v):
    v = float(v)
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"


def _describe(reached, arg, node_inputs_slot):
    idx = [tuple(int(i) for i in r) for r in np.argwhere(reached)] if reached.ndim else [()]
    labels = arg.labels
    parts = sorted({int(labels[i]) for i in idx}) if reached.ndim else [0]
    total = arg.parts()
    shown = ", ".join(str(i) if i else "()" for i in idx[:4]) + (" ..." if len(idx) > 4 else "")
    words = (f"argument %{node_inputs_slot} {tuple(arg.shape)}: {len(idx)} of {arg.size} "
             f"element(s) [{shown}] in {len(parts)} of {total} part(s)")
    return words, tuple(idx)


def _suggestions(graph):
    from ..tester import patterns as P
    out = {}
    try:
        found = P.matches(graph)
    except Exception:
        return out
    for pat, root, bind, nodes in found:
        for n in nodes.get("_all", []):
            out.setdefault(n.index, pat.suggestion)
    return out


def results_of(an):
    """One OpResult per node with a danger zone, and per node that was not analysed."""
    graph = an.graph
    sugg = _suggestions(graph)
    by_node = {}
    for node, zone, reached, arg in an.findings:
        by_node.setdefault(node.index, []).append((zone, reached, arg))
    results = []
    skipped = {n.index for n in an.not_analysed}
    for node in graph.nodes:
        if node.index in skipped:
            results.append(OpResult(node.op, node.location, "not analysed", node=node.index,
                                    note="no abstract transformer: the output is unbounded"))
            continue
        if node.index not in by_node:
            continue
        hit = [(z, r, a) for z, r, a in by_node[node.index] if np.any(r)]
        if not hit:
            zs = "; ".join(f"{z.arg} outside {z.interval()}" for z, _, _ in by_node[node.index])
            upstream_nan = any(np.any(a.nan) for _, _, a in by_node[node.index])
            results.append(OpResult(node.op, node.location, "safe", zone=f"never reached: {zs}",
                                    node=node.index,
                                    note="an input may be NaN (from an alarm upstream)"
                                    if upstream_nan else ""))
            continue
        zone, reached, arg = hit[0]
        r = np.broadcast_to(reached, arg.shape)
        slot = node.inputs[_arg_index(node.op, zone.arg)]
        part, elems = _describe(r, arg, slot)
        lo = float(np.min(arg.lo[r])) if r.ndim else float(arg.lo)
        hi = float(np.max(arg.hi[r])) if r.ndim else float(arg.hi)
        zi = zone.meet(lo, hi)
        results.append(OpResult(node.op, node.location, "unsafe",
                                zone=f"{zone.words}: {zone.interval()}; reached on "
                                f"[{_fmt(zi[0])}, {_fmt(zi[1])}]",
                                zone_interval=zi, part=part, node=node.index, elements=elems,
                                suggestion=sugg.get(node.index, "")))
        results[-1]._zone = zone
    return results


def _arg_index(op, name):
    from ..registry import get
    return get(op).arg_names.index(name)


@dataclass
class AnalysisReport:
    function: str
    results: list
    analysis: object = field(repr=False)
    partition: str = "auto"
    relations: str = "affine"
    dtype: str = "float32"
    seconds: float = 0.0
    seconds_total: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(r.status == "unsafe" for r in self.results)

    @property
    def unsafe(self):
        return [r for r in self.results if r.status == "unsafe"]

    @property
    def safe(self):
        return [r for r in self.results if r.status == "safe"]

    @property
    def not_analysed(self):
        return [r for r in self.results if r.status == "not analysed"]

    @property
    def confirmed(self):
        return [r for r in self.results if r.status == "unsafe" and r.confirmed]

    @property
    def output_range(self):
        g = self.analysis.graph
        outs = []
        for s in g.output_slots:
            t = self.analysis.values[s]
            lo, hi = t.lo.astype(np.float64), t.hi.astype(np.float64)
            outs.append((float(lo), float(hi)) if lo.ndim == 0 else (lo, hi))
        return outs[0] if g.single_output else tuple(outs)

    def parts(self):
        """Total number of abstract elements (parts) over all values of the graph."""
        return sum(t.parts() for t in self.analysis.values if t is not None)

    def to_dict(self):
        rng = self.output_range

        def conv(r):
            lo, hi = r
            return [np.asarray(lo).tolist(), np.asarray(hi).tolist()]
        return {"function": self.function, "ok": self.ok, "dtype": self.dtype,
                "partition": self.partition, "relations": self.relations,
                "seconds": self.seconds, "seconds_total": self.seconds_total,
                "parts": self.parts(), "symbols": len(self.analysis.sym),
                "output_range": conv(rng) if isinstance(rng[0], (float, np.ndarray))
                and len(rng) == 2 and not isinstance(rng[0], tuple) else [conv(r) for r in rng],
                "results": [r.to_dict() for r in self.results]}

    def __str__(self):
        n_u, n_s, n_n = len(self.unsafe), len(self.safe), len(self.not_analysed)
        head = (f"refrt.analyze({self.function}) [{self.dtype}, partition={self.partition}, "
                f"relations={self.relations}]: {n_u} unsafe, {n_s} proved safe"
                + (f", {n_n} not analysed" if n_n else "") + f" ({self.seconds:.2f} s)")
        rows = [("status", "where", "op", "zone / part", "witness")]
        for r in self.results:
            zone = r.zone + (f"\n{r.part}" if r.part else "")
            if r.suggestion and r.status == "unsafe":
                zone += f"\nuse instead: {r.suggestion}" + \
                    (" (verified by refrt.check)" if r.verified else " (pattern table)")
            if r.note:
                zone += f"\n{r.note}"
            wit = "-"
            if r.status == "unsafe":
                wit = _witness_text(r)
            rows.append((r.verdict, short_location(r.location), r.op, zone, wit))
        widths = [max(max(len(x) for x in str(row[i]).split("\n")) for row in rows)
                  for i in range(len(rows[0]))]
        widths[3] = min(widths[3], 90)
        lines = [head]
        for k, row in enumerate(rows):
            cells = [str(c).split("\n") for c in row]
            h = max(len(c) for c in cells)
            for j in range(h):
                lines.append("  ".join((c[j] if j < len(c) else "").ljust(w)
                                       for c, w in zip(cells, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        rng = self.output_range
        if not self.analysis.graph.single_output:
            rng = rng[0]
        lo, hi = rng
        if np.ndim(lo) == 0:
            lines.append(f"output range: [{_fmt(lo)}, {_fmt(hi)}]")
        else:
            lines.append(f"output range: [{_fmt(np.min(lo))}, {_fmt(np.max(hi))}] over "
                         f"{np.size(lo)} elements")
        return "\n".join(lines)


def _witness_text(r):
    if r.witness is None:
        return "none within budget" if r.confirmed is False else "-"
    parts = []
    for a in r.witness:
        a = np.asarray(a)
        if a.size > 1 and np.all(a == a.ravel()[0]):
            parts.append(f"full({a.shape}, {_fmt(a.ravel()[0])})")
        elif a.size <= 4:
            parts.append(np.array2string(a.ravel(), precision=4, separator=","))
        else:
            parts.append(f"{a.shape} in [{_fmt(a.min())}, {_fmt(a.max())}]")
    return "; ".join(parts)
