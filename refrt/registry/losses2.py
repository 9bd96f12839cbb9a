"""Regression losses of TorchLean's Loss.lean beyond MSE (issue 10, part 2): l1 (MAE),
Huber, smooth L1, log-cosh, hinge and Poisson.  Each is sum(term) / meanDenom (the
size, 1 when empty: TorchLean's meanDenom, PyTorch's reduction='mean')."""
from __future__ import annotations

import math

import numpy as np

from ..domains import NONNEGATIVE, Interval
from ..errors import bad_value
from . import _shapes
from . import _terms
from ._spec import Arg, Case, Param, Precondition
from .losses import loss

INF, NAN = math.inf, math.nan
PT = (Arg("pred"), Arg("target"))
PROBS = Interval(0.0, 1.0)


def _ties(arrays, params):
    return bool(np.any(arrays[0] == arrays[1]))


def _hinge_kink(arrays, params):
    return bool(np.any(arrays[0] * arrays[1] == 1))


def _positive_param(name, strict):
    """pairwise_loss shape rule plus a check of the threshold parameter (PyTorch: delta > 0,
    beta >= 0)."""
    def rule(spec, arrays, params):
        v = params[name]
        if (v <= 0) if strict else (v < 0):
            raise bad_value(spec.name, name, f"{name} {'>' if strict else '>='} 0", v)
        return _shapes.pairwise_loss(spec, arrays, params)
    return rule


TIES = Precondition("pred != target", "the derivative at a tie is 0 by convention", _ties)
REGRESSION = ("normal", "wide", "zero_targets")

SPECS = [
    loss("l1_loss", PT, "sum(|pred - target|) / meanDenom (mean absolute error)",
         "pred: g * sign(pred - target) / n (0 at a tie); target: -(that)",
         cases=[Case(((1.0, -3.0), (0.0, 0.0)), 2.0), Case(((INF,), (INF,)), NAN),
                Case(((1.0, 2.0 ** -60), (1.0, 0.0)), 2.0 ** -61),
                Case(((),()), 0.0)],
         conventions="sign(0) = 0 at a tie, as TorchLean maeSpec and PyTorch",
         preconditions=(TIES,), families=REGRESSION, torchlean="maeSpec"),
    loss("huber_loss", PT, "per element a = |pred - target|: a < delta ? a^2 / 2 : "
         "delta (a - delta / 2); summed / meanDenom",
         "pred: g * clamp(pred - target, -delta, delta) / n; target: -(that)",
         params=(Param("delta", 1.0, "float", "TorchLean huberSpec / PyTorch default"),),
         shape=_positive_param("delta", strict=True),
         cases=[Case(((0.5,), (0.0,)), 0.125), Case(((3.0,), (0.0,)), 2.5),
                Case(((3.0,), (0.0,)), 4.0, params={"delta": 2.0}),
                Case(((-INF,), (0.0,)), INF)],
         preconditions=(TIES,), families=REGRESSION, torchlean="huberSpec"),
    loss("smooth_l1_loss", PT, "per element a = |pred - target|: a < beta ? a^2 / (2 beta) "
         ": a - beta / 2; summed / meanDenom (beta = 0 is l1_loss; huber_loss(delta) = "
         "delta * smooth_l1_loss(beta=delta))",
         "pred: g * (d / beta if |d| < beta else sign(d)) / n, d = pred - target; "
         "target: -(that)",
         params=(Param("beta", 1.0, "float", "PyTorch's default"),),
         shape=_positive_param("beta", strict=False),
         cases=[Case(((0.5,), (0.0,)), 0.125), Case(((3.0,), (0.0,)), 2.5),
                Case(((3.0,), (0.0,)), 3.0, params={"beta": 0.0}),
                Case(((1.0,), (0.0,)), 0.25, params={"beta": 2.0})],
         preconditions=(TIES,), families=REGRESSION,
         torchlean="(PyTorch smooth_l1_loss; TorchLean has huberSpec)"),
    loss("log_cosh_loss", PT, "sum(log(cosh(pred - target))) / meanDenom, evaluated as "
         "log1p(2 sinh(a/2)^2) for a = |pred - target| < 2 and (a - ln 2) + log1p(e^-2a) "
         "above (no overflow of cosh, no cancellation near 0)",
         "pred: g * tanh(pred - target) / n; target: -(that)",
         cases=[Case(((0.0,), (0.0,)), 0.0), Case(((1000.0,), (0.0,)), 1000.0 - math.log(2.0)),
                Case(((1e-5,), (0.0,)), 5e-11 - 1e-20 / 12),
                Case(((INF,), (0.0,)), INF), Case(((1.0,), (0.0,)), math.log(math.cosh(1.0)))],
         families=REGRESSION, torchlean="logCoshSpec"),
    loss("hinge_loss", PT, "sum(max(0, 1 - pred * target)) / meanDenom (TorchLean hingeSpec: "
         "targets +-1; not PyTorch's hinge_embedding_loss, which is x for t = 1 and "
         "max(0, margin - x) for t = -1)",
         "pred: g * (-target if 1 - pred * target > 0 else 0) / n; "
         "target: g * (-pred if 1 - pred * target > 0 else 0) / n",
         cases=[Case(((0.5, 2.0), (1.0, 1.0)), 0.25), Case(((-2.0,), (1.0,)), 3.0),
                Case(((1.0,), (1.0,)), 0.0), Case(((INF,), (-1.0,)), INF)],
         conventions="the derivative at the kink 1 - pred * target = 0 is 0 (TorchLean)",
         preconditions=(Precondition("pred * target != 1", "hinge kink: derivative 0 by "
                                     "convention", _hinge_kink),),
         families=REGRESSION, torchlean="hingeSpec"),
    loss("poisson_nll_loss", (Arg("log_input"), Arg("target", NONNEGATIVE, True)),
         "sum(exp(log_input) - target * log_input) / meanDenom (PyTorch poisson_nll_loss "
         "with log_input=True, full=False; TorchLean poissonSpec).  For target > e the "
         "term exp(x) - t x crosses 0 at two x and cancels there: its error is then exp's "
         "rounding (0.5-1 ulp of exp(x)) relative to the term, not to the loss",
         "log_input: g * (exp(log_input) - target) / n; target: -g * log_input / n",
         cases=[Case(((0.0,), (1.0,)), 1.0), Case(((math.log(2.0),), (2.0,)), 2.0 - 2.0 * math.log(2.0)),
                Case(((-INF,), (0.0,)), NAN), Case(((1000.0,), (1.0,)), INF)],
         families=("normal", "wide", "zero_targets"), vjp_terms=_terms.poisson_nll_loss,
         torchlean="poissonSpec"),
]


def _ce_shape(spec, arrays, params):
    """(..., C) logits; target (...) integer class ids in [0, C) or == ignore_index, or
    (..., C) probabilities; 0 <= label_smoothing <= 1."""
    x, t = arrays
    ls = params["label_smoothing"]
    if not 0.0 <= ls <= 1.0:
        raise bad_value(spec.name, "label_smoothing", "a value in [0, 1]", ls)
    if x.ndim < 1:
        raise bad_value(spec.name, "logits", "an array of at least 1 dimension (..., classes)",
                        f"a {x.ndim}-d array")
    if t.dtype.kind in "iu":
        if t.shape != x.shape[:-1]:
            raise bad_value(spec.name, "target", f"integer class ids of shape {x.shape[:-1]} "
                            f"or probabilities of shape {x.shape}",
                            f"integer array of shape {t.shape}")
        n, ign = x.shape[-1], params["ignore_index"]
        bad = (t != ign) & ((t < 0) | (t >= n))
        if bad.any():
            raise bad_value(spec.name, "target", f"class ids in [0, {n}) or ignore_index={ign}",
                            f"class id {int(t[bad].ravel()[0])}")
    elif t.shape != x.shape:
        raise bad_value(spec.name, "target", f"shape {x.shape} (or integer class ids of shape "
                        f"{x.shape[:-1]})", t.shape)
    return ()


SPECS.append(
    loss("cross_entropy", (Arg("logits"), Arg("target", PROBS, False, "class_target")),
         "PyTorch's F.cross_entropy (reduction='mean') along the last axis: per row "
         "L_c = -log_softmax(logits)_c and (1 - ls) L_y + (ls / C) sum_c L_c for class ids "
         "(rows with y == ignore_index skipped), (1 - ls) sum_c t_c L_c + (ls / C) sum_c L_c "
         "for probabilities; the mean is over the active rows.  When every row is ignored "
         "the result is 0 (PyTorch: 0 / 0 = NaN, pytorch#75181; refrt follows TorchLean's "
         "meanDenom and IgnoredLabelLoss.labelContribution), with a zero gradient.  "
         "Non-finite logits give NaN.  (PyTorch's class axis is 1 for (N, C, d...) inputs; "
         "refrt's is the last.)",
         "logits: g * (softmax(logits) * sum(t') - t') / n_active, t' = (1 - ls) t + ls / C "
         "(t one-hot for ids; 0 for ignored rows); target: g * (1 - ls) * L / n_rows "
         "(probabilities only)",
         shape=_ce_shape,
         params=(Param("ignore_index", -100, "int", "PyTorch's default"),
                 Param("label_smoothing", 0.0, "float", "PyTorch's default")),
         cases=[Case((((0.0, 0.0),), ((1.0, 0.0),)), math.log(2.0)),
                Case((((1000.0, 0.0),), ((0.0, 1.0),)), 1000.0),
                Case((((1.0, 2.0, 3.0),), (0,)), 2.40760596444438),
                Case((((1.0, 2.0, 3.0),), (0,)), 2.3076059644443805,
                     params={"label_smoothing": 0.1}),
                Case((((1.0, 2.0), (3.0, 4.0)), (-100, -100)), 0.0,
                     note="every label ignored: 0 (PyTorch: NaN)"),
                Case((((INF, 0.0),), ((1.0, 0.0),)), NAN)],
         families=("normal", "wide", "large_spread", "dominant", "zero_targets"),
         vjp_terms=_terms.cross_entropy,
         torchlean="crossEntropyLogitsSpec + IgnoredLabelLoss (BugZoo)"))
