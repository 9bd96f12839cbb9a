"""Kept for now: the per-node report of a user's loss (``node_report``) and the old
four-label ``classify`` it and ``refrt.bugzoo`` use.  ``refrt.check`` replaces both;
the campaign's classes are ``refrt.difftest.classes``."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..metrics import bits_error
from ..registry import OPS

LOST_BITS = 4.0   # more than 4 bits (15 ulp) of error is reported as a loss
CLASSES = ("overflow", "underflow", "NaN", "bits lost")


def classify(got, want, bits) -> np.ndarray:
    """Per-element failure class ('' where the element is fine)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    out = np.full(got.shape, "", dtype=object)
    defined = ~np.isnan(want)
    out[np.isnan(got) & defined] = "NaN"
    out[np.isinf(got) & np.isfinite(want)] = "overflow"   # +-inf, incl. log of an underflowed 0
    out[(got == 0) & (want != 0) & np.isfinite(want)] = "underflow"
    lost = (out == "") & defined & (bits > LOST_BITS)
    out[lost] = "bits lost"
    return out


# ------------------------------------------------------- per node of a user's loss ----
@dataclass
class NodeFinding:
    node: object               # refrt.graph.Node
    max_bits: float            # float value of the node vs its exact value
    classes: Counter
    origin: bool               # departs while every input of the node is accurate
    alternative: str = ""

    def __str__(self):
        cls = ", ".join(f"{n} {c}" for c, n in self.classes.items()) or "accurate"
        mark = "  <- origin" if self.origin else ""
        alt = f"  (use instead: {self.alternative})" if self.alternative else ""
        return (f"{self.node.location}: %{self.node.output} = {self.node.op}: "
                f"{self.max_bits:.1f} bits, {cls}{mark}{alt}")


def node_report(fn, *inputs, prec=512, **params):
    """Trace ``fn`` (written with ``refrt.ops``), evaluate it in the inputs' float dtype and
    exactly (mp at ``prec`` bits from the same float inputs), and report each node's
    departure from its exact value.  The *origin* of a failure is the first node that
    departs while all its inputs are still accurate: that is the line to change, and the
    registry's stable alternative of that node's op (or of the consumer that turns the
    departure into inf/NaN) is suggested."""
    from ..graph import trace
    from ..rounding import round_array
    graph = trace(fn, *inputs, **params)
    floats = [np.asarray(a).dtype for a in inputs if np.asarray(a).dtype.kind == "f"]
    dt = np.dtype(np.float32) if floats and all(d == np.float32 for d in floats) else np.dtype(np.float64)
    fr = graph.run(*inputs, backend={"float32": "f32", "float64": "f64"}[dt.name])
    mr = graph.run(*inputs, backend="mp", prec=prec)
    bad_slots, report = set(), []
    for node in graph.nodes:
        got = np.asarray(fr.values[node.output], dtype=dt)
        want = round_array(mr.values[node.output], dt)
        bits = np.where(np.isnan(want) & np.isnan(got), 0.0, bits_error(got, want, dt))
        cls = classify(got, want, bits)
        counts = Counter(c for c in np.ravel(cls) if c)
        departs = bool(counts)
        origin = departs and not any(s in bad_slots for s in node.inputs)
        if departs:
            bad_slots.add(node.output)
        alt = OPS[node.op].stable_alternative if departs else ""
        report.append(NodeFinding(node, float(np.max(bits)) if bits.size else 0.0, counts,
                                  origin, alt))
    # the consumer of an origin that turns it into inf/NaN often names the stable pattern
    for i, f in enumerate(report):
        if f.origin and not f.alternative:
            for later in report[i + 1:]:
                if f.node.output in later.node.inputs and later.alternative:
                    f.alternative = later.alternative
                    break
    return report
