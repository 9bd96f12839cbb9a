"""The analysis benchmark: graphs with ground truth, and the ablation over DEBAR's
configurations (``refrt analyze --benchmark``).

Every graph lists, for each of its ops with a danger zone (in graph order), its ground
truth: a *witness* (a function returning one input per argument, inside the ranges) that
puts the op's argument in the zone when the program runs in float32, or ``SAFE`` with
the reason no input in the ranges does.  ``verify_truth`` re-checks every witness on the
float kernels, so a claimed bug is a measured one.  The graphs: both programs of every
BugZoo pair (``refrt.bugzoo.PAIRS``), networks in the shape of DEBAR's buggy
architectures (a softmax then a log in a classifier, an unguarded exp in a rate, a log of
a difference, a division by a norm, a batch norm with weights in DEBAR's [-1, 1]),
textbook-unstable programs, and programs where partitioning or affine relations decide.
Imported PyTorch models do not exist in refrt yet (the layers/import issue).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import bugzoo as B
from .. import graph as _graph
from .. import ops
from ..tester.inputs import Range
from .analyze import Weight, analyze

# the benchmark's programs are user programs: their lines are the user's lines (as the
# BugZoo's; ``refrt.graph._USER_FILES``)
if __file__ not in _graph._USER_FILES:
    _graph._USER_FILES = _graph._USER_FILES + (__file__,)

F32 = np.float32
SAFE = "safe"
CONFIGS = [(p, r) for p in ("auto", "smash", "expand") for r in ("affine", "none")]


@dataclass
class Case:
    name: str
    fn: Callable
    inputs: tuple
    truth: tuple            # per op with a danger zone: a witness () -> inputs, or SAFE
    source: str             # "bugzoo" | "debar" | "textbook" | "ablation"
    why: str = ""           # why the SAFE entries are safe
    weights: object = None
    params: dict = field(default_factory=dict)


def _jit(shape, base, spread, seed=0):
    return (base + np.random.default_rng(seed).uniform(0, spread, shape)).astype(F32)


def _full(shape, v):
    return np.full(shape, v, F32)


# ----------------------------------------------------------- DEBAR-shaped nets ----
def classifier_log_softmax(x, w, b):
    """softmax, then log, in a classifier (DEBAR's most common bug)."""
    p = ops.softmax(ops.linear(x, w, b))
    return ops.neg(ops.mean(ops.sum(ops.mul(_ONEHOT_3, ops.log(p)), axis=-1)))


_ONEHOT_3 = np.eye(3, dtype=F32)[[0, 1, 2, 0]]


def rate_exp(x, w, b):
    """An unguarded exp in a rate (DEBAR's rates = exp(...))."""
    return ops.exp(ops.linear(x, w, b))


def rate_exp_clamped(x, w, b):
    return ops.exp(ops.clamp(ops.linear(x, w, b), lo=-20.0, hi=20.0))


def log_of_difference(x, y):
    return ops.log(ops.sub(x, y))


def divide_by_norm(x):
    n = ops.sqrt(ops.sum(ops.square(x)))
    return ops.div(x, ops.broadcast_to(n, shape=x.shape))


def divide_by_norm_eps(x):
    n = ops.sqrt(ops.add(ops.sum(ops.square(x)), np.asarray(1e-6, F32)))
    return ops.div(x, ops.broadcast_to(n, shape=x.shape))


def batch_norm_weights(x, rm, rv, g, b):
    return ops.batch_norm_inference(x, rm, rv, g, b)


def mlp_nll(x, w1, b1, w2, b2):
    h = ops.relu(ops.linear(x, w1, b1))
    lp = ops.log_softmax(ops.linear(h, w2, b2))
    return ops.nll_loss(lp, _ONEHOT_3)


def mlp_kl(x, w1, b1):
    lp = ops.log_softmax(ops.linear(x, w1, b1))
    return ops.kl_div(lp, np.full((4, 3), 1 / 3, F32))


def relu_share(x, w, b):
    """h / sum(h) of relu activations: 0 / 0 when every unit is off."""
    h = ops.relu(ops.linear(x, w, b))
    return ops.div(h, ops.broadcast_to(ops.sum(h), shape=h.shape))


def wide_mlp(x, w1, b1, w2, b2):
    """A wider network for scaling (expansion's cost grows with every element)."""
    h = ops.tanh(ops.linear(x, w1, b1))
    z = ops.linear(h, w2, b2)
    return ops.log(ops.sum(ops.exp(z), axis=-1))


# ------------------------------------------------------------------ textbook ----
def naive_logsumexp(x):
    return ops.log(ops.sum(ops.exp(x)))


def inv_one_minus(x):
    return ops.inv(ops.sub(np.ones(x.shape, F32), x))


def expm1_scaled(x):
    return ops.expm1(ops.scale(x, c=100.0))


def log1p_of(x):
    return ops.log1p(x)


def pow_base(x):
    return ops.pow(x, np.full(x.shape, 2.5, F32))


def log_sigmoid_naive(x):
    return ops.log(ops.sigmoid(x))


def sqrt_diff_squares(x, y):
    return ops.sqrt(ops.sub(ops.square(x), ops.square(y)))


# ------------------------------------------------------------------ ablation ----
def affine_cancel(a, b):
    """(a + b) - b is a: intervals alone give [0, 3] for a in [1, 2], b in [0, 1]."""
    return ops.log(ops.sub(ops.add(a, b), b))


def slides_affine(a, b):
    """The slides' z = x + y = 2a (x = a + b, y = a - b), then log(z + 1)."""
    z = ops.add(ops.add(a, b), ops.sub(a, b))
    return ops.log(ops.add(z, np.ones(a.shape, F32)))


_MASK_FIRST = np.array([True, True, False, False])
_SHIFT = np.array([1.0, 1.0, 0.0, 0.0], F32)


def where_guard_partition(n, d):
    """The mask picks d + 1 where the shift is 1, and 1 elsewhere: safe, but only a
    partition that follows the constant's values and the mask sees it."""
    den = ops.where(_MASK_FIRST, ops.add(d, _SHIFT), np.ones(4, F32))
    return ops.div(n, den)


def concat_partition(x, y):
    v = ops.concat(x, y, axis=0)
    return ops.log(ops.where(_MASK_FIRST, v, np.ones(4, F32)))


def concat_bug(x, y):
    return ops.log(ops.concat(x, y, axis=0))


# --------------------------------------------------------------------- cases ----
def _bugzoo_cases():
    P = {p.unsafe.__name__: p for p in B.PAIRS}
    onehot = P["ce_of_softmax"].inputs[1]
    row = np.full((4, 5), -200.0, F32)
    row[:, 0] = 200.0
    cases = [
        Case("bugzoo/ce_of_softmax", B.ce_of_softmax, P["ce_of_softmax"].inputs,
             (lambda: (row, onehot),), "bugzoo"),
        Case("bugzoo/ce_of_logits", B.ce_of_logits, P["ce_of_softmax"].inputs, (), "bugzoo"),
        Case("bugzoo/ce_of_probs", B.ce_of_probs, P["ce_of_probs"].inputs,
             (lambda: (_full((4, 5), 0.0), onehot),), "bugzoo"),
        Case("bugzoo/ce_of_probs_clipped", B.ce_of_probs_clipped, P["ce_of_probs"].inputs,
             (SAFE,), "bugzoo", "probs in [0, 1] is the op's domain"),
        Case("bugzoo/ratio", B.ratio, P["ratio"].inputs,
             (lambda: (_full(6, 1.0), _full(6, 0.0)),), "bugzoo"),
        Case("bugzoo/ratio_safe", B.ratio_safe, P["ratio"].inputs, (SAFE,), "bugzoo",
             "d + eps >= eps > 0 for d in [0, 1]"),
        Case("bugzoo/divide_then_mask", B.divide_then_mask, P["divide_then_mask"].inputs,
             (lambda: P["divide_then_mask"].inputs,), "bugzoo"),
        Case("bugzoo/mask_the_denominator", B.mask_the_denominator,
             P["divide_then_mask"].inputs, (SAFE,), "bugzoo",
             "the masked denominator is 1 where d = 0"),
        Case("bugzoo/bn_eps_outside", B.bn_eps_outside, P["bn_eps_outside"].inputs,
             (lambda: (_jit((8, 4), 1000.8, 0.01),), SAFE), "bugzoo",
             "sqrt(var) + eps >= eps or NaN: never 0"),
        Case("bugzoo/bn_eps_inside", B.bn_eps_inside, P["bn_eps_outside"].inputs, (),
             "bugzoo"),
        Case("bugzoo/running_var_update", B.running_var_update,
             P["running_var_update"].inputs,
             (lambda: (_jit((8, 4), 1000.46, 0.01), _full(4, 0.0)),), "bugzoo"),
        Case("bugzoo/running_var_update_safe", B.running_var_update_safe,
             P["running_var_update"].inputs, (SAFE,), "bugzoo",
             "0.9 rv + 0.1 var + eps with rv >= 0 and the two-pass var >= 0"),
        Case("bugzoo/masked_mean", B.masked_mean, P["masked_mean"].inputs,
             (lambda: (_full(6, 1.0), _full(6, 0.0)),),
             "bugzoo"),
        Case("bugzoo/masked_mean_safe", B.masked_mean_safe, P["masked_mean"].inputs,
             (SAFE,), "bugzoo", "count = 0 is not -eps"),
        Case("bugzoo/attention_weights", B.attention_weights, P["attention_weights"].inputs,
             (), "bugzoo"),
        Case("bugzoo/attention_weights_hard", B.attention_weights_hard,
             P["attention_weights"].inputs, (SAFE, SAFE), "bugzoo",
             "exp of at most 20; each denominator has exp(0) = 1 or is the constant 1"),
        Case("bugzoo/layer_norm_fused", B.layer_norm_fused, P["layer_norm_fused"].inputs,
             (SAFE, SAFE), "bugzoo", "two-pass var >= 0, + 1e-5 > 0"),
        Case("bugzoo/layer_norm_op", B.layer_norm_op, P["layer_norm_fused"].inputs, (),
             "bugzoo"),
        Case("bugzoo/normalise_slice", B.normalise_slice, P["normalise_slice"].inputs,
             (lambda: (_jit((2, 8), 1e4, 0.5),), SAFE), "bugzoo",
             "var is a multiple of 8 (ulp of 1e8 in float32), so var + 1e-6 is never 0"),
        Case("bugzoo/normalise_slice_safe", B.normalise_slice_safe,
             P["normalise_slice"].inputs, (), "bugzoo"),
    ]
    return cases


def _w_ones(shape, v=1.0):
    return _full(shape, v)


def _debar_cases():
    X = Range(-1, 1, (4, 8))
    W, b = Weight((3, 8)), Weight((3,))
    wide = np.zeros((3, 8), F32)
    wide[0], wide[1] = 1.0, -1.0
    return [
        Case("debar/classifier_softmax_log", classifier_log_softmax, (X, W, b), (SAFE,),
             "debar", "logits in [-9, 9]: softmax >= e^-18 / 3"),
        Case("debar/classifier_softmax_log_wide", classifier_log_softmax,
             (Range(-100, 100, (4, 8)), W, b),
             (lambda: (_full((4, 8), 100.0), wide, _full(3, 0.0)),), "debar"),
        Case("debar/rate_exp", rate_exp, (Range(-100, 100, (2, 4)), Weight((2, 4)),
                                          Weight((2,))),
             (lambda: (_full((2, 4), 100.0), _full((2, 4), 1.0), _full(2, 1.0)),), "debar"),
        Case("debar/rate_exp_clamped", rate_exp_clamped,
             (Range(-100, 100, (2, 4)), Weight((2, 4)), Weight((2,))), (SAFE,), "debar",
             "exp of at most 20"),
        Case("debar/log_of_difference", log_of_difference,
             (Range(1, 2, (3,)), Range(0, 1, (3,))),
             (lambda: (_full(3, 1.0), _full(3, 1.0)),), "debar"),
        Case("debar/log_of_difference_safe", log_of_difference,
             (Range(2, 3, (3,)), Range(0, 1, (3,))), (SAFE,), "debar", "x - y >= 1"),
        Case("debar/divide_by_norm", divide_by_norm, (Range(-1, 1, (4,)),),
             (SAFE, lambda: (_full(4, 0.0),)), "debar", "a sum of squares is >= 0"),
        Case("debar/divide_by_norm_eps", divide_by_norm_eps, (Range(-1, 1, (4,)),),
             (SAFE, SAFE), "debar", "sqrt(s + 1e-6) >= 1e-3"),
        Case("debar/batch_norm_weights", batch_norm_weights,
             (Range(-1, 1, (3, 4)), Weight((3,)), Weight((3,)), Weight((3,)), Weight((3,))),
             (lambda: (_full((3, 4), 0.0), _full(3, 0.0), _full(3, -1.0), _full(3, 1.0),
                       _full(3, 0.0)),), "debar"),
        Case("debar/batch_norm_var_range", batch_norm_weights,
             (Range(-1, 1, (3, 4)), Weight((3,)), Weight((3,), 0.0, 1.0), Weight((3,)),
              Weight((3,))), (SAFE,), "debar", "running_var in [0, 1]"),
        Case("debar/mlp_nll", mlp_nll, (X, Weight((6, 8)), Weight((6,)), Weight((3, 6)),
                                        Weight((3,))), (SAFE,), "debar",
             "log_softmax <= 0"),
        Case("debar/mlp_kl", mlp_kl, (X, W, b), (SAFE,), "debar",
             "log_softmax <= 0, uniform targets in [0, 1]"),
        Case("debar/relu_share", relu_share, (Range(-1, 1, (2, 4)), Weight((3, 4)),
                                              Weight((3,))),
             (lambda: (_full((2, 4), 1.0), _full((3, 4), -1.0), _full(3, -1.0)),), "debar"),
        Case("debar/wide_mlp", wide_mlp, (Range(-1, 1, (8, 16)), Weight((32, 16)),
                                          Weight((32,)), Weight((10, 32)), Weight((10,))),
             (SAFE, SAFE), "debar", "tanh in [-1, 1]: logits in [-33, 33], exp >= e^-33"),
    ]


def _textbook_cases():
    return [
        Case("textbook/naive_logsumexp", naive_logsumexp, (Range(-100, 100, (8,)),),
             (lambda: (_full(8, 100.0),), SAFE), "textbook",
             "each exp(x) >= exp(-100) = 3.8e-44 > 0 in float32 (subnormal)"),
        Case("textbook/naive_logsumexp_small", naive_logsumexp, (Range(-50, 50, (8,)),),
             (SAFE, SAFE), "textbook", "|x| <= 50"),
        Case("textbook/inv_one_minus", inv_one_minus, (Range(0, 1, (3,)),),
             (lambda: (_full(3, 1.0),),), "textbook"),
        Case("textbook/expm1_scaled", expm1_scaled, (Range(0, 1, (3,)),),
             (lambda: (_full(3, 1.0),),), "textbook"),
        Case("textbook/log1p", log1p_of, (Range(-1, 1, (3,)),),
             (lambda: (_full(3, -1.0),),), "textbook"),
        Case("textbook/pow_base", pow_base, (Range(0, 1, (3,)),),
             (lambda: (_full(3, 0.0),),), "textbook"),
        Case("textbook/log_sigmoid", log_sigmoid_naive, (Range(-200, 200, (3,)),),
             (lambda: (_full(3, -200.0),),), "textbook"),
        Case("textbook/log_sigmoid_small", log_sigmoid_naive, (Range(-50, 50, (3,)),),
             (SAFE,), "textbook", "sigmoid(-50) = 1.9e-22 > 0"),
        Case("textbook/sqrt_diff_squares", sqrt_diff_squares,
             (Range(2, 3, (3,)), Range(0, 1, (3,))), (SAFE,), "textbook", "x^2 - y^2 >= 3"),
    ]


def _ablation_cases():
    return [
        Case("ablation/affine_cancel", affine_cancel, (Range(1, 2, (3,)), Range(0, 1, (3,))),
             (SAFE,), "ablation", "(a + b) - b >= a (1 - 2u) > 0 in float"),
        Case("ablation/slides_affine", slides_affine, (Range(0, 1, (3,)), Range(1, 2, (3,))),
             (SAFE,), "ablation", "z = fl(a + b) - fl(b - a) >= 0, so z + 1 >= 1"),
        Case("ablation/where_guard_partition", where_guard_partition,
             (Range(-1, 1, (4,)), Range(0, 1, (4,))), (SAFE,), "ablation",
             "the denominator is d + 1 >= 1 or 1"),
        Case("ablation/concat_partition", concat_partition,
             (Range(1, 2, (2,)), Range(-1, 0, (2,))), (SAFE,), "ablation",
             "the mask keeps the x block (>= 1) and puts 1 over the y block"),
        Case("ablation/concat_bug", concat_bug, (Range(1, 2, (2,)), Range(0, 1, (2,))),
             (lambda: (_full(2, 1.0), _full(2, 0.0)),), "ablation"),
    ]


def cases():
    return _bugzoo_cases() + _debar_cases() + _textbook_cases() + _ablation_cases()


# ---------------------------------------------------------------- evaluation ----
def verify_truth(case, report):
    """Check the ground truth against the graph: one entry per op with a zone, and every
    witness inside the ranges puts that op's argument in its zone (float32 run)."""
    from .confirm import hits
    unsafe_ops = [r for r in report.results if r.status in ("unsafe", "safe")]
    if len(unsafe_ops) != len(case.truth):
        raise AssertionError(f"{case.name}: {len(unsafe_ops)} ops with a danger zone "
                             f"({[r.op for r in unsafe_ops]}), ground truth has "
                             f"{len(case.truth)} entries")
    g = report.analysis.graph
    for r, t in zip(unsafe_ops, case.truth):
        if t is SAFE:
            continue
        x = t()
        for a, spec in zip(x, case.inputs):
            if isinstance(spec, (Range, Weight)):
                lo = spec.low if isinstance(spec, Range) else (spec.low if spec.low is not None else -1)
                hi = spec.high if isinstance(spec, Range) else (spec.high if spec.high is not None else 1)
                assert np.all((a >= lo) & (a <= hi)), f"{case.name}: witness outside the box"
        zs = [z for z in _zones_of(report, r)]
        if not any(hits(g, r.node, z, x, "float32") is not None for z in zs):
            raise AssertionError(f"{case.name}: the witness for {r.op} at {r.location} does "
                                 "not reach its danger zone")
    return unsafe_ops


def _zones_of(report, r):
    from . import rules
    node = report.analysis.graph.nodes[r.node]
    like = [np.empty(report.analysis.values[s].shape, np.float32) for s in node.inputs]
    from ..graph import _full_params
    try:
        p = _full_params(node, np.dtype(np.float32), like)
    except Exception:
        p = dict(node.params)
    return rules.zones(node.op, "float32", p)


@dataclass
class Row:
    partition: str
    relations: str
    true_alarms: int = 0
    false_alarms: int = 0
    missed: int = 0
    correct: int = 0
    total: int = 0
    seconds: float = 0.0
    graphs: int = 0
    largest: int = 0        # the most abstract elements (parts) in one graph's values

    @property
    def accuracy(self):
        return self.correct / self.total if self.total else 1.0


def run(configs=CONFIGS, selected=None, confirm=False):
    """Analyse every case under every configuration; (rows, per-case details)."""
    cs = cases()
    if selected:
        cs = [c for c in cs if any(s in c.name for s in selected)]
    rows, details = [], []
    for c in cs:        # warm-up (imports, tracing caches, rule thresholds): not timed
        analyze(c.fn, *c.inputs, weights=c.weights, partition="smash", relations="none",
                confirm=False, **c.params)
    for part, rel in configs:
        row = Row(part, rel)
        for c in cs:
            t0 = time.perf_counter()
            rep = analyze(c.fn, *c.inputs, weights=c.weights, dtype="float32",
                          partition=part, relations=rel, confirm=confirm, **c.params)
            row.seconds += time.perf_counter() - t0
            row.graphs += 1
            row.largest = max(row.largest, rep.parts())
            ops_ = verify_truth(c, rep)
            for r, t in zip(ops_, c.truth):
                bug = t is not SAFE
                alarm = r.status == "unsafe"
                row.total += 1
                row.true_alarms += bug and alarm
                row.false_alarms += (not bug) and alarm
                row.missed += bug and not alarm
                row.correct += bug == alarm
                details.append((part, rel, c.name, r.op, r.location, bug, alarm))
        rows.append(row)
    return rows, details, cs


DEBAR_REPORTED = {("auto", "affine"): "93.0% (12.1 s avg)",
                  ("smash", "affine"): "87.1% (12.2 s avg)",
                  ("auto", "none"): "80.6% (12.1 s avg)",
                  ("expand", "affine"): "33 of 57 > 30 min",
                  ("smash", "none"): "-", ("expand", "none"): "-"}


def table(rows, cs):
    n_ops = rows[0].total if rows else 0
    head = (f"{len(cs)} graphs, {n_ops} ops with a danger zone "
            f"({sum(1 for c in cs for t in c.truth if t is not SAFE)} real bugs)")
    lines = [head, "",
             "| partition | relations | true alarms | false alarms | missed bugs | accuracy "
             "| time (s, all graphs) | largest graph (parts) | DEBAR reported |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.partition} | {r.relations} | {r.true_alarms} | {r.false_alarms} | "
                     f"{r.missed} | {100 * r.accuracy:.1f}% | {r.seconds:.2f} | {r.largest} | "
                     f"{DEBAR_REPORTED[(r.partition, r.relations)]} |")
    return "\n".join(lines)


def main(console_print=print, selected=None):
    rows, details, cs = run(selected=selected)
    console_print(table(rows, cs))
    wrong = [d for d in details if d[0] == "auto" and d[1] == "affine" and d[5] != d[6]]
    if wrong:
        console_print("\nauto + affine, misclassified:")
        for part, rel, name, op, loc, bug, alarm in wrong:
            console_print(f"  {name}: {op} at {loc}: "
                          f"{'missed bug' if bug else 'false alarm'}")
    return 1 if any(r.missed for r in rows) else 0


def scaling(widths=(16, 64, 256), configs=(("auto", "affine"), ("smash", "affine"),
                                          ("expand", "affine"), ("expand", "none")),
            trained=False):
    """Seconds and parts of ``wide_mlp`` (batch 8, in = w, hidden = 2w, 10 classes) per
    configuration: how far expansion scales.  The weights are ranges in DEBAR's [-1, 1],
    or (``trained``) fixed arrays, through which affine forms propagate."""
    out = []
    rng = np.random.default_rng(0)
    for w in widths:
        shapes = ((2 * w, w), (2 * w,), (10, 2 * w), (10,))
        ws = tuple(rng.uniform(-1, 1, s).astype(F32) if trained else Weight(s) for s in shapes)
        inputs = (Range(-1, 1, (8, w)),) + ws
        n = 8 * w + (0 if trained else 2 * w * w + 2 * w + 20 * w + 10)
        row = {"width": w, "input elements": n}
        for part, rel in configs:
            t0 = time.perf_counter()
            rep = analyze(wide_mlp, *inputs, partition=part, relations=rel, confirm=False)
            row[f"{part}+{rel}"] = (time.perf_counter() - t0, rep.parts(),
                                    [r.status for r in rep.results])
        out.append(row)
    return out


def scaling_table(rows):
    cols = [k for k in rows[0] if "+" in k]
    lines = ["| width | abstract input elements | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c][0]:.2f} s, {r[c][1]} parts" for c in cols]
        lines.append(f"| {r['width']} | {r['input elements']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
