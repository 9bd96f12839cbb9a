"""Per-node and per-layer float error of a graph against its own mp evaluation.

``node_report(graph, *inputs, backend="f32")`` runs the graph once on the float kernels
and once on the mp formulas (``prec`` bits, the same inputs converted exactly) and, for
every node, compares the float value with the mp value rounded to the float dtype:
``max_ulp`` (largest ulp distance of any element) and ``rel`` (max |float - exact| /
max |exact|, normwise).  The float run feeds each node its own float inputs, so a node's
figure is the error *accumulated* up to it, which is what the user observes.
``layer_report`` keeps, per consecutive module path (``graph.layers``), the layer's last
node (its output).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import ulp_distance
from ..rounding import round_array


@dataclass
class NodeError:
    index: int
    op: str
    layer: str
    location: str
    shape: tuple
    max_ulp: float
    rel: float

    def __str__(self):
        return (f"%{self.index:<3} {self.op:<16} {self.layer or '-':<20} {self.max_ulp:>8.1f} ulp  "
                f"rel {self.rel:.1e}  at {self.location}")


def node_report(graph, *inputs, backend="f32", prec=256):
    """A ``NodeError`` per float node of ``graph`` on ``inputs`` (see the module doc)."""
    if backend not in ("f32", "f64"):
        raise ValueError(f"node_report: argument 'backend' expected 'f32' or 'f64', got "
                         f"{backend!r}")
    dtype = np.dtype(np.float32 if backend == "f32" else np.float64)
    # both runs start from the same float inputs (rounded to the dtype once), so the
    # figures are the float arithmetic's error, not the inputs' representation error
    inputs = [np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else a for a in inputs]
    fl = graph.run(*inputs, backend=backend)
    ex = graph.run(*inputs, backend="mp", prec=prec)
    layers = getattr(graph, "layers", None) or [""] * len(graph.nodes)
    rows = []
    for node, layer in zip(graph.nodes, layers):
        got = np.asarray(fl.values[node.output])
        if got.dtype.kind != "f":
            continue
        want = round_array(np.asarray(ex.values[node.output], dtype=object), dtype)
        want = want.reshape(got.shape)
        if got.size == 0:
            ulp, rel = 0.0, 0.0
        else:
            ulp = float(np.max(ulp_distance(got, want, dtype)))
            w = np.asarray(ex.values[node.output], dtype=object).reshape(got.shape)
            fin = np.isfinite(want)
            scale = float(np.max(np.abs(want[fin]))) if fin.any() else 0.0
            with np.errstate(all="ignore"):
                err = np.abs(np.array([float(a) - b for a, b in
                                       zip(got[fin].astype(np.float64).tolist(),
                                           w[fin].tolist())], dtype=np.float64))
            rel = float(err.max() / scale) if err.size and scale > 0 else (
                0.0 if not err.size or not err.max() else float("inf"))
        rows.append(NodeError(node.index, node.op, layer, node.location, tuple(node.shape),
                              ulp, rel))
    return rows


def layer_report(graph, *inputs, backend="f32", prec=256):
    """``node_report`` reduced to each layer's output: for every run of consecutive nodes
    with the same module path, the last node's error (and the worst node's ulp)."""
    rows = node_report(graph, *inputs, backend=backend, prec=prec)
    out = []
    for r in rows:
        if out and out[-1][0].layer == r.layer:
            last, worst = out[-1]
            out[-1] = (r, max(worst, r.max_ulp))
        else:
            out.append((r, r.max_ulp))
    return [(r.layer or "<top>", r, worst) for r, worst in out]
