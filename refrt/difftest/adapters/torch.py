"""PyTorch, called as its users call it (``torch.*`` and ``torch.nn.functional``), with
gradients through ``torch.autograd``.  CPU here; ``torch-cuda`` (``torch_cuda.py``) runs
the same table on the first CUDA device.

Conventions passed explicitly (each entry's ``conventions``): ``F.gelu(approximate=
'tanh')`` (the registry's gelu is the tanh form), ``torch.var(correction=0)`` (population
variance), ``F.kl_div(reduction='batchmean')`` on rows flattened to (N, C),
``F.cross_entropy`` / ``F.nll_loss`` on (N, C) rows (mean over rows, as TorchLean),
``F.batch_norm(training=False)`` with x given a batch axis (TorchLean's x is (C, ...)).

Native semantics keep torch's own defaults: layer_norm / batch_norm eps = 1e-5,
``F.softplus`` threshold = 20, ``F.binary_cross_entropy`` without an eps clip (torch
clamps each log at -100 instead).  The oracle computes the exact op with those
parameters; the documented clamps are annotated "by design".
"""
from __future__ import annotations

import numpy as np

from . import torch_indexing
from ._base import Adapter, ByDesign, Entry, Fix, as_float, empty_mean, kink, py_literal
from .torch_conv import entries as _conv_entries
from .torch_misc2 import entries as _misc2_entries

BCE_GRAD_CLAMP = ByDesign(
    ("bits", "overflow", "nan", "underflow"), "by design: torch's BCE backward divides by "
    "max(p (1 - p), 1e-12) (EPSILON in its source), so the gradient at p within 1e-12 of 0 or 1 "
    "is bounded", lambda a, p: bool(np.any(np.asarray(a[0], np.float64) * (1 - np.asarray(a[0], np.float64))
                                             < 1e-12)), phase="gradient")
BCE_CLAMP = ByDesign(
    ("bits", "underflow"), "by design: torch clamps log at -100 in F.binary_cross_entropy "
    "(documented), so a probability of exactly 0 or 1 costs at most 100, not inf",
    lambda a, p: bool(np.any(np.asarray(a[0], np.float64) < 3.8e-44)
                      or np.any(1.0 - np.asarray(a[0], np.float64) < 3.8e-44)))
SOFTPLUS_THRESHOLD = ByDesign(
    ("bits",), "by design: F.softplus returns x itself above threshold=20 (documented: "
    "'reverts to the linear function'); in float64 log1p(exp(-x)) is still above half an "
    "ulp of x there",
    lambda a, p: bool(np.any(np.asarray(a[0], np.float64) > 20)))
CLAMP_KINK = kink("clamp", "torch.clamp")
EMPTY_MEAN = empty_mean("torch.mean")
POW_ZERO_BASE = ByDesign(
    ("bits", "underflow", "overflow"), "by design: torch's pow backward masks the exponent gradient "
    "x**y * log(x) to 0 where x == 0 (derivatives.yaml); the exact derivative is -inf there",
    lambda a, p: bool(np.any(np.asarray(a[0]) == 0)), phase="gradient")
CLAMP_NAN = ByDesign(("nan",), "by design: torch.clamp propagates NaN (TorchLean's clampSpec "
                     "maps NaN to lo)", lambda a, p: bool(np.isnan(np.asarray(a[0], np.float64)).any()))


def entries(torch):
    F = torch.nn.functional
    E = Entry
    u = lambda f, code, **kw: E(f, code, **kw)                                      # noqa: E731
    dim = lambda a: () if a is None else a                                           # noqa: E731

    def ce(logits, target):
        c = logits.shape[-1]
        t = target.reshape(-1) if not target.is_floating_point() else target.reshape(-1, c)
        return F.cross_entropy(logits.reshape(-1, c), t)

    def bce_spec(probs, target, eps):
        # TorchLean's clip p' = clip(p, eps, 1 - eps) with the exact bound 1 - eps:
        # 1 - p' = max(1 - p, eps) (1 - p is exact for p in [0.5, 1], Sterbenz), and
        # log p' = log1p(-(1 - p')) there, so no rounded 1 - eps appears
        e = torch.tensor(eps, dtype=probs.dtype)
        q = torch.clamp(1 - probs, min=e)
        logp = torch.where(probs >= 0.5, torch.log1p(-q), torch.log(torch.clamp(probs, min=e)))
        return -(target * logp + (1 - target) * torch.log(q)).mean()

    def batch_norm(x, running_mean, running_var, gamma, beta, eps, channel_axis):
        xb = x[None] if channel_axis == 0 else x
        y = F.batch_norm(xb, running_mean, running_var, gamma, beta, False, 0.0, eps)
        return y[0] if channel_axis == 0 else y

    return {
        "add": u(torch.add, "torch.add(x, y)"), "sub": u(torch.sub, "torch.sub(x, y)"),
        "mul": u(torch.mul, "torch.mul(x, y)"), "div": u(torch.div, "torch.div(x, y)"),
        "neg": u(torch.neg, "torch.neg(x)"), "abs": u(torch.abs, "torch.abs(x)"),
        "sign": u(torch.sign, "torch.sign(x)"), "square": u(torch.square, "torch.square(x)"),
        "inv": u(torch.reciprocal, "torch.reciprocal(x)"), "pow": u(torch.pow, "torch.pow(x, y)", by_design=(POW_ZERO_BASE,)),
        "exp": u(torch.exp, "torch.exp(x)"), "log": u(torch.log, "torch.log(x)"),
        "log1p": u(torch.log1p, "torch.log1p(x)"), "expm1": u(torch.expm1, "torch.expm1(x)"),
        "sqrt": u(torch.sqrt, "torch.sqrt(x)"), "tanh": u(torch.tanh, "torch.tanh(x)"),
        "sinh": u(torch.sinh, "torch.sinh(x)"), "cosh": u(torch.cosh, "torch.cosh(x)"),
        "sigmoid": u(torch.sigmoid, "torch.sigmoid(x)"), "logistic": u(torch.sigmoid, "torch.sigmoid(x)"),
        "relu": u(F.relu, "F.relu(x)"), "silu": u(F.silu, "F.silu(x)"),
        "gelu": u(lambda x: F.gelu(x, approximate="tanh"), "F.gelu(x, approximate='tanh')",
                  conventions="approximate='tanh' (the registry's gelu)",
                  # (1 + tanh(z)) / 2 = sigmoid(2 z): no cancellation of 1 + tanh for x < 0
                  fixes=(Fix("x * torch.sigmoid(1.5957691216057308 * (x + 0.044715 * x ** 3))",
                             lambda x: x * torch.sigmoid(1.5957691216057308 * (x + 0.044715 * x ** 3))),)),
        "elu": u(lambda x, alpha: F.elu(x, alpha), "F.elu(x, alpha={alpha})", params=("alpha",)),
        "softplus": u(F.softplus, "F.softplus(x)", by_design=(SOFTPLUS_THRESHOLD,),
                      fixes=(Fix("torch.logaddexp(x, torch.zeros_like(x))",
                                 lambda x: torch.logaddexp(x, torch.zeros_like(x))),)),
        "scale": u(lambda x, c: torch.mul(x, c), "torch.mul(x, {c})", params=("c",)),
        "clamp": u(lambda x, lo, hi: torch.clamp(x, lo, hi), "torch.clamp(x, {lo}, {hi})",
                   params=("lo", "hi"), by_design=(CLAMP_NAN, CLAMP_KINK)),
        "minimum": u(torch.minimum, "torch.minimum(x, y)"),
        "maximum": u(torch.maximum, "torch.maximum(x, y)"),
        "sum": u(lambda x, axis: torch.sum(x, dim=axis), "torch.sum(x, dim={axis})", params=("axis",)),
        "mean": u(lambda x, axis: torch.mean(x, dim=axis), "torch.mean(x, dim={axis})", params=("axis",),
                  by_design=(EMPTY_MEAN,)),
        "amax": u(lambda x, axis: torch.amax(x, dim=dim(axis)), "torch.amax(x, dim={axis})",
                  params=("axis",)),
        "amin": u(lambda x, axis: torch.amin(x, dim=dim(axis)), "torch.amin(x, dim={axis})",
                  params=("axis",)),
        "var": u(lambda x, axis: torch.var(x, dim=axis, correction=0),
                 "torch.var(x, dim={axis}, correction=0)", params=("axis",),
                 conventions="correction=0 (population variance, as TorchLean)"),
        "reduce_sum": u(lambda x, axis: torch.sum(x, dim=axis), "torch.sum(x, dim={axis})", params=("axis",)),
        "reduce_mean": u(lambda x, axis: torch.mean(x, dim=axis), "torch.mean(x, dim={axis})",
                         params=("axis",), by_design=(EMPTY_MEAN,)),
        "row_mean": u(lambda x: torch.mean(x, dim=-1), "torch.mean(x, dim=-1)"),
        "logsumexp": u(lambda x, axis: torch.logsumexp(x, dim=dim(axis)), "torch.logsumexp(x, dim={axis})",
                       params=("axis",)),
        "softmax": u(lambda x, axis: torch.softmax(x, dim=axis), "torch.softmax(x, dim={axis})",
                     params=("axis",)),
        "log_softmax": u(lambda x, axis: torch.log_softmax(x, dim=axis), "torch.log_softmax(x, dim={axis})",
                         params=("axis",)),
        "matmul": u(torch.matmul, "torch.matmul(a, b)"),
        "linear": u(F.linear, "F.linear(x, weight, bias)"),
        "affine": u(lambda x, A, b: torch.addmv(b, A, x.flatten()), "torch.addmv(b, A, x.flatten())"),
        "mse_loss": u(F.mse_loss, "F.mse_loss(pred, target)"),
        "cross_entropy_logits": u(ce, "F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target)",
                                  conventions="(N, C) rows; mean over rows (reduction='mean')"),
        "nll_loss": u(lambda log_probs, target: F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]),
                                                           target.reshape(-1)),
                      "F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), target)", variants=("target=ids",),
                      conventions="class-index targets only (torch's nll_loss takes no probabilities)"),
        "bce_with_logits": u(F.binary_cross_entropy_with_logits,
                             "F.binary_cross_entropy_with_logits(logits, target)"),
        "binary_cross_entropy": u(lambda probs, target, eps: F.binary_cross_entropy(probs, target),
                                  "F.binary_cross_entropy(probs, target)", params=("eps",),
                                  native={"eps": 0.0}, by_design=(BCE_CLAMP, BCE_GRAD_CLAMP),
                                  spec=bce_spec,
                                  spec_code="-(target * torch.where(probs >= 0.5, torch.log1p(-(1 - probs)"
                                  ".clamp(min={eps})), torch.log(probs.clamp(min={eps}))) + (1 - target) "
                                  "* torch.log((1 - probs).clamp(min={eps}))).mean()",
                                  conventions="native: no eps clip (eps = 0 for the oracle); spec: "
                                  "TorchLean's clip written with the exact bound"),
        "kl_div": u(lambda log_probs, target: F.kl_div(log_probs.reshape(-1, log_probs.shape[-1]),
                                                       target.reshape(-1, log_probs.shape[-1]),
                                                       reduction="batchmean"),
                    "F.kl_div(log_probs.reshape(-1, log_probs.shape[-1]), target.reshape(-1, log_probs.shape[-1]), reduction='batchmean')",
                    conventions="reduction='batchmean' on (N, C) rows"),
        "layer_norm": u(lambda x, gamma, beta, eps: F.layer_norm(x, (x.shape[-1],), gamma, beta, eps),
                        "F.layer_norm(x, (x.shape[-1],), gamma, beta, eps={eps})", params=("eps",),
                        native={"eps": 1e-5}, conventions="native eps = 1e-5 (torch's default)"),
        "batch_norm_inference": u(batch_norm, "F.batch_norm(x[None], running_mean, running_var, gamma, "
                                  "beta, training=False, eps={eps})[0]", params=("eps", "channel_axis"),
                                  native={"eps": 1e-5},
                                  conventions="training=False; x (C, ...) given a batch axis; native eps 1e-5"),
        "transpose": u(lambda x: x.T, "x.T"),
        "flatten": u(torch.flatten, "torch.flatten(x)"),
        "swap_first_two": u(lambda x: x.transpose(0, 1), "x.transpose(0, 1)"),
        "transpose_last_two": u(lambda x: x.transpose(-2, -1), "x.transpose(-2, -1)"),
        "concat": u(lambda a, b, axis: torch.cat((a, b), dim=axis), "torch.cat((a, b), dim={axis})",
                    params=("axis",)),
        **torch_indexing.entries(torch),
        **_conv_entries(torch),
        **_misc2_entries(torch),
    }


DTYPES = ("float16", "bfloat16", "float32", "float64")


def build(torch, device="cpu", name="torch"):
    tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}

    def to_backend(a, dt):
        a = np.asarray(a)
        if a.dtype.kind in "iu":
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device)
        t = torch.from_numpy(np.array(a, dtype=np.float32 if dt == "bfloat16" else a.dtype))
        return t.to(device=device, dtype=tdt[dt])

    def vjp(entry, op, arrays, params, g, wrt, dt, call):
        leaves = [to_backend(a, dt) for a in arrays]
        for i in wrt:
            leaves[i].requires_grad_(True)
        out = call(*leaves, **params)
        gt = to_backend(np.asarray(g), dt).reshape(out.shape)
        grads = torch.autograd.grad(out, [leaves[i] for i in wrt], grad_outputs=gt, allow_unused=True)
        return [np.zeros(np.shape(arrays[i])) if gr is None else as_float(gr) for i, gr in zip(wrt, grads)]

    def literal(a, dt):
        a = np.asarray(a)
        if a.dtype.kind in "iu":
            return f"torch.tensor({py_literal(a)})"
        dev = "" if device == "cpu" else f", device='{device}'"
        return f"torch.tensor({py_literal(a)}, dtype=torch.{dt}{dev})"

    from .torch_attention import entries as attention_entries
    from .torch_jvp import entries as jvp_entries
    table = {**entries(torch), **attention_entries(torch), **jvp_entries(torch)}
    return Adapter(name=name, version=lambda: f"torch {torch.__version__}", entries=table,
                   dtypes=DTYPES, to_backend=to_backend, to_numpy=as_float, literal=literal,
                   header="import torch\nimport torch.nn.functional as F", vjp=vjp, extra="torch",
                   description=f"PyTorch ({device})")


def make() -> Adapter:
    import torch
    return build(torch)
