"""refrt.analyze: the slides' examples, every unsafe-op rule on positive and negative
cases, the report, confirmation, bad input, the CLI and the benchmark's ground truth."""
from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest

import refrt
from refrt import Range, ops
from refrt.analysis import Weight, analyze
from refrt.analysis import benchmark as B
from refrt.errors import RefrtError

F32 = np.float32


def _an(fn, *inputs, **kw):
    kw.setdefault("confirm", False)
    return analyze(fn, *inputs, **kw)


def _status(rep, op):
    return [r.status for r in rep.results if r.op == op]


# --------------------------------------------------------------- the slides ----
def slides_affine(a, b):
    x = ops.add(a, b)
    y = ops.sub(a, b)
    return ops.add(x, y)


def test_affine_example_z_is_2a():
    box = (Range(0, 1, (3,)), Range(1, 2, (3,)))
    lo, hi = _an(slides_affine, *box).output_range
    # z = x + y = 2a in [0, 2], up to the float32 rounding of three additions
    assert np.all(lo <= 0) and np.all(lo > -1e-5)
    assert np.all(hi >= 2) and np.all(hi < 2 + 1e-5)
    lo, hi = _an(slides_affine, *box, relations="none").output_range
    assert np.all(lo < -1 + 1e-5) and np.all(lo > -1 - 1e-5)    # intervals alone: [-1, 3]
    assert np.all(hi > 3 - 1e-5) and np.all(hi < 3 + 1e-5)


M11 = np.array([[False, False], [False, True]])
M00 = np.array([[True, False], [False, False]])


def slides_2x2(r0, r1):
    A = ops.concat(r0, r1, axis=0)                                 # A = Matrix(2, 2) in [-1, 0]
    A2 = ops.where(M11, np.ones((2, 2), F32), A)                   # A[1][1] = 1
    a11 = ops.sum(ops.where(M11, A2, np.zeros((2, 2), F32)))       # read A[1][1]
    return A2, ops.where(M00, ops.add(A2, ops.broadcast_to(a11, shape=(2, 2))), A2)  # A[0][0] += A[1][1]


def _values(partition):
    rep = _an(slides_2x2, Range(-1, 0, (1, 2)), Range(-1, 0, (1, 2)), partition=partition,
              relations="none")
    (a2lo, a2hi), (a3lo, a3hi) = rep.output_range
    r = lambda v: np.round(v, 5) + 0.0
    return (r(a2lo), r(a2hi)), (r(a3lo), r(a3hi)), rep


def test_2x2_partitioning_example():
    # expansion: the slides' values, element by element
    (lo2, hi2), (lo3, hi3), _ = _values("expand")
    assert lo2.tolist() == [[-1, -1], [-1, 1]] and hi2.tolist() == [[0, 0], [0, 1]]
    assert lo3.tolist() == [[0, -1], [-1, 1]] and hi3.tolist() == [[1, 0], [0, 1]]
    # smashing: one element for the tensor, [-1, 1] after A[1][1] = 1 (the slides');
    # the read of A[1][1] is a masked sum here, so line 3 gives [-5, 5] (the slides'
    # assignment semantics give [-2, 2])
    (lo2, hi2), (lo3, hi3), rep = _values("smash")
    assert np.all(lo2 == -1) and np.all(hi2 == 1)
    assert np.all(lo3 == -5) and np.all(hi3 == 5)
    assert all(t.parts() == 1 for t in rep.analysis.values if t is not None and t.size)
    # partitioning: concat's blocks are the rows (the slides' two parts); the masks of
    # where split them further, so here the result is as precise as expansion
    (lo2, hi2), (lo3, hi3), rep = _values("auto")
    A = rep.analysis.values[rep.analysis.graph.nodes[0].output]
    assert A.labels.tolist() == [[0, 0], [1, 1]]
    assert lo3.tolist() == [[0, -1], [-1, 1]] and hi3.tolist() == [[1, 0], [0, 1]]


# ----------------------------------------------------------------- the rules ----
@pytest.mark.parametrize("fn, unsafe_box, safe_box, op", [
    (lambda x: ops.log(x), (0, 1), (1e-30, 1), "log"),
    (lambda x: ops.log(ops.sub(x, np.full(3, 0.5, F32))), (0.5, 1), (0.75, 1), "log"),
    (lambda x: ops.sqrt(x), (-1e-3, 1), (0, 1), "sqrt"),
    (lambda x: ops.log1p(x), (-1, 0), (-0.5, 0), "log1p"),
    (lambda x: ops.div(np.ones(3, F32), x), (-1, 1), (0.5, 1), "div"),
    (lambda x: ops.inv(x), (0, 1), (1e-3, 1), "inv"),
    (lambda x: ops.exp(x), (0, 88.73), (0, 88.72), "exp"),
    (lambda x: ops.expm1(x), (0, 88.73), (0, 88.72), "expm1"),
    (lambda x: ops.cosh(x), (-89.5, 0), (-89.4, 0), "cosh"),
    (lambda x: ops.pow(x, np.full(3, 2.0, F32)), (0, 1), (0.5, 1), "pow"),
    (lambda x: ops.safe_div(np.ones(3, F32), x), (-1, 0), (0, 1), "safe_div"),
    (lambda x: ops.nll_loss(x, np.eye(3, dtype=F32)), (-1, 1), (-10, 0), "nll_loss"),
    (lambda x: ops.cross_entropy_probs(x, np.eye(3, dtype=F32)), (0, 2), (0, 1),
     "cross_entropy_probs"),
])
def test_each_rule_positive_and_negative(fn, unsafe_box, safe_box, op):
    shape = (3, 3) if op in ("nll_loss", "cross_entropy_probs") else (3,)
    assert _status(_an(fn, Range(*unsafe_box, shape)), op) == ["unsafe"]
    assert _status(_an(fn, Range(*safe_box, shape)), op) == ["safe"]


def test_exp_threshold_is_the_dtypes_exact_limit():
    from refrt.analysis.rules import zones
    t32 = zones("exp", "float32", {})[0].low
    t64 = zones("exp", "float64", {})[0].low
    assert abs(t32 - math.log(float(np.finfo(F32).max))) < 1e-4 and t32 < 88.7229
    assert abs(t64 - math.log(float(np.finfo(np.float64).max))) < 1e-9
    # just below the float64 threshold is safe in float64, unsafe in float32
    box = Range(0, 709.0, (2,), "float64")
    assert _status(_an(ops.exp, box, dtype="float64"), "exp") == ["safe"]
    assert _status(_an(ops.exp, box, dtype="float32"), "exp") == ["unsafe"]


def test_batch_norm_running_variance_weights():
    bn = lambda x, m, v, g, b: ops.batch_norm_inference(x, m, v, g, b)
    x = Range(-1, 1, (3, 4))
    rep = _an(bn, x, Weight((3,)), Weight((3,)), Weight((3,)), Weight((3,)))
    assert _status(rep, "batch_norm_inference") == ["unsafe"]       # DEBAR's [-1, 1]
    rep = _an(bn, x, Weight((3,)), Weight((3,)), Weight((3,)), Weight((3,)),
              weights={"v": (0.0, 2.0)})
    assert _status(rep, "batch_norm_inference") == ["safe"]
    rep = _an(bn, x, Weight((3,)), Weight((3,), 0.0, 1.0), Weight((3,)), Weight((3,)))
    assert _status(rep, "batch_norm_inference") == ["safe"]


def test_underflow_to_zero_reaches_log():
    # softmax of a wide spread underflows to 0 in float32: log's argument reaches 0
    f = lambda z: ops.log(ops.softmax(z))
    assert _status(_an(f, Range(-200, 200, (2, 3))), "log") == ["unsafe"]
    assert _status(_an(f, Range(-20, 20, (2, 3))), "log") == ["safe"]
    g = lambda x: ops.log(ops.exp(x))
    assert _status(_an(g, Range(-110, 0, (2,))), "log") == ["unsafe"]   # e^-110 -> 0
    assert _status(_an(g, Range(-80, 0, (2,))), "log") == ["safe"]


def test_affine_proves_what_intervals_cannot():
    f = lambda a, b: ops.log(ops.sub(ops.add(a, b), b))
    box = (Range(1, 2, (3,)), Range(0, 1, (3,)))
    assert _status(_an(f, *box), "log") == ["safe"]
    assert _status(_an(f, *box, relations="none"), "log") == ["unsafe"]


def test_smashed_mean_is_not_a_relation():
    # x - mean(x) is not 0 for a smashed x: forms over a part's symbol are dropped when
    # positions mix
    f = lambda x: ops.sqrt(ops.sub(x, ops.broadcast_to(ops.mean(x), shape=(4,))))
    for part in ("auto", "smash", "expand"):
        rep = _an(f, Range(0, 1, (4,)), partition=part)
        assert _status(rep, "sqrt") == ["unsafe"], part


def test_partitions_follow_concat_and_where():
    mask = np.array([True, True, False, False])
    f = lambda x, y: ops.log(ops.where(mask, ops.concat(x, y, axis=0), np.ones(4, F32)))
    box = (Range(1, 2, (2,)), Range(-1, 0, (2,)))
    assert _status(_an(f, *box), "log") == ["safe"]
    assert _status(_an(f, *box, partition="expand"), "log") == ["safe"]
    assert _status(_an(f, *box, partition="smash"), "log") == ["unsafe"]


# ---------------------------------------------------------- report, confirm ----
def ratio(x, d):
    return ops.div(x, d)


def test_report_fields_and_confirmed_witness():
    rep = analyze(ratio, Range(-4, 4, (6,)), Range(0, 1, (6,)), budget=0.5)
    assert not rep.ok
    (r,) = rep.results
    assert r.op == "div" and r.status == "unsafe" and r.confirmed
    assert r.location.endswith(f"test_analysis.py:{ratio.__code__.co_firstlineno + 1}")
    assert "division by zero" in r.zone and r.zone_interval == (0.0, 0.0)
    assert "6 of 6" in r.part
    x, d = r.witness
    assert np.any(d == 0) and np.all((d >= 0) & (d <= 1))
    assert r.suggestion == "safe_div(x, y)"
    s = str(rep)
    assert "unsafe (confirmed)" in s and "div" in s and "output range" in s
    d = rep.to_dict()
    json.dumps(d)
    assert d["results"][0]["verdict"] == "unsafe (confirmed)"
    lo, hi = rep.output_range
    assert lo.shape == (6,) and np.all(np.isneginf(lo)) and np.all(np.isposinf(hi))


def test_safe_report_and_scalar_output_range():
    f = lambda x: ops.sum(ops.log(ops.add(ops.square(x), np.ones(3, F32))))
    rep = analyze(f, Range(-2, 2, (3,)))
    assert rep.ok and [r.status for r in rep.results] == ["safe"]
    lo, hi = rep.output_range
    assert isinstance(lo, float) and lo <= 0 <= hi and hi >= 3 * math.log(5)
    assert hi < 3 * math.log(5) + 1e-4


def test_false_alarm_is_qualified_possible():
    # the one-pass variance is a multiple of 8 here, so var + 1e-6 is never 0: the
    # division is safe, but intervals cannot know it; the tester finds no witness
    from refrt.bugzoo import PAIRS, normalise_slice
    pair = next(p for p in PAIRS if p.unsafe is normalise_slice)
    rep = analyze(normalise_slice, *pair.inputs, budget=0.3)
    div = [r for r in rep.results if r.op == "div"][0]
    assert div.status == "unsafe" and div.confirmed is False
    assert "possible" in div.verdict


def test_graph_input_and_weights():
    g = refrt.trace(ratio, np.ones(6, F32), np.ones(6, F32))
    rep = analyze(g, Range(-4, 4, (6,)), Range(0.5, 1, (6,)))
    assert rep.ok
    rep = analyze(g, Range(-4, 4, (6,)), Weight((6,)), budget=0.3)
    assert not rep.ok and rep.results[0].confirmed


def test_point_inputs_are_degenerate_boxes():
    d = np.array([1.0, 2.0, 0.0, 4.0], F32)
    rep = analyze(ratio, np.ones(4, F32), d)
    (r,) = rep.results
    assert r.status == "unsafe" and r.confirmed and r.elements == ((2,),)
    rep = analyze(ratio, np.ones(4, F32), d + 1)
    assert rep.ok


# --------------------------------------------------------------- bad input ----
def test_bad_ranges_and_arguments():
    with pytest.raises(RefrtError, match="low <= high"):
        analyze(ratio, Range(1, 0, (2,)), Range(0, 1, (2,)))
    with pytest.raises(RefrtError, match="nan"):
        analyze(ratio, Range(math.nan, 0, (2,)), Range(0, 1, (2,)))
    with pytest.raises(RefrtError, match="partition"):
        analyze(ratio, Range(0, 1, (2,)), Range(0, 1, (2,)), partition="bogus")
    with pytest.raises(RefrtError, match="relations"):
        analyze(ratio, Range(0, 1, (2,)), Range(0, 1, (2,)), relations="octagon")
    with pytest.raises(RefrtError, match="low <= high"):
        analyze(ratio, Range(0, 1, (2,)), Weight((2,)), weights=(1, -1))
    with pytest.raises(RefrtError, match="no float32 value"):   # refused by Range itself
        analyze(ratio, Range(0.1, 0.1, (2,)), Range(0, 1, (2,)))
    with pytest.raises(TypeError, match="dtype"):
        analyze(ratio, Range(0, 1, (2,)), Range(0, 1, (2,)), dtype="float16")


def test_unbounded_inputs():
    f = lambda x: ops.log(ops.add(ops.abs(x), np.ones(2, F32)))
    rep = analyze(f, Range(-math.inf, math.inf, (2,)), confirm=False)
    assert rep.ok                                   # |x| + 1 >= 1 even for x = +-inf
    g = lambda x: ops.exp(x)
    rep = analyze(g, Range(-math.inf, 0, (2,)), confirm=False)
    assert rep.ok
    rep = analyze(g, Range(0, math.inf, (2,)), confirm=False)
    assert not rep.ok


def test_missing_transformer_is_not_analysed(monkeypatch):
    from refrt.analysis import transfer
    monkeypatch.delitem(transfer.INTERVAL, "tanh")
    f = lambda x: ops.log(ops.add(ops.tanh(x), np.full(2, 2.0, F32)))
    rep = analyze(f, Range(-1, 1, (2,)), confirm=False)
    assert [(r.op, r.status) for r in rep.results] == [("tanh", "not analysed"),
                                                        ("log", "unsafe")]
    assert "not analysed" in str(rep)
    monkeypatch.undo()
    assert analyze(f, Range(-1, 1, (2,)), confirm=False).ok


def test_every_registry_op_has_a_transformer():
    from refrt.analysis.transfer import GATHER, INTERVAL
    from refrt.registry import OPS
    assert sorted(set(OPS) - set(INTERVAL) - set(GATHER)) == []


# --------------------------------------------------------------------- CLI ----
PROG = textwrap.dedent("""
    from refrt import ops

    def rate(x, w, b):
        return ops.exp(ops.linear(x, w, b))

    def clamped(x, w, b):
        return ops.exp(ops.clamp(ops.linear(x, w, b), lo=-20.0, hi=20.0))
""")


def test_cli(tmp_path, capsys):
    from refrt.cli import main
    path = tmp_path / "prog.py"
    path.write_text(PROG)
    out = tmp_path / "r.json"
    rc = main(["analyze", f"{path}:rate", "--range", "x=-100:100:2x4", "--weight", "w=3x4",
               "--weight", "b=3", "--json", str(out), "--budget", "0.3"])
    text = capsys.readouterr().out
    assert rc == 1 and "unsafe (confirmed)" in text and "prog.py:5" in text
    assert json.loads(out.read_text())["results"][0]["op"] == "exp"
    rc = main(["analyze", f"{path}:clamped", "--range", "x=-100:100:2x4", "--weight", "w=3x4",
               "--weight", "b=3"])
    assert rc == 0 and "safe" in capsys.readouterr().out
    rc = main(["analyze", f"{path}:rate", "--range", "x=-1:1:2x4"])
    assert rc == 2 and "need a --range or --weight" in capsys.readouterr().err


# --------------------------------------------------------------- benchmark ----
def test_benchmark_ground_truth_and_partition_affine():
    rows, details, cs = B.run(configs=[("auto", "affine"), ("auto", "none")])
    assert len(cs) >= 30
    names = {c.name for c in cs}
    from refrt.bugzoo import PAIRS
    for p in PAIRS:
        assert f"bugzoo/{p.unsafe.__name__}" in names and f"bugzoo/{p.safe.__name__}" in names
    auto_affine, auto_none = rows
    assert auto_affine.missed == 0 and auto_none.missed == 0
    assert auto_affine.accuracy >= 0.93
    assert auto_affine.false_alarms <= auto_none.false_alarms


def test_benchmark_safe_truths_hold_on_samples():
    """The SAFE ground truths, sampled: no input drawn from the boxes reaches the zone."""
    from refrt.analysis.confirm import hits
    rng = np.random.default_rng(0)
    for c in B.cases():
        rep = analyze(c.fn, *c.inputs, confirm=False)
        ops_ = B.verify_truth(c, rep)
        safe = [r for r, t in zip(ops_, c.truth) if t is B.SAFE]
        if not safe:
            continue
        for _ in range(20):
            xs = []
            for spec in c.inputs:
                if isinstance(spec, (Range, Weight)):
                    lo = spec.low if spec.low is not None else -1.0
                    hi = spec.high if spec.high is not None else 1.0
                    xs.append(rng.uniform(lo, hi, spec.shape).astype(F32))
                else:
                    xs.append(spec)
            for r in safe:
                for z in B._zones_of(rep, r):
                    assert hits(rep.analysis.graph, r.node, z, xs, "float32") is None, c.name


@pytest.mark.analysis_benchmark
def test_benchmark_table_all_configurations():
    rows, _, cs = B.run()
    assert [(r.partition, r.relations) for r in rows] == B.CONFIGS
    assert all(r.missed == 0 for r in rows)
    print(B.table(rows, cs))

