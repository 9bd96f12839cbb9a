"""Suggestions: patterns over the traced graph, each with a rewrite and an explanation.

The table is data.  A template is a nested tuple ``(op, child, ...)``: ``op`` may list
alternatives (``"square|mul"``) and name the node it matches (``"sum@s"``); a child is
another template or a leaf: a name that binds a value (the same name twice must bind
the same value), ``"ONE"`` (a constant array of ones), ``"EPS@e"`` (a constant array of
one small positive value, bound as ``e``) or ``"*"`` (anything).  ``add`` and ``mul``
match in either order.

``semantics`` is ``"same"`` when the rewrite computes the same real function (only the
rounding changes), ``"guarded"`` when it changes the value on purpose (an eps, a clip, a
guard before a division); a guarded rewrite is accepted on a witness only where the
original program's exact value is undefined or within the bits threshold of the
rewritten program's exact value.  The tester applies a rewrite to the graph and
re-checks the witness (``refrt.tester.check``); nothing unverified is printed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

COMMUTATIVE = ("add", "mul")


@dataclass(frozen=True)
class Pattern:
    name: str
    template: tuple
    rewrite: Callable          # (builder, bindings, nodes) -> new slot for the root
    suggestion: str            # what to write instead, for the user
    explanation: str
    semantics: str = "same"
    # whether the pattern answers this finding at all (a clip answers a log of an exact
    # 0, not a log of a negative number)
    when: Callable = None

    def answers(self, finding) -> bool:
        return self.when is None or bool(self.when(finding))


# ----------------------------------------------------------------------- matching ----
def _producer(graph):
    return {n.output: n for n in graph.nodes}


def _is_const(graph, slot, pred):
    c = graph.constants.get(slot)
    return c is not None and c.dtype.kind == "f" and c.size > 0 and bool(pred(c))


def _leaf(graph, slot, leaf, bind):
    name, _, alias = leaf.partition("@")
    if name == "*":
        return True
    if name == "ONE":
        return _is_const(graph, slot, lambda c: np.all(c == 1))
    if name == "NEGINF":
        return _is_const(graph, slot, lambda c: np.all(c == -np.inf))
    if name == "EPS":
        ok = _is_const(graph, slot, lambda c: np.all(c == c.ravel()[0]) and 0 < c.ravel()[0] < 1e-2)
        if ok and alias:
            bind[alias] = slot
        return ok
    if name in bind:
        return bind[name] == slot
    bind[name] = slot
    return True


def _match(graph, prod, slot, tpl, bind, nodes):
    if isinstance(tpl, str):
        return _leaf(graph, slot, tpl, bind)
    if isinstance(tpl, list):          # alternatives
        for alt in tpl:
            b, n = dict(bind), dict(nodes)
            if _match(graph, prod, slot, alt, b, n):
                bind.clear(); bind.update(b)
                nodes.clear(); nodes.update(n)
                return True
        return False
    head, *children = tpl
    ops, _, alias = head.partition("@")
    node = prod.get(slot)
    if node is None or node.op not in ops.split("|") or len(node.inputs) != len(children):
        return False
    orders = [node.inputs]
    if node.op in COMMUTATIVE:
        orders.append(tuple(reversed(node.inputs)))
    for ins in orders:
        b, n = dict(bind), dict(nodes)
        if all(_match(graph, prod, s, c, b, n) for s, c in zip(ins, children)):
            if alias:
                n[alias] = node
            n.setdefault("_all", [])
            n["_all"] = n["_all"] + [node]
            bind.clear(); bind.update(b)
            nodes.clear(); nodes.update(n)
            return True
    return False


def matches(graph):
    """Every (pattern, root node, bindings, matched nodes) in table order."""
    prod = _producer(graph)
    found = []
    for pat in PATTERNS:
        for node in graph.nodes:
            bind, nodes = {}, {}
            if _match(graph, prod, node.output, pat.template, bind, nodes):
                found.append((pat, node, bind, nodes))
    return found


# ----------------------------------------------------------------------- rewrites ----
def _axis(node, default=-1):
    full = next(iter(node._full.values()), node.params)
    return full.get("axis", node.params.get("axis", default))


def _last_axis(node):
    a = _axis(node)
    nd = len(node.shape) + 1 if node.op in ("sum", "mean") else len(node.shape)
    return a is not None and a in (-1, nd - 1)


def _rw_log_softmax(b, v, n):
    return b.op("log_softmax", v["x"], axis=_axis(n["sm"]))


def _rw_cross_entropy(b, v, n):
    return b.op("cross_entropy_logits", v["z"], v["t"])


def _rw_logsumexp(b, v, n):
    return b.op("logsumexp", v["x"], axis=_axis(n["s"], None))


def _rw_softmax(b, v, n):
    return b.op("softmax", v["x"], axis=-1)


def _unary(op):
    return lambda b, v, n: b.op(op, v["x"])


def _rw_var(b, v, n):
    return b.op("var", v["x"], axis=_axis(n["m1"], None))


def _rw_eps_inside(b, v, n):
    return b.op("sqrt", b.op("add", v["v"], v["e"]))


def _rw_log_sigmoid(b, v, n):
    return b.op("neg", b.op("softplus", b.op("neg", v["x"])))


def _rw_log_one_minus_sigmoid(b, v, n):
    return b.op("neg", b.op("softplus", v["x"]))


def _rw_bce(b, v, n):
    return b.op("bce_with_logits", v["x"], v["t"])


def _rw_hard_mask(b, v, n):
    # TorchLean hardMaskedSoftmax: blocked entries exactly 0, a fully blocked row the zero
    # vector; the mask is data (a constant), so "does the row allow anything" is too
    mask = b.g.constants[v["c"]].astype(bool)
    if _axis(n["sm"]) not in (-1, mask.ndim - 1) or mask.ndim != 2:
        raise ValueError("hard mask rewrite: 2-d rows only")
    rows = mask.any(-1)
    m, k = mask.shape
    cond, rows_c = b.const_bool(mask), b.const_bool(rows)
    zeros, zrow, orow = b.full_like(v["s"], 0.0), b.const(np.zeros(m)), b.const(np.ones(m))
    top = b.op("amax", b.op("where", cond, v["s"], b.full_like(v["s"], -np.inf)), axis=-1)
    shift = b.op("where", rows_c, top, zrow)
    e = b.op("where", cond, b.op("exp", b.op("sub", v["s"], b.op("broadcast_row", shift, n=k))),
             zeros)
    den = b.op("where", rows_c, b.op("sum", e, axis=-1), orow)
    return b.op("div", e, b.op("broadcast_row", den, n=k))


def _rw_mask_safe_div(b, v, n):
    return b.op("mul", v["m"], b.op("safe_div", v["n"], v["d"]))


def _rw_where_denominator(b, v, n):
    ones = b.full_like(v["d"], 1.0)
    return b.op("where", v["c"], b.op("div", v["n"], b.op("where", v["c"], v["d"], ones)),
                v["z"])


def _rw_safe_div(b, v, n):
    return b.op("safe_div", v["n"], v["d"])


def _rw_clip_log(b, v, n):
    eps = float(np.finfo(b.dtype).tiny)
    return b.op("log", b.op("clamp", v["p"], lo=eps, hi=float(np.finfo(b.dtype).max)))


def _rw_hypot(b, v, n):
    # sqrt(x^2 + y^2) = m sqrt((x/m)^2 + (y/m)^2) with m = max(|x|, |y|) (0 where both are)
    ax, ay = b.op("abs", v["x"]), b.op("abs", v["y"])
    m = b.op("maximum", ax, ay)
    mm = b.op("maximum", m, b.full_like(v["x"], float(np.finfo(b.dtype).tiny)))
    rx, ry = b.op("div", ax, mm), b.op("div", ay, mm)
    return b.op("mul", m, b.op("sqrt", b.op("add", b.op("square", rx), b.op("square", ry))))



def _zero_denominator(f):
    return f.phase == "gradient" or (f.kind == "domain" and "division by zero" in f.domain)


def _log_of_zero(f):
    return f.kind == "domain" and f.op == "log" and "= 0 outside" in f.domain


def SQ(v):
    """v^2 written as square(v) or mul(v, v)."""
    return [("square", v), ("mul", v, v)]


PATTERNS = [
    Pattern("cross_entropy_logits",
            ("neg", ("mean", ("sum", ("mul", "t", ("log", ("softmax@sm", "z")))))),
            _rw_cross_entropy, "cross_entropy_logits(logits, target)",
            "-mean(sum(t * log(softmax(z)))) is cross entropy on logits: log(softmax(z)) is "
            "-inf once a probability underflows, and cross_entropy_logits works from "
            "log_softmax (z - max - log(sum(exp(z - max)))) without forming it"),
    Pattern("log_softmax", ("log", ("softmax@sm", "x")), _rw_log_softmax,
            "log_softmax(x)",
            "log(softmax(x)) is -inf where a probability underflows (e^-104 is 0 in float32); "
            "log_softmax = x - max - log(sum(exp(x - max))) never forms the probability"),
    Pattern("logsumexp", ("log", ("sum@s", ("exp", "x"))), _rw_logsumexp, "logsumexp(x)",
            "log(sum(exp(x))) overflows once x > 88 (float32) / 709 (float64); logsumexp "
            "shifts by the maximum first"),
    Pattern("softplus", ("log", ("add", ("exp", "x"), "ONE")), _unary("softplus"),
            "softplus(x)", "log(1 + exp(x)) overflows for large x and loses x's bits for "
            "very negative x; softplus = max(x, 0) + log1p(exp(-|x|))"),
    Pattern("softplus_log1p", ("log1p", ("exp", "x")), _unary("softplus"), "softplus(x)",
            "log1p(exp(x)) overflows for large x; softplus = max(x, 0) + log1p(exp(-|x|))"),
    Pattern("softmax", ("div", ("exp", "x"), ("broadcast_row|broadcast_to", ("sum", ("exp", "x")))),
            _rw_softmax, "softmax(x)",
            "exp(x) / sum(exp(x)) overflows (inf / inf = NaN) once x > 88 (float32); softmax "
            "subtracts the row maximum first"),
    Pattern("sigmoid", ("div", "ONE", ("add", "ONE", ("exp", ("neg", "x")))),
            _unary("sigmoid"), "sigmoid(x)",
            "1 / (1 + exp(-x)) overflows in exp(-x) for x < -88 (float32); sigmoid uses "
            "exp(-|x|) on the side where it cannot overflow"),
    Pattern("sigmoid_inv", ("inv", ("add", "ONE", ("exp", ("neg", "x")))), _unary("sigmoid"),
            "sigmoid(x)", "1 / (1 + exp(-x)) overflows in exp(-x); use sigmoid"),
    Pattern("expm1", ("sub", ("exp", "x"), "ONE"), _unary("expm1"), "expm1(x)",
            "exp(x) - 1 cancels for |x| << 1 (all bits of x are lost below eps); expm1 "
            "evaluates it directly"),
    Pattern("log1p", ("log", ("add", "x", "ONE")), _unary("log1p"), "log1p(x)",
            "log(1 + x) rounds 1 + x first and loses x's bits for |x| << 1; log1p does not"),
    Pattern("var", ("sub", ("mean@m1", SQ("x")), [("square", ("mean@m2", "x")),
                                                   ("mul", ("mean@m2", "x"), ("mean", "x"))]),
            _rw_var, "var(x)",
            "E[x^2] - E[x]^2 cancels catastrophically when the mean is large against the "
            "spread (it can even go negative); var computes the two-pass, shifted form"),
    Pattern("bce_with_logits_textbook",
            ("neg", ("mean", ("add", ("mul", "t", ("log", ("sigmoid", "x"))),
                              ("mul", ("sub", "ONE", "t"),
                               ("log", ("sub", "ONE", ("sigmoid", "x"))))))),
            _rw_bce, "bce_with_logits(x, target)",
            "-(t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x))) is BCE on probabilities: "
            "log(1 - sigmoid(x)) is -inf once sigmoid(x) rounds to 1 (x > 17 in float32); "
            "bce_with_logits = softplus(x) - t x never forms the probability"),
    Pattern("bce_with_logits", ("binary_cross_entropy", ("sigmoid", "x"), "t"), _rw_bce,
            "bce_with_logits(x, target)",
            "BCE on sigmoid probabilities loses everything once sigmoid(x) rounds to 1 or 0; "
            "bce_with_logits works from the logits (softplus form)"),
    Pattern("log_sigmoid", ("log", ("sigmoid", "x")), _rw_log_sigmoid, "-softplus(-x)",
            "log(sigmoid(x)) is -inf once sigmoid(x) underflows; log(sigmoid(x)) = "
            "-softplus(-x) exactly (bce_with_logits for a loss)"),
    Pattern("log_one_minus_sigmoid", ("log", ("sub", "ONE", ("sigmoid", "x"))),
            _rw_log_one_minus_sigmoid, "-softplus(x)",
            "log(1 - sigmoid(x)) is -inf once sigmoid(x) rounds to 1 (x > 17 in float32); "
            "it equals -softplus(x) exactly (bce_with_logits for a loss)"),
    Pattern("hard_masked_softmax", ("softmax@sm", ("where", "c", "s", "NEGINF")), _rw_hard_mask,
            "the hard-masked softmax: where(mask, exp(s - max over allowed), 0) / row sum, "
            "0 on a fully blocked row",
            "softmax of a row whose every entry is -inf is 0/0 = NaN (a fully masked "
            "attention row, pytorch#160064); the hard mask gives blocked entries exactly 0 "
            "and a fully blocked row the zero vector (TorchLean hardMaskedSoftmax)",
            semantics="guarded"),
    Pattern("hypot", ("sqrt", ("add", SQ("x"), SQ("y"))), _rw_hypot,
            "m * sqrt((x/m)^2 + (y/m)^2) with m = max(|x|, |y|)",
            "x^2 + y^2 overflows for |x| > 1.8e19 (float32) / 1.3e154 (float64) although "
            "the norm is finite; scale by the larger magnitude first"),
    Pattern("eps_inside_sqrt", ("add", ("sqrt", "v"), "EPS@e"), _rw_eps_inside,
            "sqrt(var + eps)",
            "eps belongs inside the square root (BatchNorm/LayerNorm: (x - mean) / "
            "sqrt(var + eps)); outside, a variance that cancels to a small negative gives NaN",
            semantics="guarded"),
    Pattern("where_on_denominator", ("where", "c", ("div", "n", "d"), "z"),
            _rw_where_denominator, "where(cond, x / where(cond, y, 1), 0)",
            "masking after the division keeps the division in the graph: its gradient is "
            "0 * (1/0) = NaN at the masked entries; guard the denominator first",
            semantics="guarded"),
    Pattern("mask_then_safe_div", ("mul", "m", ("div", "n", "d")), _rw_mask_safe_div,
            "mask * safe_div(x, y)",
            "mask * (x / y) still evaluates x / 0 at the masked entries (0 * inf = NaN); "
            "divide with safe_div (y + eps) and mask the result (TorchLean maskAfterSafeDiv)",
            semantics="guarded", when=_zero_denominator),
    Pattern("safe_div", ("div", "n", "d"), _rw_safe_div, "safe_div(x, y)",
            "a denominator that is 0 (an empty reduction, a zero count) makes 0/0 = NaN; "
            "safe_div divides by y + eps (TorchLean safeMaskedMean total / (n + eps))",
            semantics="guarded", when=_zero_denominator),
    Pattern("clip_before_log", ("log", "p"), _rw_clip_log, "log(clamp(p, tiny, max))",
            "a probability that is exactly 0 makes log(p) = -inf; clip it before the log "
            "(cross_entropy_probs clips at eps)", semantics="guarded", when=_log_of_zero),
]


def _show(t):
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        return " | ".join(_show(a) for a in t)
    head, *children = t
    return f"{head.split('@')[0]}({', '.join(_show(c) for c in children)})"


def markdown() -> str:
    """The pattern table as markdown (docs/tester.md carries it; ``python -m
    refrt.tester.patterns`` prints it)."""
    rows = ["| pattern | matches | rewrite | semantics |", "|---|---|---|---|"]
    for p in PATTERNS:
        rows.append(f"| `{p.name}` | `{_show(p.template)}` | {p.suggestion} | {p.semantics} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
