"""Differential campaigns: another backend's ops against the certified oracle.

For every op an adapter provides, on every input family of the op (the same families
``refrt check`` uses) and dtype, the backend's result is compared element by element with
the correctly rounded value from ``refrt.oracle`` and each departure is classified:

  overflow        inf where the exact value is finite
  underflow       0 where the exact value is not
  NaN             NaN where the exact value is defined (a domain error: inf - inf,
                  0 * inf, log of <= 0 inside the formulation)
  bits lost       finite, but more than ``LOST_BITS`` bits of error (Herbie's
                  log2(1 + ulps)): cancellation or an unstable formulation

Adapters: ``numpy`` (textbook formulations, as commonly written), ``torch`` (PyTorch
CPU), ``jax`` (if installed), or ``module:<python.module>``: a user's module whose
functions are named like refrt's ops and take NumPy arrays and refrt's parameters.
"""
from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import families as fam
from .accuracy import MEASURE_MAX_PREC, pole_sign_only
from .metrics import bits_error
from .registry import OPS

LOST_BITS = 4.0   # more than 4 bits (15 ulp) of error is reported as a loss
CLASSES = ("overflow", "underflow", "NaN", "bits lost")


def classify(got, want, bits) -> np.ndarray:
    """Per-element failure class ('' where the element is fine)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    out = np.full(got.shape, "", dtype=object)
    defined = ~np.isnan(want)
    out[np.isnan(got) & defined] = "NaN"
    out[np.isinf(got) & np.isfinite(want)] = "overflow"   # +-inf, incl. log of an underflowed 0
    out[(got == 0) & (want != 0) & np.isfinite(want)] = "underflow"
    lost = (out == "") & defined & (bits > LOST_BITS)
    out[lost] = "bits lost"
    return out


@dataclass
class Finding:
    op: str
    dtype: str
    backend: str
    max_bits: float = 0.0
    worst_family: str = ""
    classes: Counter = field(default_factory=Counter)
    worst: tuple = ()          # (family, index, got, want)
    error: str = ""            # the adapter raised

    @property
    def ok(self) -> bool:
        return not self.error and not self.classes


# ---------------------------------------------------------------- adapters ----
def _numpy_ops():
    def softmax(x, axis=-1):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)

    def rows(x):
        return max(1, int(np.prod(x.shape[:-1])))

    return {
        "exp": np.exp, "log": np.log, "log1p": lambda x: np.log(1 + x),
        "expm1": lambda x: np.exp(x) - 1, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "tanh": np.tanh, "softplus": lambda x: np.log(1 + np.exp(x)),
        "safe_log": lambda x, eps=1e-6: np.log(np.log(1 + np.exp(x)) + eps),
        "silu": lambda x: x / (1 + np.exp(-x)),
        "softmax": softmax,
        "log_softmax": lambda x, axis=-1: np.log(softmax(x, axis)),
        "logsumexp": lambda x, axis=-1: np.log(np.exp(x).sum(axis=axis)),
        "var": lambda x, axis=None: (x * x).mean(axis=axis) - x.mean(axis=axis) ** 2,
        "cross_entropy_logits": lambda x, t: -(t * np.log(softmax(x))).sum() / rows(x),
        "bce_with_logits": lambda x, t: -(t * np.log(1 / (1 + np.exp(-x)))
                                          + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x)))).mean(),
        "binary_cross_entropy": lambda p, t, eps=1e-6: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(),
        "kl_div": lambda lp, t: (t * (np.log(t) - lp)).sum() / rows(lp),
        "mse_loss": lambda p, t: ((p - t) ** 2).mean(),
        "layer_norm": lambda x, g, b, eps=1e-6: (x - x.mean(-1, keepdims=True))
        / (x.std(-1, keepdims=True) + eps) * g + b,
    }


def _torch_ops():
    import torch
    import torch.nn.functional as F
    T = torch.from_numpy

    def rows(x):
        return max(1, int(np.prod(x.shape[:-1])))

    def ce(x, t):
        if t.dtype.kind in "iu":
            return F.cross_entropy(T(x).reshape(-1, x.shape[-1]), T(t).reshape(-1))
        return F.cross_entropy(T(x).reshape(-1, x.shape[-1]), T(t).reshape(-1, x.shape[-1]))

    return {
        "add": lambda x, y: T(x) + T(y), "sub": lambda x, y: T(x) - T(y),
        "mul": lambda x, y: T(x) * T(y), "div": lambda x, y: T(x) / T(y),
        "exp": lambda x: torch.exp(T(x)), "log": lambda x: torch.log(T(x)),
        "log1p": lambda x: torch.log1p(T(x)), "expm1": lambda x: torch.expm1(T(x)),
        "sqrt": lambda x: torch.sqrt(T(x)), "tanh": lambda x: torch.tanh(T(x)),
        "sigmoid": lambda x: torch.sigmoid(T(x)), "softplus": lambda x: F.softplus(T(x)),
        "relu": lambda x: F.relu(T(x)), "silu": lambda x: F.silu(T(x)),
        "gelu": lambda x: F.gelu(T(x), approximate="tanh"), "elu": lambda x, alpha=1.0: F.elu(T(x), alpha),
        "sinh": lambda x: torch.sinh(T(x)), "cosh": lambda x: torch.cosh(T(x)),
        "sum": lambda x, axis=None: T(x).sum() if axis is None else T(x).sum(axis),
        "mean": lambda x, axis=None: T(x).mean() if axis is None else T(x).mean(axis),
        "var": lambda x, axis=None: torch.var(T(x), correction=0) if axis is None
        else torch.var(T(x), axis, correction=0),
        "logsumexp": lambda x, axis=-1: torch.logsumexp(T(x), axis),
        "softmax": lambda x, axis=-1: torch.softmax(T(x), axis),
        "log_softmax": lambda x, axis=-1: torch.log_softmax(T(x), axis),
        "matmul": lambda a, b: T(a) @ T(b),
        "linear": lambda x, w, b: F.linear(T(x), T(w), T(b)),
        "mse_loss": lambda p, t: F.mse_loss(T(p), T(t)),
        "cross_entropy_logits": ce,
        "nll_loss": lambda lp, t: -(T(lp) * T(t)).sum() / rows(lp),
        "bce_with_logits": lambda x, t: F.binary_cross_entropy_with_logits(T(x), T(t)),
        "binary_cross_entropy": lambda p, t, eps=1e-6: F.binary_cross_entropy(
            torch.clamp(T(p), eps, 1 - eps), T(t)),
        "kl_div": lambda lp, t: F.kl_div(T(lp).reshape(-1, lp.shape[-1]),
                                         T(t).reshape(-1, lp.shape[-1]), reduction="batchmean"),
        "layer_norm": lambda x, g, b, eps=1e-6: F.layer_norm(T(x), (x.shape[-1],), T(g), T(b), eps),
        "batch_norm_inference": lambda x, m, v, g, b, eps=1e-6, channel_axis=0: F.batch_norm(
            T(x)[None] if channel_axis == 0 else T(x), T(m), T(v), T(g), T(b), False, 0.0, eps
        ).reshape(x.shape),
    }


def _jax_ops():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    return {
        "exp": jnp.exp, "log": jnp.log, "log1p": jnp.log1p, "expm1": jnp.expm1,
        "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "softplus": jax.nn.softplus,
        "silu": jax.nn.silu, "gelu": lambda x: jax.nn.gelu(x, approximate=True),
        "logsumexp": lambda x, axis=-1: jax.scipy.special.logsumexp(x, axis=axis),
        "softmax": lambda x, axis=-1: jax.nn.softmax(x, axis=axis),
        "log_softmax": lambda x, axis=-1: jax.nn.log_softmax(x, axis=axis),
        "sum": lambda x, axis=None: jnp.sum(x, axis=axis),
        "mean": lambda x, axis=None: jnp.mean(x, axis=axis),
        "var": lambda x, axis=None: jnp.var(x, axis=axis),
    }


def _module_ops(path):
    module = importlib.import_module(path)
    return {name: getattr(module, name) for name in OPS if callable(getattr(module, name, None))}


def adapter(backend: str) -> dict:
    """op name -> callable(*arrays, **params) for ``backend``."""
    if backend == "numpy":
        return _numpy_ops()
    if backend == "torch":
        return _torch_ops()
    if backend == "jax":
        return _jax_ops()
    if backend.startswith("module:"):
        return _module_ops(backend.split(":", 1)[1])
    raise ValueError(f"difftest: argument 'backend' expected numpy, torch, jax or "
                     f"module:<python.module>, got {backend!r}")


def _as_numpy(v, dtype):
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=dtype)


# ---------------------------------------------------------------- campaign ----
def run_op(backend, fn, spec, dtype, seeds=(0,)) -> Finding:
    """One op and dtype over all its families."""
    from .oracle import evaluate as certified
    dt = np.dtype(dtype)
    finding = Finding(spec.name, dt.name, backend)
    for family in spec.families:
        for seed in seeds:
            arrays, params = fam.generate(spec, family, dt, seed)
            want = np.asarray(certified(spec.name, *arrays, dtype=dt, on_undecided="nan",
                                        max_prec=MEASURE_MAX_PREC, **params))
            try:
                with np.errstate(all="ignore"):
                    got = _as_numpy(fn(*arrays, **_user_params(spec, params)), dt)
                got = got.reshape(want.shape)
            except Exception as err:  # the backend cannot run this input: report, go on
                finding.error = f"{family}: {type(err).__name__}: {err}"[:200]
                continue
            bits = bits_error(got, want, dt)
            # real numbers have no signed zero: the sign of inf at x / -0 is IEEE's choice
            bits = np.where(pole_sign_only(got, want, arrays) | np.isnan(want), 0.0, bits)
            cls = classify(got, want, bits)
            finding.classes.update(c for c in cls.ravel() if c)
            if bits.size and float(np.nanmax(bits)) > finding.max_bits:
                i = int(np.nanargmax(bits))
                finding.max_bits = float(bits.ravel()[i])
                finding.worst_family = family
                finding.worst = (family, np.unravel_index(i, bits.shape) if bits.ndim else (),
                                 float(got.ravel()[i]), float(want.ravel()[i]))
    return finding


def _user_params(spec, params):
    """Adapters take refrt's parameter names; unset (None) parameters are left out."""
    return {k: v for k, v in params.items() if v is not None}


def campaign(backend="numpy", ops=None, dtypes=("float32", "float64"), seeds=(0,)):
    """Run every op the backend provides (or ``ops``) against the oracle."""
    table = adapter(backend)
    names = [n for n in (ops or OPS) if n in table and n in OPS]
    return [run_op(backend, table[n], OPS[n], dt, seeds) for n in names for dt in dtypes]


# ------------------------------------------------------- per node of a user's loss ----
@dataclass
class NodeFinding:
    node: object               # refrt.graph.Node
    max_bits: float            # float value of the node vs its exact value
    classes: Counter
    origin: bool               # departs while every input of the node is accurate
    alternative: str = ""

    def __str__(self):
        cls = ", ".join(f"{n} {c}" for c, n in self.classes.items()) or "accurate"
        mark = "  <- origin" if self.origin else ""
        alt = f"  (use instead: {self.alternative})" if self.alternative else ""
        return (f"{self.node.location}: %{self.node.output} = {self.node.op}: "
                f"{self.max_bits:.1f} bits, {cls}{mark}{alt}")


def node_report(fn, *inputs, prec=512, **params):
    """Trace ``fn`` (written with ``refrt.ops``), evaluate it in the inputs' float dtype and
    exactly (mp at ``prec`` bits from the same float inputs), and report each node's
    departure from its exact value.  The *origin* of a failure is the first node that
    departs while all its inputs are still accurate: that is the line to change, and the
    registry's stable alternative of that node's op (or of the consumer that turns the
    departure into inf/NaN) is suggested."""
    from .graph import trace
    from .rounding import round_array
    graph = trace(fn, *inputs, **params)
    floats = [np.asarray(a).dtype for a in inputs if np.asarray(a).dtype.kind == "f"]
    dt = np.dtype(np.float32) if floats and all(d == np.float32 for d in floats) else np.dtype(np.float64)
    fr = graph.run(*inputs, backend={"float32": "f32", "float64": "f64"}[dt.name])
    mr = graph.run(*inputs, backend="mp", prec=prec)
    bad_slots, report = set(), []
    for node in graph.nodes:
        got = np.asarray(fr.values[node.output], dtype=dt)
        want = round_array(mr.values[node.output], dt)
        bits = np.where(np.isnan(want) & np.isnan(got), 0.0, bits_error(got, want, dt))
        cls = classify(got, want, bits)
        counts = Counter(c for c in np.ravel(cls) if c)
        departs = bool(counts)
        origin = departs and not any(s in bad_slots for s in node.inputs)
        if departs:
            bad_slots.add(node.output)
        alt = OPS[node.op].stable_alternative if departs else ""
        report.append(NodeFinding(node, float(np.max(bits)) if bits.size else 0.0, counts,
                                  origin, alt))
    # the consumer of an origin that turns it into inf/NaN often names the stable pattern
    for i, f in enumerate(report):
        if f.origin and not f.alternative:
            for later in report[i + 1:]:
                if f.node.output in later.node.inputs and later.alternative:
                    f.alternative = later.alternative
                    break
    return report
