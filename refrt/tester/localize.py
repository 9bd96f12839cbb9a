"""Detectors and localization (Herbie's local error, per element).

A node's element *departs* when its float value leaves its exact real value: NaN where
the exact value is defined, +-inf where it is finite (judged against the real value, so
exp(1000) = inf departs: that is where an overflow starts), the wrong infinity, 0 where
it is nonzero, or more than ``bits`` bits of error (log2(1 + ulps) against the exact
value rounded once).  At the program's *output* only what the user observes counts: an
exact value beyond the format's range that rounds to +-inf, or below it that rounds to
0, is correct rounding.

Each departing element carries the set of *origins* upstream of it (a bit per node).  An
element is an origin when it departs while every input element it depends on is
accurate; otherwise it inherits its inputs' origins.  A value that stops departing (a
masked-out inf, an exact cancellation of two equal errors) drops them, so intermediate
departures that never reach the output are never blamed.  The same propagation runs
for *undefined* exact values (NaN, or a pole such as log(0) or 1/0 from finite exact
inputs): the origin of a ``domain`` finding is the node that left its domain.

Dependencies (which input elements an output element reads) are data: ``DEPENDENCY``
maps each shape rule or op to a rule; anything unlisted depends on everything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import bits_error
from ..registry import _shapes, get

ADDITIVE = ("add", "sub", "sum", "mean", "reduce_sum", "reduce_mean", "row_mean")
LOCALLY_EXACT_BITS = 1.0     # a node within 1 ulp of its exact value on its float inputs


# ------------------------------------------------------------------ dependencies ----
def indices(mask):
    """The index tuples where ``mask`` is True (``()`` for a true 0-d mask)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 0:
        return [()] if mask else []
    return [tuple(int(i) for i in t) for t in zip(*np.nonzero(mask))]


def _or_reduce(labels, axis, keepdims=False):
    if labels.size == 0:
        shape = list(labels.shape)
        if axis is None:
            return np.zeros((), dtype=object)
        if keepdims:
            shape[axis] = 1
        else:
            del shape[axis]
        return np.zeros(shape, dtype=object)
    return np.asarray(np.bitwise_or.reduce(labels, axis=axis, keepdims=keepdims), dtype=object)


def _all(node, k, lab):
    return np.full(node.shape, _or_reduce(lab.ravel(), 0) if lab.size else 0, dtype=object)


def _elementwise(node, k, lab):
    return lab.reshape(node.shape) if lab.shape == tuple(node.shape) else _all(node, k, lab)


def _reduction(node, k, lab):
    axis = node._full_any.get("axis")
    if axis is None or lab.ndim == 0:
        return _all(node, k, lab)
    return _or_reduce(lab, axis % lab.ndim).reshape(node.shape)


def _along_axis(node, k, lab):
    axis = node._full_any.get("axis", -1) % max(lab.ndim, 1)
    if lab.ndim == 0:
        return _all(node, k, lab)
    return np.broadcast_to(_or_reduce(lab, axis, keepdims=True), node.shape).copy()


def _layer_norm(node, k, lab):
    if k == 0:
        return _along_axis_last(node, lab)
    return np.broadcast_to(lab, node.shape).copy()


def _along_axis_last(node, lab):
    return np.broadcast_to(_or_reduce(lab, lab.ndim - 1, keepdims=True), node.shape).copy()


def _matmul(node, k, lab):
    if lab.ndim != 2 or len(node.shape) != 2:
        return _all(node, k, lab)
    if node.op == "matmul":
        rows = _or_reduce(lab, 1 if k == 0 else 0)
        return (np.broadcast_to(rows[:, None], node.shape) if k == 0
                else np.broadcast_to(rows[None, :], node.shape)).copy()
    # linear(x, W, b): out[i, j] reads x[i, :], W[j, :], b[j]
    if k == 2:
        return np.broadcast_to(lab[None, :], node.shape).copy()
    rows = _or_reduce(lab, 1)
    return (np.broadcast_to(rows[:, None], node.shape) if k == 0
            else np.broadcast_to(rows[None, :], node.shape)).copy()


def _moved(fn):
    def rule(node, k, lab):
        return np.asarray(fn(node, k, lab), dtype=object).reshape(node.shape).copy()
    return rule


DEPENDENCY = {
    _shapes.elementwise: _elementwise,
    _shapes.reduction: _reduction,
    _shapes.along_axis: _along_axis,
    _shapes.layer_norm: _layer_norm,
    _shapes.matmul: _matmul,
    _shapes.linear: _matmul,
    "transpose": _moved(lambda n, k, a: a.T),
    "reshape": _moved(lambda n, k, a: a.reshape(n.shape)),
    "flatten": _moved(lambda n, k, a: a.reshape(-1)),
    "broadcast_row": _moved(lambda n, k, a: np.broadcast_to(a[..., None], n.shape)),
    "broadcast_col": _moved(lambda n, k, a: np.broadcast_to(a[None], n.shape)),
    "broadcast_to": _moved(lambda n, k, a: np.broadcast_to(a, n.shape)),
    "swap_first_two": _moved(lambda n, k, a: np.swapaxes(a, 0, 1)),
    "transpose_last_two": _moved(lambda n, k, a: np.swapaxes(a, -1, -2)),
    "reduce_sum": _reduction, "reduce_mean": _reduction,
    "row_mean": _moved(lambda n, k, a: _or_reduce(a, 1)),
}


def depend(node, k, labels):
    """Labels of ``node``'s output elements inherited from input ``k``'s ``labels``."""
    spec = get(node.op)
    if not hasattr(node, "_full_any"):
        node._full_any = next(iter(node._full.values()), dict(node.params))
    if node.op == "concat":
        return None  # handled by the caller (needs both inputs)
    rule = DEPENDENCY.get(node.op) or DEPENDENCY.get(spec.shape) or _all
    return rule(node, k, np.asarray(labels, dtype=object))


def _concat_labels(node, ins):
    axis = node._full_any.get("axis", 0)
    return np.concatenate([np.asarray(a, dtype=object) for a in ins], axis=axis)


def inherited(node, input_labels):
    """OR of what every input passes on to each output element."""
    if not hasattr(node, "_full_any"):
        node._full_any = next(iter(node._full.values()), dict(node.params))
    if node.op == "concat":
        return _concat_labels(node, input_labels).reshape(node.shape)
    out = np.zeros(node.shape, dtype=object)
    for k, lab in enumerate(input_labels):
        if lab is None or not np.any(lab != 0):
            continue
        out = out | depend(node, k, lab)
    return out


# --------------------------------------------------------------------- detectors ----
@dataclass
class Departure:
    mask: np.ndarray       # departs
    kind: np.ndarray       # "nan" | "inf" | "overflow" | "underflow" | "zero" | "bits"
    bits: np.ndarray       # bits of error against the exact value rounded


def departure(f, ex, dtype, threshold, output=False) -> Departure:
    dtype = np.dtype(dtype)
    f = np.asarray(f)
    if f.dtype.kind != "f":
        z = np.zeros(f.shape, bool)
        return Departure(z, np.full(f.shape, "", dtype=object), np.zeros(f.shape))
    f = f.astype(dtype, copy=False)
    defined = ~ex.nan
    fnan, finf = np.isnan(f), np.isinf(f)
    with np.errstate(all="ignore"):
        bits = np.asarray(bits_error(f, ex.rounded, dtype), dtype=np.float64)
    kind = np.full(f.shape, "", dtype=object)
    kind[fnan & defined] = "nan"
    beyond = np.isinf(ex.rounded) & ~ex.inf          # finite real, rounds to +-inf
    over = finf & ~ex.inf & defined
    if output:
        over &= ~(beyond & (np.signbit(f) == ex.neg))  # correct rounding to +-inf
    kind[over & beyond] = "overflow"
    kind[over & ~beyond] = "inf"
    wrong_inf = finf & ex.inf & (np.signbit(f) != ex.neg)
    kind[wrong_inf] = "inf"
    # underflow: the exact value lies below the normal range and the float value is 0,
    # or (inside a program, where the next node may scale it back up) a subnormal that
    # kept fewer than (precision - threshold) of its bits: relative, not ulp, error
    below = ~ex.zero & ~ex.inf & defined & (ex.mag < np.log2(float(np.finfo(dtype).tiny)))
    flushed = (f == 0) & below
    if output:
        flushed &= ex.rounded != 0                     # correct rounding to 0
    elif below.any() and ex.values is not None:
        rel_bits = np.zeros(f.shape)
        eps = float(np.finfo(dtype).eps)
        for j in indices(below & np.isfinite(f) & (f != 0)):
            e = ex.values[j]
            rel = abs(float((e - type(e)(float(f[j]))) / e)) if hasattr(e, "_mpf_") else 0.0
            rel_bits[j] = np.log2(1.0 + rel / eps)
        lossy = below & np.isfinite(f) & (rel_bits > threshold)
        flushed |= lossy
        bits = np.where(lossy, np.maximum(bits, rel_bits), bits)
    kind[flushed & (kind == "")] = "underflow"
    lost = (kind == "") & defined & np.isfinite(f) & (bits > threshold)
    if output:
        lost &= ~(np.isinf(ex.rounded))
    kind[lost] = "bits"
    kind[lost & (f == 0)] = "zero"        # all bits lost to 0: an inf or NaN downstream
    return Departure(kind != "", kind, np.where(defined, bits, 0.0))


def undefined(ev, node, ex):
    """Elements where the node's exact value is undefined: NaN, or +-inf (a pole) from
    exact inputs that are all finite."""
    und = ex.nan.copy()
    if ex.inf.any():
        finite_in = np.ones(node.shape, bool)
        for s in node.inputs:
            ie = ev.info(s)
            bad = ~(~ie.nan & ~ie.inf)
            if bad.any():
                lab = np.where(bad, 1, 0).astype(object)
                finite_in &= ~np.asarray(inherited_single(node, ev, s, lab) != 0, dtype=bool)
        und |= ex.inf & finite_in
    return und


def inherited_single(node, ev, slot, lab):
    ins = [lab if s == slot else np.zeros(np.shape(ev.fvalue(s)), dtype=object)
           for s in node.inputs]
    return inherited(node, ins)


# ------------------------------------------------------------------ localization ----
@dataclass
class Origins:
    """Per slot: labels (object ints, bit i = node i is an origin upstream) of departing
    elements and of undefined elements; per node: its Departure and origin masks."""

    labels: dict
    undef_labels: dict
    departures: dict
    origin: dict          # node index -> bool mask of origin elements
    domain_origin: dict   # node index -> bool mask
    nonfinite_labels: dict = None   # slot -> origins behind the first inf/NaN of a chain


def localize(ev, threshold) -> Origins:
    graph = ev.graph
    labels, ulabels, deps, origin, dorigin, nf_labels = {}, {}, {}, {}, {}, {}
    for node in graph.nodes:
        ex = ev.info(node.output)
        d = departure(ev.fvalue(node.output), ex, ev.dtype, threshold)
        deps[node.index] = d
        ins = [labels.get(s) for s in node.inputs]
        inh = inherited(node, ins) if any(x is not None for x in ins) else \
            np.zeros(node.shape, dtype=object)
        here = d.mask & (inh == 0)
        origin[node.index] = here
        code = np.zeros(node.shape, dtype=object)
        for c, name in enumerate(DEPARTURE_KINDS):
            sel = here & (d.kind == name)
            if sel.any():
                code[sel] = 1 << (node.index * len(DEPARTURE_KINDS) + c)
        lab = np.where(d.mask, inh | code, 0)
        labels[node.output] = lab.astype(object)
        # the origins behind the element where a chain first turns inf/NaN, carried on
        # through the non-finite elements downstream: an inf or NaN output is blamed on
        # them, not on an unrelated finite departure upstream of the same element
        f = np.asarray(ev.fvalue(node.output))
        nonfin = d.mask & ~np.isfinite(f) if f.dtype.kind == "f" else np.zeros(node.shape, bool)
        nins = [nf_labels.get(s) for s in node.inputs]
        ninh = inherited(node, nins) if any(x is not None for x in nins) else \
            np.zeros(node.shape, dtype=object)
        nf_labels[node.output] = np.where(nonfin, np.where(ninh == 0, lab, ninh), 0).astype(object)
        # undefined exact values
        uins = [ulabels.get(s) for s in node.inputs]
        uinh = inherited(node, uins) if any(x is not None for x in uins) else \
            np.zeros(node.shape, dtype=object)
        # undefined here, or non-finite because an input it reads was undefined
        und = undefined(ev, node, ex) | ((ex.nan | ex.inf) &
                                          np.asarray(uinh != 0, dtype=bool))
        uhere = und & np.asarray(uinh == 0, dtype=bool)
        dorigin[node.index] = uhere
        ucode = np.zeros(node.shape, dtype=object)
        ucode[uhere] = 1 << (node.index * len(DEPARTURE_KINDS))
        ulab = np.where(und, uinh | ucode, 0)
        ulabels[node.output] = ulab.astype(object)
    return Origins(labels, ulabels, deps, origin, dorigin, nf_labels)


DEPARTURE_KINDS = ("nan", "inf", "overflow", "underflow", "zero", "bits")


# which origin kinds explain an output departure of a given kind, best first
EXPLAINS = {"inf": ("overflow", "inf", "zero", "underflow"),
            "overflow": ("overflow", "inf", "zero", "underflow"),
            "nan": ("nan", "overflow", "inf", "underflow", "zero"),
            "underflow": ("underflow", "zero"), "zero": ("zero", "underflow", "bits"),
            "bits": ("bits", "zero", "underflow")}


def first_bit(label, output_kind=None):
    """(node index, departure kind) of the origin in ``label`` that explains an output
    departure of ``output_kind`` (the first such node in recording order; else the first
    origin at all); (-1, "") if there is none."""
    label = int(label)
    if not label:
        return -1, ""
    found = []
    while label:
        b = (label & -label).bit_length() - 1
        found.append((b // len(DEPARTURE_KINDS), DEPARTURE_KINDS[b % len(DEPARTURE_KINDS)]))
        label &= label - 1
    for kind in EXPLAINS.get(output_kind, ()):
        for node, k in found:
            if k == kind:
                return node, k
    return found[0]


def local_bits(ev, node):
    """Bits of error of the node alone: its float output against its mp formula on its
    float inputs (Herbie's local error)."""
    from ..backends.mpctx import MPMATH_LOCK, make_context, to_ctx
    from ..graph import _mp_node
    from .evaluate import exact_info
    ctx = make_context(ev.prec or 256)
    with MPMATH_LOCK, np.errstate(all="ignore"):
        ins = [to_ctx(ctx, np.ascontiguousarray(ev.fvalue(s))) for s in node.inputs]
        _, _, out = _mp_node(node, ins, ev.dtype, ctx)
    ex = exact_info(out, ev.dtype)
    f = ev.fvalue(node.output).astype(ev.dtype)
    with np.errstate(all="ignore"):
        b = np.asarray(bits_error(f, ex.rounded, ev.dtype), dtype=np.float64)
    return np.where(ex.nan, 0.0, b)


def cancelled_bits(ev, node, idx):
    """max(exponent of the exact operands) - exponent of the exact result, at output
    element ``idx`` (for add/sub: the two operands; for sums: the largest term)."""
    res = ev.info(node.output)
    if res.zero[idx] or res.nan[idx] or res.inf[idx]:
        return 0.0
    top = -np.inf
    for s in node.inputs:
        ie = ev.info(s)
        if node.op in ("add", "sub"):
            m = ie.mag[idx] if not ie.zero[idx] else -np.inf
        else:
            m = float(np.max(np.where(ie.zero, -np.inf, ie.mag))) if ie.mag.size else -np.inf
        top = max(top, m)
    return max(0.0, float(top - res.mag[idx]))


def classify(ev, node, idx, departure_kind, output_bits):
    """(kind, bits_cancelled) of an origin element ("bits" and "zero" departures are
    cancellation or accuracy)."""
    if departure_kind in ("nan", "inf", "overflow", "underflow"):
        return departure_kind, None
    if node.op in ADDITIVE:
        local = local_bits(ev, node)
        c = cancelled_bits(ev, node, idx)
        node_bits = float(ev_bits(ev, node)[idx])
        # the cancellation accounts for the loss when it removes at least as many bits
        # as were lost (all of them, once the result has none left)
        p = {"float32": 24, "float64": 53}[np.dtype(ev.dtype).name]
        if float(local[idx]) <= LOCALLY_EXACT_BITS and c >= min(node_bits, p) - 2:
            return "cancellation", c
    return "accuracy", None


def ev_bits(ev, node):
    ex = ev.info(node.output)
    with np.errstate(all="ignore"):
        return np.asarray(bits_error(ev.fvalue(node.output).astype(ev.dtype), ex.rounded,
                                     ev.dtype), dtype=np.float64)


def path_nodes(graph, origin_index):
    """Nodes from the origin to the output (those on some path between them)."""
    reach = {graph.nodes[origin_index].output}
    down = []
    for node in graph.nodes[origin_index:]:
        if node.index == origin_index or any(s in reach for s in node.inputs):
            reach.add(node.output)
            down.append(node)
    needed = set(graph.output_slots)
    path = []
    for node in reversed(down):
        if node.output in needed:
            path.append(node)
            needed.update(node.inputs)
    return list(reversed(path))
