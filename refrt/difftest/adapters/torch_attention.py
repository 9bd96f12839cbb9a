"""PyTorch rows of the differential tester for the attention and norm2 ops (merged into
``torch.py``'s table by ``entries(torch)``).

Conventions passed explicitly: ``F.scaled_dot_product_attention`` with a bool
``attn_mask`` (True = may attend, as refrt) or ``is_causal``;
``F.multi_head_attention_forward`` ((L, N, E) layout, separate projection weights W^T,
bool attn_mask True = blocked: refrt's mask negated and expanded to (N H, L, S), the
causal mask written out); hard_masked_softmax as torch ops (torch has no such function:
softmax of the -inf-filled scores, 0 on blocked entries); ``F.batch_norm(training=True)``
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

    def mha(query, key, value, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, num_heads=1,
            mask=None, is_causal=False):
        batched = query.dim() == 3
        q, k, v = ((t.transpose(0, 1) if batched else t[:, None]) for t in (query, key, value))
        L, N, S = q.shape[0], q.shape[1], k.shape[0]
        full = (N, num_heads, L, S)
        allowed = None
        if is_causal:
            allowed = np.broadcast_to(np.tri(L, S, dtype=bool), full)
        elif mask is not None:
            m = np.asarray(mask)
            allowed = np.broadcast_to(m if batched else m[None], full)
        am = None if allowed is None else torch.from_numpy(
            ~np.ascontiguousarray(allowed).reshape(N * num_heads, L, S))
        out, _ = F.multi_head_attention_forward(
            q, k, v, query.shape[-1], num_heads, None, torch.cat([b_q, b_k, b_v]), None,
            None, False, 0.0, w_o.T, b_o, training=False, need_weights=False, attn_mask=am,
            use_separate_proj_weight=True, q_proj_weight=w_q.T, k_proj_weight=w_k.T,
            v_proj_weight=w_v.T)
        return out.transpose(0, 1) if batched else out[:, 0]

    def hms(scores, mask, axis=-1):
        m = mask.bool()
        w = torch.softmax(scores.masked_fill(~m, -float("inf")), axis)
        return torch.where(m, w, torch.zeros((), dtype=scores.dtype))

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
        "multi_head_attention": Entry(
            mha, "F.multi_head_attention_forward(query.transpose(0, 1), key.transpose(0, 1), "
            "value.transpose(0, 1), E, {num_heads}, None, torch.cat([b_q, b_k, b_v]), None, "
            "None, False, 0.0, w_o.T, b_o, training=False, need_weights=False, "
            "attn_mask=~mask, use_separate_proj_weight=True, q_proj_weight=w_q.T, "
            "k_proj_weight=w_k.T, v_proj_weight=w_v.T)",
            params=("num_heads", "mask", "is_causal"),
            conventions="(L, N, E) layout, weights transposed (refrt's x W is torch's x W^T), "
            "bool attn_mask negated (torch: True = blocked); needs H*hd = E (torch's "
            "head_dim = E / H)"),
        "hard_masked_softmax": Entry(
            hms, "torch.where(mask, torch.softmax(scores.masked_fill(~mask, -inf), {axis}), 0)",
            params=("axis",), conventions="written with torch ops (torch has no hard-masked "
            "softmax; its usual composition without the where gives NaN on a fully "
            "blocked row)"),
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
