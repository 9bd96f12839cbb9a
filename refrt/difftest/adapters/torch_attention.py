"""PyTorch rows of the differential tester for the attention and norm2 ops (merged into
``torch.py``'s table by ``entries(torch)``).

Conventions passed explicitly: ``F.scaled_dot_product_attention`` with a bool
``attn_mask`` (True = may attend, as refrt) or ``is_causal``; ``F.batch_norm(training=True)``
with no running statistics (x given a batch axis for TorchLean's (C, ...) form);
``F.group_norm`` / ``F.instance_norm`` / ``F.rms_norm`` with weight and bias;
``torch._weight_norm(v, g, dim=0)`` (no eps: native eps = 0); normalize_along_dim written
with torch ops (torch has no such function; F.normalize is an L2 normalisation).
Native semantics keep torch's eps = 1e-5 (rms_norm: torch.finfo(dtype).eps, passed here
as the registry's value since the oracle needs a number).
"""
from __future__ import annotations

import numpy as np

from ._base import Entry

def entries(torch):
    F = torch.nn.functional

    def sdpa(q, k, v, mask=None, is_causal=False, scale=None):
        m = None if (mask is None or is_causal) else torch.as_tensor(np.asarray(mask))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=is_causal,
                                              scale=scale)

    def batch_norm(x, gamma, beta, eps, channel_axis):
        xb = x[None] if channel_axis == 0 else x
        y = F.batch_norm(xb, None, None, gamma, beta, True, 0.0, eps)
        return y[0] if channel_axis == 0 else y

    def along_dim(x, gamma, beta, dim, eps):
        c = x - x.mean(dim, keepdim=True)
        return c / torch.sqrt((c * c).mean(dim, keepdim=True) + eps) * gamma + beta

    def weight_norm(weight, g, eps):
        shape = (-1,) + (1,) * (weight.dim() - 1)
        if eps == 0:
            return torch._weight_norm(weight, g.reshape(shape), 0)
        flat = weight.reshape(weight.shape[0], -1)
        return weight / torch.sqrt((flat * flat).sum(1) + eps).reshape(shape) * g.reshape(shape)

    return {
        "scaled_dot_product_attention": Entry(
            sdpa, "F.scaled_dot_product_attention(q, k, v, attn_mask=mask, "
            "is_causal={is_causal}, scale={scale})", params=("mask", "is_causal", "scale"),
            conventions="bool attn_mask, True = may attend (torch 2.13 CPU gives 0 for a fully "
            "masked row, as refrt)"),
        "batch_norm": Entry(
            batch_norm, "F.batch_norm(x, None, None, gamma, beta, training=True, eps={eps})",
            params=("eps", "channel_axis"), native={"eps": 1e-5},
            conventions="training=True (batch statistics); channel_axis=0: x[None]; native "
            "eps 1e-5"),
        "group_norm": Entry(
            lambda x, gamma, beta, num_groups, eps: F.group_norm(x, num_groups, gamma, beta, eps),
            "F.group_norm(x, {num_groups}, gamma, beta, eps={eps})",
            params=("num_groups", "eps"), native={"eps": 1e-5}, conventions="native eps 1e-5"),
        "instance_norm": Entry(
            lambda x, gamma, beta, eps: F.instance_norm(x, weight=gamma, bias=beta, eps=eps),
            "F.instance_norm(x, weight=gamma, bias=beta, eps={eps})", params=("eps",),
            native={"eps": 1e-5}, conventions="no running statistics; native eps 1e-5"),
        "rms_norm": Entry(
            lambda x, gamma, eps: F.rms_norm(x, (x.shape[-1],), gamma, eps),
            "F.rms_norm(x, (x.shape[-1],), gamma, eps={eps})", params=("eps",),
            conventions="eps passed explicitly (torch's default None means finfo.eps)"),
        "weight_norm": Entry(
            weight_norm, "torch._weight_norm(weight, g.reshape(-1, 1), 0)", params=("eps",),
            native={"eps": 0.0}, conventions="native: torch._weight_norm has no eps; spec: "
            "eps added to the sum of squares (TorchLean weightNorm)"),
        "normalize_along_dim": Entry(
            along_dim, "(x - x.mean({dim}, keepdim=True)) / torch.sqrt(((x - x.mean({dim}, "
            "keepdim=True)) ** 2).mean({dim}, keepdim=True) + {eps}) * gamma + beta",
            params=("dim", "eps"), conventions="written with torch ops (no torch function)"),
    }
