"""refrt.check: every kind on constructed cases, the negatives that must stay clean,
localization, per-element origins, verified suggestions, the search, gradients, the
BugZoo, determinism and bad input."""
import json

import numpy as np
import pytest

import refrt
from refrt import Range, bugzoo, ops
from refrt.errors import RefrtError, RefrtTypeError
from refrt.graph import TraceError

F32, F64 = np.float32, np.float64


def _line(fn, marker):
    import inspect
    lines, start = inspect.getsourcelines(fn)
    return start + next(k for k, l in enumerate(lines) if marker in l)


def _one(report, **want):
    hits = [f for f in report.findings if all(getattr(f, k) == v for k, v in want.items())]
    assert hits, f"no finding with {want} in:\n{report}"
    return hits[0]


# ------------------------------------------------------------------------ kinds ----
def naive_lse(x):
    e = ops.exp(x)                      # exp
    return ops.log(ops.sum(e, axis=-1))


def test_overflow_in_an_intermediate_is_blamed_on_its_line():
    r = refrt.check(naive_lse, np.array([[1000.0, 1000.0]]))
    f = _one(r, kind="overflow")
    assert f.op == "exp" and f.location.endswith(f":{_line(naive_lse, '# exp')}")
    assert f.want == pytest.approx(1000 + np.log(2)) and np.isinf(f.got)
    assert f.suggestion == "logsumexp(x)" and f.verified and f.rewritten_bits <= 1
    assert f.path[0].startswith("%1 = exp") and "log" in f.path[-1]


def ce_softmax(z, t):
    p = ops.softmax(z)                  # softmax
    return ops.neg(ops.mean(ops.sum(ops.mul(t, ops.log(p)), axis=-1)))


def test_underflow_of_log_softmax():
    z = np.array([[0.0, -120.0, 3.0]], F32)
    t = np.array([[0.0, 1.0, 0.0]], F32)
    f = _one(refrt.check(ce_softmax, z, t), kind="underflow")
    assert f.op == "softmax" and f.location.endswith(f":{_line(ce_softmax, '# softmax')}")
    assert f.suggestion.startswith("cross_entropy_logits") and f.verified


def one_pass_var(x):
    return ops.sub(ops.mean(ops.mul(x, x), axis=-1),          # sub
                   ops.square(ops.mean(x, axis=-1)))


def test_cancellation_counts_the_cancelled_bits():
    x = (1e4 + np.random.default_rng(0).random((3, 8))).astype(F32)
    f = _one(refrt.check(one_pass_var, x), kind="cancellation")
    assert f.op == "sub" and f.bits_cancelled >= 20
    assert f.location.endswith(f":{_line(one_pass_var, '# sub')}")


def log_one_plus(x):
    one = np.ones(x.shape, x.dtype)
    return ops.log(ops.add(x, one))     # log


def test_accuracy_loss_and_its_verified_rewrite():
    f = _one(refrt.check(log_one_plus, np.array([1e-10, 3e-12])), kind="accuracy")
    assert f.op == "log" and f.suggestion == "log1p(x)" and f.verified


def sign_by_division(x):
    return ops.div(x, ops.abs(x))       # div


def test_domain_error_is_reported_not_agreed_with():
    f = _one(refrt.check(sign_by_division, np.array([0.0, 2.0], F32)), kind="domain")
    assert f.op == "div" and np.isnan(f.got) and "0" in f.domain
    # the only checked guard (safe_div) changes x / |x| away from 0: no suggestion
    assert f.suggestion == ""


def masked_quotient(n, d):
    keep = np.array([True, True, False, True])
    return ops.sum(ops.where(keep, ops.div(n, d), np.zeros(4, F32)))   # div


def guarded_quotient(n, d):
    keep, one = np.array([True, True, False, True]), np.ones(4, F32)
    return ops.sum(ops.where(keep, ops.div(n, ops.where(keep, d, one)), np.zeros(4, F32)))


def test_gradient_nan_of_divide_then_mask_and_the_safe_form():
    n = np.array([1.0, 2.0, 3.0, 4.0], F32)
    d = np.array([1.0, 2.0, 0.0, 4.0], F32)
    assert refrt.check(masked_quotient, n, d).ok          # the forward is fine
    r = refrt.check(masked_quotient, n, d, grad=True)
    f = _one(r, phase="gradient", kind="nan")
    assert f.op == "div" and f.want == 0.0 and f.element in ((0, 2), (1, 2))
    assert f.location.endswith(f":{_line(masked_quotient, '# div')}")
    assert f.verified and "where" in f.suggestion
    assert refrt.check(guarded_quotient, n, d, grad=True).ok


def test_where_vjp_gives_the_unselected_branch_an_exact_zero():
    c = np.array([True, False])
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx = refrt.grad(lambda a, b: ops.sum(ops.where(c, a, b)), argnums=(0, 1))(x, y)
    assert gx[0].tolist() == [1.0, 0.0] and gx[1].tolist() == [0.0, 1.0]
    assert np.signbit(gx[0][1]) == 0


# -------------------------------------------------------------------- negatives ----
def stable(x):
    return ops.logsumexp(x, axis=-1)


def exact_difference(x, y):
    return ops.sub(x, y)


def masked_inaccuracy(x):
    return ops.mul(np.zeros(x.shape, x.dtype), ops.exp(x))   # exp(-100) loses bits, * 0


def two_pass_var(x):
    d = x.shape[-1]
    dev = ops.sub(x, ops.broadcast_row(ops.mean(x, axis=-1), n=d))
    return ops.mean(ops.square(dev), axis=-1)


@pytest.mark.parametrize("fn, inputs", [
    (stable, (Range(-1000, 1000, (4, 3)),)),
    (exact_difference, (np.array([1.0, 3.0], F32), np.array([1.0 + 2 ** -23, 2.0], F32))),
    (masked_inaccuracy, (np.array([-100.0, -101.0, 2.0], F32),)),
    (two_pass_var, (np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], F32),)),
])
def test_stable_programs_stay_clean(fn, inputs):
    r = refrt.check(fn, *inputs, budget=1.0)
    assert r.ok, str(r)


# --------------------------------------------------------- per element, search ----
def log_exp_minus_one(x):
    one = np.ones(x.shape, x.dtype)
    e = ops.exp(x)                      # exp
    return ops.log(ops.sub(e, one))     # sub


def test_each_failing_element_has_its_own_origin():
    r = refrt.check(log_exp_minus_one, np.array([1000.0, 1e-12, 0.5]))
    over = _one(r, kind="overflow")
    canc = _one(r, kind="cancellation")
    assert over.op == "exp" and over.element == (0,)
    assert canc.op == "sub" and canc.element == (1,) and canc.suggestion == "expm1(x)"
    assert len(r.findings) == 2


def planted(x):
    # fails only where |x - 3.3| < ~3e-15: a few float64 ulps in a box of width 2000
    c = ops.scale(np.ones(x.shape, x.dtype), c=3.3)
    k = ops.scale(ops.sub(x, c), c=7.8e11)
    return ops.log(ops.exp(ops.inv(k)))


def test_search_finds_a_planted_region_a_few_ulps_wide():
    r = refrt.check(planted, Range(-1000, 1000, (1,), "float64"))
    hits = [f for f in r.findings if f.kind in ("overflow", "underflow")]
    assert hits, str(r)
    for f in hits:
        x = float(f.input[0][0])
        ulps = abs(np.float64(x).view(np.int64) - np.float64(3.3).view(np.int64))
        assert 0 < ulps <= 8 and f.op == "exp"
    # at x = 3.3 itself the program divides by an exact 0: a domain error, named as such
    assert all(f.kind == "domain" and f.op == "inv" for f in r.findings if f not in hits)


def test_deterministic_for_a_seed():
    a = refrt.check(naive_lse, Range(-1000, 1000, (4, 3)), seed=3, budget=1.0).to_dict()
    b = refrt.check(naive_lse, Range(-1000, 1000, (4, 3)), seed=3, budget=1.0).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_report_table_json_and_reproducer():
    r = refrt.check(naive_lse, np.array([[1000.0, 1000.0]]))
    text = str(r)
    assert "overflow" in text and "logsumexp(x)" in text
    json.dumps(r.to_dict())
    ns = {}
    exec(r.findings[0].reproducer.replace("print(", "result = (").replace(
        "# naive_lse", "from tests.test_check import naive_lse  #"), ns)
    assert not ns["result"].ok


def test_shrunk_witness_keeps_few_nontrivial_elements():
    r = refrt.check(naive_lse, Range(-1000, 1000, (16, 8)))
    f = _one(r, kind="overflow")
    x = f.input[0]
    assert np.count_nonzero(x) <= 4, x


# ------------------------------------------------------------------- the BugZoo ----
def test_bugzoo_unsafe_flagged_at_their_lines_safe_clean():
    from refrt.tester.zoo import verdicts
    rows = verdicts(bugzoo.run_pairs(budget=1.0))
    assert len(rows) == len(bugzoo.PAIRS) >= 10
    for pair, hit, bad, good, ok_bad, ok_good in rows:
        assert ok_bad, f"{pair.bug_class}: want {pair.kind} at line " \
                       f"{bugzoo.origin_line(pair.unsafe)}, got\n{bad}"
        assert ok_good, f"{pair.bug_class}: safe program flagged\n{good}"


# ------------------------------------------------------------------- bad input ----
@pytest.mark.parametrize("args, err, text", [
    ((5.0, 1.0), RefrtError, "low <= high"),
    ((float("nan"), 1.0), RefrtError, "nan"),
    ((0.0, 1.0, (2,), "int32"), RefrtTypeError, "dtype"),
    ((0.0, 1.0, (-2,)), RefrtError, "shape"),
    ((0.0, 1.0, "ab"), RefrtTypeError, "shape"),
])
def test_bad_ranges(args, err, text):
    with pytest.raises(err, match=text):
        Range(*args)


def test_bad_budget_bits_and_functions():
    x = np.ones(3)
    with pytest.raises(RefrtError, match="budget"):
        refrt.check(stable, x, budget=0)
    with pytest.raises(RefrtError, match="bits"):
        refrt.check(stable, x, bits=-1)
    with pytest.raises(TraceError):
        refrt.check(lambda a: np.exp(a), x)

    def bad_axis(a):
        return ops.softmax(a, axis=3)
    with pytest.raises(ValueError, match="test_check.py"):
        refrt.check(bad_axis, x)


# ------------------------------------------- no false alarms on refrt's own ops ----
def _interior(domain, dtype):
    """A Range box strictly inside an op's domain (poles excluded: log(0) is a domain
    finding, correctly)."""
    tiny = float(np.finfo(dtype).tiny)
    lo = -1e30 if np.isinf(domain.low) else domain.low + (0 if domain.low_inclusive else
                                                            max(tiny, abs(domain.low) * 1e-6))
    hi = 1e30 if np.isinf(domain.high) else domain.high - (0 if domain.high_inclusive else
                                                             max(tiny, abs(domain.high) * 1e-6))
    return lo, hi


SINGLE_OPS = [s for s in refrt.OPS.values() if s.kind in ("unary", "binary", "softmax", "reduction")
              and s.name not in ("pow",)]   # pow(0, y < 0) is a pole on every box edge


@pytest.mark.parametrize("spec", SINGLE_OPS, ids=lambda s: s.name)
def test_refrt_ops_checked_as_programs_raise_no_alarm(spec):
    """refrt.check on a one-node program of each of refrt's own ops, over the interior of
    its domain, at the op's own tolerance: the tester must not report the reference."""
    shape = (6,) if spec.kind in ("unary", "binary") else (3, 5)
    boxes = [Range(*_interior(a.domain, np.float32), shape, "float32") for a in spec.args]

    def program(*xs):
        return getattr(ops, spec.name)(*xs)
    program.__name__ = spec.name
    r = refrt.check(program, *boxes, budget=0.3, bits=max(1.0, float(np.log2(1 + spec.tol.float32))))
    assert r.ok, str(r)


def test_docs_carry_the_pattern_table():
    from pathlib import Path
    from refrt.tester.patterns import markdown
    doc = Path(__file__).resolve().parents[1] / "docs" / "tester.md"
    if not doc.exists():
        pytest.skip("docs/ is not installed with the package")
    assert markdown() in doc.read_text(), "docs/tester.md is stale: python -m refrt.tester.patterns"


# ------------------------------------------------------ robustness on random programs ----
_UNARY = [s.name for s in refrt.OPS.values() if s.kind == "unary"]
_BINARY = [s.name for s in refrt.OPS.values() if s.kind == "binary" and s.args[1].role == "float"]
_ROWS = ["sum", "mean", "softmax", "log_softmax", "logsumexp", "amax", "var"]


def _random_program(rng):
    steps = []
    for _ in range(int(rng.integers(1, 6))):
        r = rng.random()
        pool = _UNARY if r < 0.45 else _BINARY if r < 0.85 else _ROWS
        steps.append((pool, pool[int(rng.integers(len(pool)))]))

    def program(x, y):
        v = x
        for pool, name in steps:
            f = getattr(ops, name)
            if pool is _UNARY:
                v = f(v)
            elif pool is _BINARY:
                v = f(v, y) if v.shape == y.shape else f(v, v)
            elif v.ndim:
                v = f(v, axis=-1)
        return v if v is not x else ops.neg(x)
    return program, steps


@pytest.mark.parametrize("case", range(24))
def test_random_programs_never_crash_the_tester(case):
    """Random compositions of registry ops on random boxes: a report (or a clear refrt
    error), never a crash; the report is a table and JSON."""
    rng = np.random.default_rng(1000 + case)
    program, steps = _random_program(rng)
    dt = ("float32", "float64")[case % 2]
    shape = [(3,), (2, 3), ()][case % 3]
    lo = float(rng.choice([-1e30, -100.0, -1.0, 0.0, 1e-3]))
    hi = lo + float(rng.choice([1.0, 100.0, 1e30]))
    r = refrt.check(program, Range(lo, hi, shape, dt), Range(-2.0, 2.0, shape, dt),
                    budget=0.1, grad=shape == () and case % 4 == 0)
    json.dumps(r.to_dict())
    assert str(r).startswith("refrt.check(program)")
    for f in r.findings:
        assert f.kind in refrt.tester.KINDS and f.location and f.input


def test_point_boxes():
    """A box of one value is sampled as that value; a box with no float in it is an error."""
    assert refrt.check(lambda x: ops.exp(x), Range(0, 0, (3,)), budget=0.2).ok
    f = refrt.check(lambda x: ops.log(x), Range(0, 0, (3,)), budget=0.2).findings[0]
    assert f.kind == "domain" and f.op == "log"
    with pytest.raises(RefrtError, match="no float32 value"):
        Range(-0.001, -0.001, (3,))
