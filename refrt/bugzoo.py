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


def classify(got, want, bits=0.0, precision=53) -> str:
    """Failure class of one element against the exact value, in words."""
    from .difftest import classify as classes
    cls = classes(np.array([got]), np.array([want]), np.array([bits]))[0]
    return {"overflow": "overflow to inf", "underflow": "underflow to 0",
            "NaN": "NaN (inf/inf, inf - inf or log 0)",
            "bits lost": f"{bits:.0f} of {precision} bits lost"}.get(cls, "accurate")


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
