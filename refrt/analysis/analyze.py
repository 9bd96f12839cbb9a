"""``refrt.analyze``: abstract interpretation of a traced refrt graph (DEBAR's analysis).

Flow: trace the function once (or take a ``Graph``); give every input an abstract
tensor (a ``Range`` box, a ``Weight`` with the weights' range, or a point for an array);
walk the nodes in order, applying the op's interval transformer (``transfer.INTERVAL``,
widened by ``domain.widen``), its affine-form transformer (``FORMS`` below) when the op
is linear in its abstract arguments, and the partition policy; before each op with a
danger zone (``rules.zones``) decide whether some abstract argument reaches it.  Unsafe
ops are then confirmed with the dynamic tester on the sub-box that still reaches the
zone (``confirm``).
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import RefrtError, RefrtTypeError
from ..graph import Graph, _float_node, _full_params, trace
from ..registry import get
from ..tester.inputs import Range
from . import rules as R
from .domain import (ATensor, DtypeLimits, Forms, Symbols, U64, combine, exact_widen,
                     widen)
from .linear import forms_linear
from .transfer import COND, EXACT, GATHER, INTERVAL, NONNEG, NONPOS, SIGN_KEEP

PARTITIONS = ("expand", "smash", "auto")
RELATIONS = ("affine", "none")


@dataclass(frozen=True)
class Weight:
    """A parameter input of ``shape``: its range is ``analyze``'s ``weights`` (DEBAR's
    [-1, 1] by default) unless ``low``/``high`` are given here."""

    shape: tuple = ()
    low: float | None = None
    high: float | None = None


# ------------------------------------------------------------------ partitions ----
def _renumber(keys):
    _, inv = np.unique(keys, return_inverse=True)
    return inv.reshape(np.shape(keys)).astype(np.int64)


def _refine(*label_arrays):
    """The coarsest partition finer than every given one (same shapes)."""
    key = np.zeros(label_arrays[0].shape, np.int64)
    for L in label_arrays:
        key = key * (int(L.max()) + 1 if L.size else 1) + L
        key = _renumber(key)
    return key


class Policy:
    """Where parts begin and how an op's output is partitioned (``expand``, ``smash``,
    ``auto``: DEBAR's partitioning, here split by constants' values, ``where`` masks,
    ``concat`` blocks and the inputs' own parts for elementwise ops)."""

    def __init__(self, name):
        self.name = name

    def input(self, shape, point=None):
        n = int(np.prod(shape)) if len(shape) else 1
        if self.name == "expand":
            return np.arange(n).reshape(shape)
        if self.name == "smash" or point is None:
            return np.zeros(shape, np.int64)
        return _renumber(np.asarray(point, np.float64))

    def output(self, node, ins, lo, hi, nan, gathered=None):
        shape = lo.shape
        n = lo.size
        if self.name == "expand":
            return np.arange(n).reshape(shape)
        if self.name == "smash":
            return np.zeros(shape, np.int64)
        if gathered is not None:
            return _renumber(gathered)
        same = [t for t in ins if t.shape == shape]
        if same and len(same) == len(ins):
            extra = [_renumber(t.point.astype(np.float64)) for t in ins
                     if t.is_point and t.point.dtype.kind == "b"]
            return _refine(*[t.labels for t in same], *extra)
        # mixing ops: elements whose bounds agree share a part (smashing them loses
        # nothing); the rest are split
        keys = np.stack([lo.ravel(), hi.ravel(), nan.ravel().astype(np.float64)], 1)
        if not n:
            return np.zeros(shape, np.int64)
        _, inv = np.unique(keys, axis=0, return_inverse=True)
        return inv.reshape(shape).astype(np.int64)


def _signs(op, p, real_lo, real_hi, lo, hi):
    """Rounding never crosses 0 where the op keeps signs (``transfer.NONNEG``/``NONPOS``/
    ``SIGN_KEEP``); widening must not either."""
    if op in NONNEG:
        lo = np.maximum(lo, 0.0)
    if op in NONPOS:
        hi = np.minimum(hi, 0.0)
    if op in SIGN_KEEP and not (op == "scale" and p.get("c", 1.0) == 0):
        lo = np.where(real_lo >= 0, np.maximum(lo, 0.0), lo)
        hi = np.where(real_hi <= 0, np.minimum(hi, 0.0), hi)
    return lo, hi


# ---------------------------------------------------------------------- state ----
class Analysis:
    """One abstract run of a graph under one configuration."""

    def __init__(self, graph, abstract_inputs, dtype, partition, relations):
        self.graph = graph
        self.lim = DtypeLimits(dtype)
        self.dtype = np.dtype(dtype)
        self.policy = Policy(partition)
        self.affine = relations == "affine"
        self.sym = Symbols()
        self.fanout = np.zeros(graph.nslots, np.int64)
        for node in graph.nodes:
            for s in node.inputs:
                self.fanout[s] += 1
        self.values = [None] * graph.nslots
        for slot, (lo, hi, point) in zip(graph.input_slots, abstract_inputs):
            self.values[slot] = self._leaf(slot, lo, hi, point, fresh=point is None)
        for slot, c in graph.constants.items():
            pt = c.astype(self.dtype) if c.dtype.kind == "f" else c
            self.values[slot] = self._leaf(slot, pt, pt, pt, fresh=False)
        self.findings = []       # (node, zone, reached mask, arg ATensor)
        self.not_analysed = []

    def _leaf(self, slot, lo, hi, point, fresh):
        lo = np.asarray(lo, np.float64)
        hi = np.asarray(hi, np.float64)
        labels = self.policy.input(lo.shape, point)
        if self.policy.name == "smash" and point is not None:
            point_kept = None if lo.size > 1 and not np.all(lo == lo.ravel()[:1]) else point
        else:
            point_kept = point
        t = ATensor(lo, hi, None, labels, None, point_kept)
        self._smash(t)
        if self.affine:
            if fresh:
                t.forms = self._fresh(t, f"%{slot}")
            else:
                t.forms = Forms.constant(t.lo, t.hi, len(self.sym))
        return t

    def _fresh(self, t, origin):
        """Forms with one new symbol per part with finite bounds."""
        inv = t.labels.ravel()
        P = t.parts()
        # the symbol's interval is the join over its part (the elements may not have been
        # smashed yet)
        plo, phi = np.full(P, np.inf), np.full(P, -np.inf)
        np.minimum.at(plo, inv, t.lo.ravel())
        np.maximum.at(phi, inv, t.hi.ravel())
        fin = np.isfinite(plo) & np.isfinite(phi)
        sizes = np.bincount(inv, minlength=P)
        ids = np.full(P, -1)
        for single in (True, False):
            sel = fin & ((sizes == 1) == single)
            if sel.any():
                ids[sel] = self.sym.new(plo[sel], phi[sel], single, origin)
        S = len(self.sym)
        has = ids[inv] >= 0
        rows = np.nonzero(has)[0]
        C = sp.csr_matrix((np.ones(rows.size), (rows, ids[inv][has])), shape=(inv.size, S))
        base = Forms.constant(t.lo, t.hi, S)
        c0 = np.where(has, 0.0, base.c0)
        err = np.where(has, 0.0, base.err)
        return Forms(c0, C, err)

    def _smash(self, t):
        """Join the intervals (and NaN flags) within each part."""
        inv = t.labels.ravel()
        if not inv.size:
            return
        P = int(inv.max()) + 1
        if P == inv.size and np.all(np.bincount(inv, minlength=P) == 1):
            return
        lo = np.full(P, np.inf)
        hi = np.full(P, -np.inf)
        nan = np.zeros(P, bool)
        np.minimum.at(lo, inv, t.lo.ravel())
        np.maximum.at(hi, inv, t.hi.ravel())
        np.logical_or.at(nan, inv, t.nan.ravel())
        t.lo, t.hi, t.nan = lo[inv].reshape(t.shape), hi[inv].reshape(t.shape), \
            nan[inv].reshape(t.shape)

    # -------------------------------------------------------------- the walk ----
    def run(self):
        for node in self.graph.nodes:
            self.step(node)
        return self

    def _params(self, node, ins):
        like = [np.empty(t.shape, t.point.dtype if t.is_point and t.point.dtype.kind in "iub"
                         else self.dtype) for t in ins]
        p = dict(_full_params(node, self.dtype, like))
        p["_lim"] = self.lim
        return p

    def step(self, node):
        ins = [self.values[s] for s in node.inputs]
        spec = get(node.op)
        p = self._params(node, ins)
        self._check_rules(node, ins, p)
        shape = tuple(node.shape)
        ulps = 0.0 if node.op in EXACT else float(spec.tol[self.dtype.name]) + 1.0
        gathered = None
        extra = 0.0
        point = None
        if all(t.is_point for t in ins) and (node.op in INTERVAL or node.op in GATHER):
            arrs = [t.point.astype(self.dtype) if t.point.dtype.kind == "f" else t.point
                    for t in ins]
            with np.errstate(all="ignore"):
                out = _float_node(node, arrs, "f32" if self.dtype == np.float32 else "f64",
                                  1)[2].astype(np.float64)
            lo, hi, nan = out, out.copy(), np.isnan(out)
            lo, hi = np.where(nan, -np.inf, lo), np.where(nan, np.inf, hi)
            if ulps == 0.0:
                point = out.astype(self.dtype)
        elif node.op in GATHER:
            lo, hi, nan, gathered, moved, idx = self._gather(node, ins)
        elif node.op in INTERVAL:
            r = INTERVAL[node.op](ins, p, shape)
            lo, hi, nan = (np.asarray(v) for v in r[:3])
            if len(r) > 3:
                extra = r[3]
        else:
            self.not_analysed.append(node)
            lo, hi = np.full(shape, -np.inf), np.full(shape, np.inf)
            nan = np.ones(shape, bool)
        lo = np.broadcast_to(np.asarray(lo, np.float64), shape)
        hi = np.broadcast_to(np.asarray(hi, np.float64), shape)
        nan = np.broadcast_to(np.asarray(nan, bool), shape)
        base = np.maximum(np.abs(lo), np.abs(hi))
        below, above = extra if isinstance(extra, tuple) else (extra, extra)
        if point is None and node.op in COND:
            with np.errstate(all="ignore"):
                c = COND[node.op](ins, p, lo, hi)
                k = (ulps + 3.0) * self.lim.eps
                if isinstance(c, tuple):
                    f = np.broadcast_to(c[1], shape) * k
                    cb, ca = f * np.abs(lo), f * np.abs(hi)
                else:
                    cb = ca = np.broadcast_to(c, shape) * k
            cb, ca = np.where(np.isnan(cb), np.inf, cb), np.where(np.isnan(ca), np.inf, ca)
            below, above = below + cb, above + ca
        below = np.nan_to_num(np.asarray(below, np.float64), nan=np.inf)
        above = np.nan_to_num(np.asarray(above, np.float64), nan=np.inf)
        extra = np.maximum(below, above)
        if point is None:
            real_lo, real_hi = lo, hi
            lo, hi = (widen(lo, hi, self.lim, ulps) if ulps else exact_widen(lo, hi, self.lim))
            with np.errstate(all="ignore"):
                lo, hi = lo - below, hi + above
            lo, hi = _signs(node.op, p, real_lo, real_hi, lo, hi)
        t = ATensor(lo, hi, nan, None, None, point)
        labels = self.policy.output(node, ins, lo, hi, nan,
                                    gathered if node.op in GATHER and point is None else None)
        t.labels = labels
        fan = int(self.fanout[node.output])
        if self.affine:
            t.forms = self._forms(node, ins, p, t, base, ulps, extra, point,
                                  (moved, idx) if gathered is not None else None, fan)
        self._smash(t)
        if self.affine:
            t.forms = self._smash_forms(t, fan, f"%{node.output}")
        self.values[node.output] = t

    def _smash_forms(self, t, fan, origin):
        """Within a part every element must carry the same form; parts where they differ
        get the part's interval (a fresh symbol when the value is used twice)."""
        F = t.forms.resized(len(self.sym))
        inv = t.labels.ravel()
        if not inv.size:
            return F
        first = np.unique(inv, return_index=True)[1]
        rep = first[inv]
        if np.array_equal(rep, np.arange(inv.size)):
            return F
        D = F.C - F.C[rep]
        D.eliminate_zeros()
        diff = (np.diff(D.indptr) > 0) | (F.c0 != F.c0[rep]) | (F.err != F.err[rep])
        bad_parts = np.zeros(int(inv.max()) + 1, bool)
        np.logical_or.at(bad_parts, inv, diff)
        bad = bad_parts[inv]
        if not bad.any():
            return F
        G = self._fresh(t, origin) if fan >= 2 else Forms.constant(t.lo, t.hi, len(self.sym))
        G, F = G.resized(len(self.sym)), F.resized(len(self.sym))
        keep = (~bad).astype(np.float64)
        return combine(F, G, keep, 1.0 - keep, self.sym)

    def _forms(self, node, ins, p, t, base, ulps, extra, point, gather, fan):
        S = len(self.sym)
        if point is not None:
            return Forms.constant(t.lo, t.hi, S)
        F = [x.forms.resized(S) if x.forms is not None else
             Forms.constant(x.lo, x.hi, S) for x in ins]
        G = None
        if gather is not None:
            moved, idx = gather
            src = F[0] if len(F) == 1 else Forms(
                np.concatenate([f.c0 for f in F]), sp.vstack([f.C for f in F]),
                np.concatenate([f.err for f in F]))
            G = src.take(idx)
            G = G.concretize(self.sym, rows=moved)
        elif node.op in INTERVAL:
            G = forms_linear(node, ins, F, p, self.sym)
        if G is None:
            if fan >= 2:
                return self._fresh(t, f"%{node.output}")
            return Forms.constant(t.lo, t.hi, S)
        # the op's rounding: the widening of the interval, as an absolute radius
        with np.errstate(all="ignore"):
            rad = (ulps * self.lim.eps + 8 * U64) * base.ravel() + ulps * self.lim.denorm
            rad = rad + np.broadcast_to(extra, t.shape).ravel()
        rad = np.where(np.isnan(rad), np.inf, rad)
        G = Forms(G.c0, G.C, G.err + rad)
        flo, fhi = G.range(self.sym)
        t.lo = np.maximum(t.lo, flo.reshape(t.shape))
        t.hi = np.minimum(t.hi, fhi.reshape(t.shape))
        return G

    def _gather(self, node, ins):
        offs, start = [], 0
        for t in ins:
            offs.append(start)
            start += t.size
        idx_arrays = [(o + np.arange(t.size, dtype=np.float64)).reshape(t.shape)
                      for o, t in zip(offs, ins)]
        out = _float_node(node, idx_arrays, "f64", 1)[2]
        idx = out.astype(np.int64).ravel()
        cat = lambda attr: np.concatenate([getattr(t, attr).ravel() for t in ins])
        lo, hi, nan = cat("lo")[idx], cat("hi")[idx], cat("nan")[idx]
        shift, labs = 0, []
        for t in ins:
            labs.append(t.labels.ravel() + shift)
            shift += t.parts()
        gathered = np.concatenate(labs)[idx] if labs else idx
        src_off = np.concatenate([np.full(t.size, o) for o, t in zip(offs, ins)])[idx]
        moved = (idx - src_off) != np.arange(idx.size)
        shape = tuple(node.shape)
        return (lo.reshape(shape), hi.reshape(shape), nan.reshape(shape),
                gathered.reshape(shape), moved, idx)

    def _check_rules(self, node, ins, p):
        zs = R.zones(node.op, self.dtype, p)
        spec = get(node.op)
        for z in zs:
            k = spec.arg_names.index(z.arg)
            a = ins[k]
            if a.is_point and a.point.dtype.kind in "iu":
                continue
            reached = np.asarray(z.reached(a.lo, a.hi))
            self.findings.append((node, z, reached, a))


# ---------------------------------------------------------------------- inputs ----
def _weight_ranges(weights, names):
    """(default (lo, hi), {name: (lo, hi)}) from ``weights``."""
    default, per = (-1.0, 1.0), {}
    if weights is None:
        return default, per
    if isinstance(weights, Range):
        weights = (weights.low, weights.high)
    if isinstance(weights, tuple) and len(weights) == 2 and not isinstance(weights[0], str):
        return _lohi("weights", weights), per
    if isinstance(weights, dict):
        for k, v in weights.items():
            if isinstance(v, Range):
                v = (v.low, v.high)
            if k in ("*", None):
                default = _lohi("weights", v)
            else:
                per[k] = _lohi(f"weights[{k!r}]", v)
        return default, per
    raise RefrtTypeError(f"analyze: argument 'weights' expected None, a (low, high) pair or "
                         f"a dict of them by parameter name, got {weights!r}")


def _lohi(what, v):
    try:
        lo, hi = (float(x) for x in v)
    except Exception:
        raise RefrtTypeError(f"analyze: argument {what!r} expected a (low, high) pair, got "
                             f"{v!r}") from None
    if math.isnan(lo) or math.isnan(hi):
        raise RefrtError(f"analyze: argument {what!r} expected numbers, got nan in {v!r}")
    if lo > hi:
        raise RefrtError(f"analyze: argument {what!r} expected low <= high, got low = {lo!r} "
                         f"> high = {hi!r}")
    return lo, hi


def _arg_names(fn, n):
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    return (names + [f"input{i}" for i in range(len(names), n)])[:n]


def prepare_inputs(fn_or_graph, inputs, weights, dtype):
    """(example arrays, abstract (lo, hi, point) per input, Ranges for the tester)."""
    dt = np.dtype(dtype)
    names = _arg_names(fn_or_graph, len(inputs)) if callable(fn_or_graph) else \
        [f"input{i}" for i in range(len(inputs))]
    default, per = _weight_ranges(weights, names)
    examples, abstract, ranges = [], [], []
    for i, (v, name) in enumerate(zip(inputs, names)):
        if isinstance(v, Weight):
            lo, hi = (v.low, v.high) if v.low is not None else per.get(name, default)
            lo, hi = _lohi(f"Weight {name}", (lo, hi))
            v = Range(lo, hi, v.shape, dt.name)
        if isinstance(v, Range):
            r = Range(v.low, v.high, v.shape, dt.name)
            blo, bhi = (float(b) for b in r.bounds())
            if blo > bhi:
                raise RefrtError(f"analyze: input {i} ({name}) Range [{v.low!r}, {v.high!r}] "
                                 f"holds no {dt.name} value (its ends round inward past "
                                 "each other)")
            examples.append(np.full(r.shape, _example_value(blo, bhi), dtype=dt))
            abstract.append((np.full(r.shape, blo), np.full(r.shape, bhi), None))
            ranges.append(r)
            continue
        if isinstance(v, (bool, np.bool_)):
            raise RefrtTypeError(f"analyze: input {i} ({name}) expected a Range, a Weight or "
                                 "an array, got a bool")
        a = np.array(v)
        if a.dtype.kind not in "fiub":
            raise RefrtTypeError(f"analyze: input {i} ({name}) expected a Range, a Weight or "
                                 f"a float array, got {type(v).__name__}")
        if a.dtype.kind == "f" or a.dtype.kind in "iu" and a.ndim == 0:
            a = a.astype(dt)
        examples.append(a)
        abstract.append((a.astype(np.float64), a.astype(np.float64), a))
        ranges.append(a)
    return examples, abstract, ranges


def _example_value(lo, hi):
    for v in (0.0, 1.0, -1.0, 0.5):
        if lo <= v <= hi:
            return v
    return lo if math.isfinite(lo) else hi


def build_graph(fn_or_graph, examples, params):
    if isinstance(fn_or_graph, Graph):
        g = fn_or_graph
        if [tuple(e.shape) for e in examples] != [tuple(s) for s in g.input_shapes]:
            raise RefrtError(f"analyze: graph {g.name} expects inputs of shapes "
                             f"{g.input_shapes}, got {[e.shape for e in examples]}")
        return g
    if not callable(fn_or_graph):
        raise RefrtTypeError(f"analyze: argument 'fn_or_graph' expected a function written "
                             f"with refrt.ops or a refrt Graph, got {type(fn_or_graph).__name__}")
    return trace(fn_or_graph, *examples, **params)


def run_analysis(graph, abstract, dtype, partition, relations):
    if partition not in PARTITIONS:
        raise RefrtError(f"analyze: argument 'partition' expected one of {PARTITIONS}, got "
                         f"{partition!r}")
    if relations not in RELATIONS:
        raise RefrtError(f"analyze: argument 'relations' expected one of {RELATIONS}, got "
                         f"{relations!r}")
    return Analysis(graph, abstract, dtype, partition, relations).run()


def _dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in ("float32", "float64"):
        raise RefrtTypeError(f"analyze: argument 'dtype' expected 'float32' or 'float64', got "
                             f"{dtype!r}")
    return dt


def analyze(fn_or_graph, *input_ranges, weights=None, dtype="float32", partition="auto",
            relations="affine", confirm=True, budget=1.0, seed=0, **params):
    """Prove the unsafe ops of a refrt program safe for every input in the boxes, or say
    which are unsafe, where, and (``confirm``) whether the tester finds a witness."""
    from .report import AnalysisReport, results_of
    t0 = time.perf_counter()
    dt = _dtype(dtype)
    if partition not in PARTITIONS or relations not in RELATIONS:
        run_analysis(None, None, dt, partition, relations)   # raises the clear error
    examples, abstract, ranges = prepare_inputs(fn_or_graph, input_ranges, weights, dt)
    graph = build_graph(fn_or_graph, examples, params)
    an = run_analysis(graph, abstract, dt, partition, relations)
    results = results_of(an)
    seconds = time.perf_counter() - t0
    report = AnalysisReport(getattr(fn_or_graph, "__name__", graph.name), results, an,
                            partition, relations, dt.name, seconds)
    if confirm:
        from .confirm import confirm_all
        confirm_all(report, fn_or_graph, graph, input_ranges, ranges, abstract, weights, dt,
                    partition, relations, budget=budget, seed=seed, params=params)
    report.seconds_total = time.perf_counter() - t0
    return report
