"""Soundness of refrt.analyze, as seeded hypothesis properties over random programs built
from registry ops and random boxes:

* every value the program computes in float32 at any input of the box (corners, special
  points, random draws), and its exact value (mp) at a few of them, lies in the
  abstract interval of its node, under every configuration;
* an op proved safe never has its argument in its danger zone at those inputs;
* no op proved safe is the origin of a domain finding (or, for exp-like ops, of an
  overflow) of refrt.check on the same program and box, and no input of any finding puts
  a proved-safe op's argument in its zone.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refrt
from refrt import ops
from refrt.analysis.analyze import PARTITIONS, RELATIONS
from refrt.analysis.confirm import hits
from refrt.analysis.rules import zones
from refrt.graph import _full_params

F32 = np.float32
SHAPE = (2, 3)
UNARY = ["neg", "abs", "square", "exp", "log", "log1p", "sqrt", "sqrt_clamp", "relu",
         "sigmoid", "tanh", "softplus", "inv", "expm1", "sinh", "cosh", "silu", "gelu",
         "smooth_abs", "safe_log", "safe_inv", "elu", "logistic", "sign"]
BINARY = ["add", "sub", "mul", "div", "minimum", "maximum", "safe_div"]
ROW = ["softmax", "log_softmax"]
REDUCE = ["sum", "mean", "amax", "amin", "var", "logsumexp"]
MASK = np.array([[True, False, True], [False, False, True]])
CONST = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -0.25]], F32)
MAT = np.array([[1.0, -0.5, 0.0], [2.0, 1.0, -1.0], [0.0, 0.25, 3.0]], F32)
LOSSES = ["cross_entropy_logits", "nll_loss", "mse_loss", "bce_with_logits",
          "binary_cross_entropy", "kl_div", "cross_entropy_probs", "layer_norm", "linear",
          "batch_norm_inference", "pow", "fixed_mask_scale", "fixed_inverted_dropout",
          "matmul_both", "safe_div", "row_mean", "reduce_sum"]
ONEHOT = np.array([[0, 1, 0], [1, 0, 0]], F32)
T01 = np.array([[0.25, 1.0, 0.0], [0.5, 0.0, 1.0]], F32)
ENDS = [-200.0, -90.0, -10.0, -1.0, -2.0 ** -10, 0.0, 2.0 ** -10, 0.5, 1.0, 2.0, 10.0, 88.75,
        200.0]


def step_strategy(losses=True):
    i, j = st.integers(0, 30), st.integers(0, 30)
    return st.one_of(
        st.tuples(st.just("l"), st.sampled_from(LOSSES if losses else ["pow"]), i, j),
        st.tuples(st.just("u"), st.sampled_from(UNARY), i, i),
        st.tuples(st.just("b"), st.sampled_from(BINARY), i, j),
        st.tuples(st.just("r"), st.sampled_from(ROW), i, i),
        st.tuples(st.just("red"), st.sampled_from(REDUCE), i, i),
        st.tuples(st.just("x"), st.sampled_from(["where", "scale", "clamp", "transpose2",
                                                 "concat_reshape", "matmul", "const_mul",
                                                 "const_add"]), i, j),
    )


def build(steps):
    def program(x, y):
        vals = [x, y]
        for kind, op, i, j in steps:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            if kind == "u":
                v = getattr(ops, op)(a)
            elif kind == "b":
                v = getattr(ops, op)(a, b)
            elif kind == "r":
                v = getattr(ops, op)(a, axis=-1)
            elif kind == "red":
                v = ops.broadcast_row(getattr(ops, op)(a, axis=-1), n=SHAPE[1])
            elif kind == "l":
                v = _loss(op, a, b)
            elif op == "where":
                v = ops.where(MASK, a, b)
            elif op == "scale":
                v = ops.scale(a, c=-3.0 if i % 2 else 0.5)
            elif op == "clamp":
                v = ops.clamp(a, lo=-1.0, hi=2.0)
            elif op == "transpose2":
                v = ops.transpose(ops.transpose(a))
            elif op == "concat_reshape":
                v = ops.reshape(ops.transpose(ops.reshape(ops.concat(a, b, axis=0),
                                                          shape=(3, 4))), shape=(2, 6))
                v = ops.reshape(ops.transpose(ops.reshape(v, shape=(6, 2))), shape=(4, 3))
                v = ops.matmul(np.array([[1, 0, 0, 0], [0, 0, 1, 0]], F32), v)
            elif op == "matmul":
                v = ops.matmul(a, MAT)
            elif op == "const_mul":
                v = ops.mul(a, CONST)
            else:
                v = ops.add(CONST, a)
            vals.append(v)
        return vals[-1]
    return program


def _loss(op, a, b):
    full = lambda s: ops.broadcast_to(s, shape=SHAPE)
    if op == "cross_entropy_logits":
        return full(ops.cross_entropy_logits(a, ONEHOT))
    if op == "nll_loss":
        return full(ops.nll_loss(ops.log_softmax(a), ONEHOT))
    if op == "mse_loss":
        return full(ops.mse_loss(a, b))
    if op == "bce_with_logits":
        return full(ops.bce_with_logits(a, T01))
    if op == "binary_cross_entropy":
        return full(ops.binary_cross_entropy(ops.sigmoid(a), T01))
    if op == "kl_div":
        return full(ops.kl_div(ops.log_softmax(a), ops.softmax(b)))
    if op == "cross_entropy_probs":
        return full(ops.cross_entropy_probs(ops.softmax(a), T01))
    if op == "layer_norm":
        return ops.layer_norm(a, np.array([1.0, -2.0, 0.5], F32), np.array([0.0, 1.0, 3.0], F32))
    if op == "linear":
        return ops.linear(a, MAT, np.array([0.5, -1.0, 0.0], F32))
    if op == "batch_norm_inference":
        c = lambda *v: np.array(v, F32)
        return ops.batch_norm_inference(a, c(0.5, -1.0), c(2.0, 0.0), c(1.0, 3.0), c(0.0, 1.0))
    if op == "pow":
        return ops.pow(a, b)
    if op == "fixed_mask_scale":
        return ops.fixed_mask_scale(a, CONST)
    if op == "fixed_inverted_dropout":
        return ops.fixed_inverted_dropout(a, MASK.astype(F32), keep=0.75)
    if op == "matmul_both":
        return ops.matmul(ops.matmul(a, ops.transpose(b)), a)
    if op == "safe_div":
        return ops.safe_div(a, b)
    if op == "row_mean":
        return ops.broadcast_row(ops.row_mean(a), n=SHAPE[1])
    return ops.broadcast_row(ops.reduce_sum(a, axis=-1), n=SHAPE[1])


def boxes():
    return st.tuples(st.sampled_from(ENDS), st.sampled_from(ENDS)).map(sorted)


def nonzero_boxes():
    # refrt.check cannot sample a Range(0, 0) yet (its log-uniform draw needs a nonzero
    # end; reported to the lead)
    return boxes().filter(lambda b: b != [0.0, 0.0])


def samples(box_x, box_y, rng, n=24):
    """Inputs inside the boxes as ``Range`` rounds them (inward, to float32)."""
    out = []
    rx, ry = refrt.Range(box_x[0], box_x[1], SHAPE), refrt.Range(box_y[0], box_y[1], SHAPE)
    box_x, box_y = [tuple(float(b) for b in r.bounds()) for r in (rx, ry)]
    for bx, by in ((box_x, box_y),):
        for k in range(n):
            xs = []
            for lo, hi in (bx, by):
                if k == 0:
                    a = np.full(SHAPE, lo)
                elif k == 1:
                    a = np.full(SHAPE, hi)
                elif k % 3 == 0:
                    pts = [v for v in (lo, hi, 0.0, 1.0, -1.0, 0.5 * (lo + hi)) if lo <= v <= hi]
                    a = rng.choice(pts, SHAPE)
                else:
                    a = rng.uniform(lo, hi, SHAPE)
                xs.append(np.clip(a, lo, hi).astype(F32))
            out.append(xs)
    return out


def _zones(graph, node, rep):
    like = [np.empty(rep.analysis.values[s].shape, F32) for s in node.inputs]
    return zones(node.op, "float32", _full_params(node, np.dtype(F32), like))


def _assert_contains(rep, xs, backend="f32"):
    g = rep.analysis.graph
    try:
        with np.errstate(all="ignore"):
            run = g.run(*xs, backend=backend)
    except (OverflowError, MemoryError):
        # mpmath cannot hold exp(exp(200)) exactly; the float32 runs still cover it
        assert backend == "mp"
        return
    for node in g.nodes:
        v = run.values[node.output]
        if backend == "mp":
            v = np.vectorize(lambda e: float(e) if e == e else np.nan, otypes=[float])(v)
        v = np.asarray(v, np.float64)
        t = rep.analysis.values[node.output]
        ok = np.isnan(v) | ((v >= t.lo) & (v <= t.hi))
        assert ok.all(), (f"{backend} value of {node} outside its interval: "
                          f"{v[~ok]} not in [{t.lo[~ok]}, {t.hi[~ok]}]\n{g}")


def _assert_safe_stays_safe(rep, xs):
    g = rep.analysis.graph
    for r in rep.safe:
        node = g.nodes[r.node]
        for z in _zones(g, node, rep):
            assert hits(g, r.node, z, xs, "float32") is None, \
                f"{r.op} at node {r.node} proved safe, but {xs} reaches {z.interval()}\n{g}"


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.lists(step_strategy(), min_size=1, max_size=6), boxes(), boxes(),
       st.sampled_from(PARTITIONS), st.sampled_from(RELATIONS), st.integers(0, 2 ** 16))
def test_intervals_enclose_float_and_exact_values(steps, bx, by, partition, relations, seed):
    fn = build(steps)
    rep = refrt.analyze(fn, refrt.Range(bx[0], bx[1], SHAPE), refrt.Range(by[0], by[1], SHAPE),
                        partition=partition, relations=relations, confirm=False)
    rng = np.random.default_rng(seed)
    pts = samples(bx, by, rng)
    for xs in pts:
        _assert_contains(rep, xs)
        _assert_safe_stays_safe(rep, xs)
    for xs in pts[:2] + pts[-1:]:
        _assert_contains(rep, xs, backend="mp")


# kinds of refrt.check findings that a proved-safe op must never originate
def _forbidden(op, kind):
    return kind == "domain" or (op in ("exp", "expm1", "sinh", "cosh") and kind == "overflow")


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.lists(step_strategy(losses=False), min_size=1, max_size=4), nonzero_boxes(),
       nonzero_boxes(),
       st.sampled_from(PARTITIONS))
def test_proved_safe_ops_have_no_tester_findings(steps, bx, by, partition):
    # (the scalar-valued losses are left out here: refrt.check cannot localize through
    # 0-d intermediates yet, reported to the lead; the interval property covers them)
    fn = build(steps)
    box = (refrt.Range(bx[0], bx[1], SHAPE), refrt.Range(by[0], by[1], SHAPE))
    rep = refrt.analyze(fn, *box, partition=partition, confirm=False)
    if not rep.safe:
        return
    found = refrt.check(fn, *box, budget=0.25, seed=0)
    g = rep.analysis.graph
    safe_nodes = {r.node: r for r in rep.safe}
    for f in found.findings:
        k = getattr(f, "_node", None)
        if k in safe_nodes:
            assert not _forbidden(f.op, f.kind), f"{f} at a node proved safe\n{g}"
        for r in rep.safe:
            for z in _zones(g, g.nodes[r.node], rep):
                assert hits(g, r.node, z, f.input, "float32") is None, \
                    f"finding input reaches the zone of {r.op}, proved safe\n{g}"
