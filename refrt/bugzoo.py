"""The BugZoo: textbook formulations that fail numerically, measured against the oracle
next to refrt's stable op (TorchLean's BugZoo, seeds 000-002).

Each case runs the unstable NumPy formulation and the refrt op on the same float inputs,
compares both with the certified oracle in the inputs' dtype, and classifies the failure:
overflow, underflow, NaN from a domain error, or bits lost to cancellation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import ops
from .metrics import bits_error
from .registry import OPS


@dataclass(frozen=True)
class ZooCase:
    name: str
    op: str                     # the registry op that is the stable alternative
    naive: Callable             # the textbook NumPy formulation
    inputs: Callable            # () -> (arrays, params)
    dtype: str


LOST_BITS = 4.0   # more than 4 bits (15 ulp) of error counts as a loss


def classify(got, want, bits=0.0, precision=53) -> str:
    """Failure class of one textbook result against the exact value, in words."""
    if np.isnan(got) and not np.isnan(want):
        return "NaN (inf/inf, inf - inf or log 0)"
    if np.isinf(got) and np.isfinite(want):
        return "overflow to inf"
    if got == 0 and want != 0 and np.isfinite(want):
        return "underflow to 0"
    if not np.isnan(want) and bits > LOST_BITS:
        return f"{bits:.0f} of {precision} bits lost"
    return "accurate"


def _with_errstate(fn):
    def run(*a, **k):
        with np.errstate(all="ignore"):
            return fn(*a, **k)
    return run


def _logits(dtype, spread):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)) * 2
    x[:, 0] += spread
    return x.astype(dtype)


def _naive_log_softmax(x):
    e = np.exp(x)
    return np.log(e / e.sum(axis=-1, keepdims=True))


def _naive_ce(x, t):
    p = np.exp(x - x.max(axis=-1, keepdims=True))
    p = p / p.sum(axis=-1, keepdims=True)
    return -(t * np.log(p)).sum() / x.shape[0]


def _naive_bce_probs(x, t):
    p = 1 / (1 + np.exp(-x))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()


def _naive_bn(x, mean, var, gamma, beta):
    eps = x.dtype.type(1e-6)
    c = (slice(None),) + (None,) * (x.ndim - 1)
    return (x - mean[c]) / (np.sqrt(var[c]) + eps) * gamma[c] + beta[c]


def _one_hot(n_rows, n, dtype, col=1):
    t = np.zeros((n_rows, n), dtype=dtype)
    t[:, col] = 1
    return t


def _bn_inputs(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8)).astype(dtype) * dtype.type(1e-3)
    stats = [np.zeros(3, dtype), np.full(3, 1e-6, dtype), np.ones(3, dtype), np.zeros(3, dtype)]
    return [x] + stats, {}


CASES = [
    ZooCase("log(softmax(x)), logits spread 120", "log_softmax", _naive_log_softmax,
            lambda dt: ([_logits(dt, 120.0)], {}), "float32"),
    ZooCase("-sum(t * log(softmax(z))), a wrong class 150 below", "cross_entropy_logits",
            _naive_ce, lambda dt: ([_logits(dt, 150.0), _one_hot(4, 6, dt)], {}), "float32"),
    ZooCase("BCE on sigmoid(x) probabilities, x = 20", "bce_with_logits", _naive_bce_probs,
            lambda dt: ([np.full((2, 3), 20.0, dt), np.zeros((2, 3), dt)], {}), "float32"),
    ZooCase("log(1 + exp(x)), x = 100", "softplus", lambda x: np.log(1 + np.exp(x)),
            lambda dt: ([np.array([100.0, -30.0], dt)], {}), "float32"),
    ZooCase("log(sum(exp(x))), x = [1000, 1000]", "logsumexp",
            lambda x: np.log(np.exp(x).sum(axis=-1)),
            lambda dt: ([np.array([[1000.0, 1000.0]], dt)], {}), "float64"),
    ZooCase("1 / (1 + exp(-x)), x = -100", "sigmoid", lambda x: 1 / (1 + np.exp(-x)),
            lambda dt: ([np.array([-100.0], dt)], {}), "float32"),
    ZooCase("BatchNorm with eps outside the sqrt, var = 1e-6", "batch_norm_inference",
            _naive_bn, _bn_inputs, "float32"),
    ZooCase("exp(x) - 1, x = 1e-10", "expm1", lambda x: np.exp(x) - 1,
            lambda dt: ([np.array([1e-10], dt)], {}), "float64"),
]


@dataclass
class ZooResult:
    case: ZooCase
    naive_bits: float
    refrt_bits: float
    naive_class: str
    naive_value: float
    refrt_value: float
    want: float


def run_case(case: ZooCase) -> ZooResult:
    from .oracle import evaluate as certified
    dt = np.dtype(case.dtype)
    arrays, params = case.inputs(dt)
    want = np.asarray(certified(case.op, *arrays, dtype=dt, on_undecided="nan", **params))
    naive = np.asarray(_with_errstate(case.naive)(*arrays), dtype=dt).reshape(want.shape)
    good = np.asarray(_with_errstate(ops.evaluate)(case.op, *arrays, **params))
    nb = bits_error(naive, want, dt)
    rb = bits_error(good, want, dt)
    i = int(np.argmax(nb)) if nb.ndim else 0
    pick = (lambda a: float(a.ravel()[i])) if nb.ndim else float
    prec = {"float32": 24, "float64": 53}[dt.name]
    return ZooResult(case, float(np.max(nb)), float(np.max(rb)),
                     classify(pick(naive), pick(want), float(np.max(nb)), prec),
                     pick(naive), pick(good), pick(want))


def run_all():
    return [run_case(c) for c in CASES]


def stable_alternative(op: str) -> str:
    spec = OPS[op]
    return spec.stable_alternative or f"refrt.ops.{op}"


# --------------------------------------------------------------------------------------
# TorchLean's numerical BugZoo as unsafe/safe pairs of programs written with refrt ops
# (catalog §3).  ``refrt zoo`` and tests/test_check.py run ``refrt.check`` on each: the
# unsafe program must be flagged with ``kind`` at the line marked ``# origin``, the safe
# one must come back clean.
# --------------------------------------------------------------------------------------
from .tester import Range  # noqa: E402

F32 = np.float32
_ONE_HOT = np.eye(5, dtype=F32)[[0, 1, 2, 3]]
_ATT_MASK = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], bool)   # row 2 fully blocked
_ATT_ROWS = np.broadcast_to(_ATT_MASK.any(-1, keepdims=True), _ATT_MASK.shape).copy()
_KEEP = np.array([True, True, False, True])


def ce_of_softmax(z, t):
    """StableLoss (TensorFuzz, ICML'19): cross entropy as -sum(t * log(softmax(z)))."""
    p = ops.softmax(z)                                                # origin
    return ops.neg(ops.mean(ops.sum(ops.mul(t, ops.log(p)), axis=-1)))


def ce_of_logits(z, t):
    """StableLoss, safe: crossEntropyLogitsSpec works from log_softmax."""
    return ops.cross_entropy_logits(z, t)


def ce_of_probs(p, t):
    """StableLoss (Wang et al., ASE'22): probability cross entropy without the clip."""
    logp = ops.log(p)                                                 # origin
    return ops.neg(ops.mean(ops.sum(ops.mul(t, logp), axis=-1)))


def ce_of_probs_clipped(p, t):
    """StableLoss, safe: crossEntropyProbabilities clips before the log."""
    return ops.cross_entropy_probs(p, t)


def ratio(x, d):
    """StableLoss: an unprotected division x / denom."""
    return ops.div(x, d)                                              # origin


def ratio_safe(x, d):
    """StableLoss, safe: safedivSpec = x / (denom + eps)."""
    return ops.safe_div(x, d)


def divide_then_mask(n, d):
    """AutogradDomain (PyTorch autograd notes, division by zero): mask after dividing."""
    zero = np.zeros(n.shape, n.dtype)
    return ops.sum(ops.where(_KEEP, ops.div(n, d), zero))            # origin


def mask_the_denominator(n, d):
    """AutogradDomain, safe: the guard is on the denominator, before the division."""
    zero, one = np.zeros(n.shape, n.dtype), np.ones(n.shape, n.dtype)
    return ops.sum(ops.where(_KEEP, ops.div(n, ops.where(_KEEP, d, one)), zero))


def _batch_stats_one_pass(x):
    mean = ops.mean(x, axis=0)
    var = ops.sub(ops.mean(ops.mul(x, x), axis=0), ops.square(mean))  # origin
    return mean, var


def bn_eps_outside(x):
    """NormalizationState (CRADLE, ICSE'19): batch statistics by E[x^2] - E[x]^2 and eps
    outside the square root, wrongEpsilonOutsideSqrt."""
    mean, var = _batch_stats_one_pass(x)
    n = x.shape[0]
    eps = np.full(mean.shape, 1e-6, x.dtype)
    den = ops.add(ops.sqrt(var), eps)
    return ops.div(ops.sub(x, ops.broadcast_col(mean, m=n)), ops.broadcast_col(den, m=n))


def bn_eps_inside(x):
    """NormalizationState, safe: correctEpsilonInsideSqrt with the batch statistics of
    layer_norm (two-pass, and x - mean formed against the unrounded mean: a float mean
    subtracted from x costs log2(|mean| / std) bits) over the batch axis."""
    n = x.shape[0]
    y = ops.layer_norm(ops.transpose(x), np.ones(n, x.dtype), np.zeros(n, x.dtype))
    return ops.transpose(y)


def running_var_update(x, running_var):
    """NormalizationState (LEMON, ISSTA'20), with RunningStats as explicit state: the
    running variance updated from a one-pass E[x^2] - E[x]^2, then used."""
    _, var = _batch_stats_one_pass(x)
    m = 0.1
    new = ops.add(ops.scale(running_var, c=1 - m), ops.scale(var, c=m))
    eps = np.full(var.shape, 1e-6, x.dtype)
    return ops.sqrt(ops.add(new, eps))


def running_var_update_safe(x, running_var):
    """NormalizationState, safe: the update from the two-pass variance."""
    m = 0.1
    new = ops.add(ops.scale(running_var, c=1 - m), ops.scale(ops.var(x, axis=0), c=m))
    eps = np.full(running_var.shape, 1e-6, x.dtype)
    return ops.sqrt(ops.add(new, eps))


def masked_mean(loss, active):
    """IgnoredLabelLoss (pytorch#75181): mean over the active labels; every label
    ignored gives 0 / 0."""
    total = ops.sum(ops.mul(active, loss))
    return ops.div(total, ops.sum(active))                           # origin


def masked_mean_safe(loss, active):
    """IgnoredLabelLoss, safe: safeMaskedMean = total / (count + eps)."""
    return ops.safe_div(ops.sum(ops.mul(active, loss)), ops.sum(active))


def attention_weights(scores):
    """AttentionMask (pytorch#160064): -inf fill, then softmax; a fully blocked row
    is 0 / 0."""
    blocked = np.full(scores.shape, -np.inf, scores.dtype)
    return ops.softmax(ops.where(_ATT_MASK, scores, blocked))        # origin


def attention_weights_hard(scores):
    """AttentionMask, safe: hardMaskedSoftmax (blocked entries exactly 0, a fully blocked
    row the zero vector), every guard before the op it protects."""
    z, one = np.zeros(scores.shape, scores.dtype), np.ones(scores.shape[:1], scores.dtype)
    n = scores.shape[1]
    top = ops.amax(ops.where(_ATT_MASK, scores, np.full(scores.shape, -np.inf, scores.dtype)),
                   axis=-1)
    shift = ops.where(_ATT_ROWS[:, 0], top, np.zeros(scores.shape[:1], scores.dtype))
    e = ops.where(_ATT_MASK, ops.exp(ops.sub(scores, ops.broadcast_row(shift, n=n))), z)
    den = ops.where(_ATT_ROWS[:, 0], ops.sum(e, axis=-1), one)
    return ops.div(e, ops.broadcast_row(den, n=n))


def layer_norm_fused(x):
    """LayerNormDegenerateAxis (normalized_shape (1,), x = 1e6, eps = 1e-5): the fused
    scale/shift form backends use, y = x * scale + (beta - mean * scale)."""
    gamma, beta = np.full(x.shape, 2.0, x.dtype), np.full(x.shape, 3.0, x.dtype)
    d = x.shape[-1]
    mean = ops.broadcast_row(ops.mean(x, axis=-1), n=d)
    var = ops.broadcast_row(ops.var(x, axis=-1), n=d)
    scale = ops.mul(gamma, ops.inv(ops.sqrt(ops.add(var, np.full(x.shape, 1e-5, x.dtype)))))
    shift = ops.sub(beta, ops.mul(mean, scale))
    return ops.add(ops.mul(x, scale), shift)                          # origin


def layer_norm_op(x):
    """LayerNormDegenerateAxis, safe: layer_norm gives beta, exactly."""
    d = x.shape[-1]
    return ops.layer_norm(x, np.full(d, 2.0, x.dtype), np.full(d, 3.0, x.dtype), eps=1e-5)


def normalise_slice(x):
    """ConstantNormalizationSlice: a (nearly) constant slice normalised with the one-pass
    variance E[x^2] - E[x]^2."""
    d = x.shape[-1]
    mean = ops.mean(x, axis=-1)
    var = ops.sub(ops.mean(ops.mul(x, x), axis=-1), ops.square(mean))  # origin
    den = ops.sqrt(ops.add(var, np.full(var.shape, 1e-6, x.dtype)))
    return ops.div(ops.sub(x, ops.broadcast_row(mean, n=d)), ops.broadcast_row(den, n=d))


def normalise_slice_safe(x):
    """ConstantNormalizationSlice, safe: layer_norm's two-pass statistics (a constant
    slice normalises to beta)."""
    d = x.shape[-1]
    return ops.layer_norm(x, np.ones(d, x.dtype), np.zeros(d, x.dtype))


@dataclass(frozen=True)
class ZooPair:
    bug_class: str
    unsafe: Callable
    safe: Callable
    inputs: tuple
    kind: str                 # what refrt.check must report for the unsafe program
    grad: bool = False


PAIRS = [
    ZooPair("StableLoss: log of softmax", ce_of_softmax, ce_of_logits,
            (Range(-200, 200, (4, 5)), _ONE_HOT), "underflow"),
    ZooPair("StableLoss: probability CE without clipping", ce_of_probs, ce_of_probs_clipped,
            (Range(0, 1, (4, 5)), _ONE_HOT), "domain"),
    ZooPair("StableLoss: unprotected division", ratio, ratio_safe,
            (Range(-4, 4, (6,)), Range(0, 1, (6,))), "domain"),
    ZooPair("AutogradDomain: divide, then mask", divide_then_mask, mask_the_denominator,
            (np.array([1.0, 2.0, 3.0, 4.0], F32), np.array([1.0, 2.0, 0.0, 4.0], F32)),
            "nan", grad=True),
    ZooPair("NormalizationState: eps outside the sqrt", bn_eps_outside, bn_eps_inside,
            (Range(1000, 1001, (8, 4)),), "cancellation"),
    ZooPair("NormalizationState: running variance update", running_var_update,
            running_var_update_safe, (Range(1000, 1001, (8, 4)), Range(0, 1e-3, (4,))),
            "cancellation"),
    ZooPair("IgnoredLabelLoss: every label ignored", masked_mean, masked_mean_safe,
            (Range(0, 10, (6,)), np.zeros(6, F32)), "domain"),
    ZooPair("AttentionMask: fully masked row", attention_weights, attention_weights_hard,
            (Range(-10, 10, (3, 4)),), "domain"),
    ZooPair("LayerNormDegenerateAxis: normalized_shape (1,)", layer_norm_fused, layer_norm_op,
            (Range(1e6 - 8, 1e6 + 8, (4, 1)),), "cancellation"),
    ZooPair("ConstantNormalizationSlice", normalise_slice, normalise_slice_safe,
            (Range(1e4, 1e4 + 0.5, (2, 8)),), "cancellation"),
]


def origin_line(fn) -> int:
    """The line of ``fn`` (or of a helper it calls in this module) marked ``# origin``."""
    import inspect
    for f in (fn, _batch_stats_one_pass):
        lines, start = inspect.getsourcelines(f)
        for k, line in enumerate(lines):
            if line.rstrip().endswith("# origin"):
                if f is fn or "_batch_stats_one_pass" in inspect.getsource(fn):
                    return start + k
    return -1


def run_pairs(budget=2.0, seed=0):
    """[(pair, unsafe report, safe report)] from ``refrt.check`` on every pair."""
    from .tester import check
    out = []
    for pair in PAIRS:
        bad = check(pair.unsafe, *pair.inputs, grad=pair.grad, seed=seed, budget=budget)
        good = check(pair.safe, *pair.inputs, grad=pair.grad, seed=seed, budget=budget)
        out.append((pair, bad, good))
    return out
