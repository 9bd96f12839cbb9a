"""Parameters of PyTorch layers in the layout of refrt's ops (no torch import here: the
module's tensors are read with ``.detach().cpu().numpy()``).

``mha_params(module)`` maps an ``nn.MultiheadAttention`` to ``multi_head_attention``::

    w, kw = refrt.nn.mha_params(m)            # m.eval(); batch_first=True layout (N, L, E)
    out = refrt.ops.multi_head_attention(q, k, v, *w, **kw)   # == m(q, k, v)[0]

PyTorch applies ``in_proj_weight`` (3E, E) as x W^T with the q, k, v blocks stacked by
rows, and ``out_proj`` as a Linear; refrt's op takes TorchLean's layout x W with W
(E, H hd): so W_q = in_proj_weight[:E].T, W_k = in_proj_weight[E:2E].T,
W_v = in_proj_weight[2E:].T, W_o = out_proj.weight.T, and the biases are the blocks of
in_proj_bias and out_proj.bias.  A module with kdim/vdim != embed_dim has separate
q/k/v_proj_weight (same mapping).  Masks: PyTorch's bool ``attn_mask`` and
``key_padding_mask`` mean True = blocked, refrt's ``mask`` True = may attend:
``torch_mask`` converts them.  Not covered (a clear error): ``add_bias_kv`` and
``add_zero_attn``, which append a key/value row.
"""
from __future__ import annotations

import numpy as np

from .errors import bad_value


def _np(t, dtype):
    a = t.detach().cpu().numpy()
    return a if dtype is None else a.astype(dtype)


def mha_params(module, dtype=None):
    """``((w_q, w_k, w_v, w_o), {"b_q": .., "b_k": .., "b_v": .., "b_o": ..,
    "num_heads": H})`` for an ``nn.MultiheadAttention`` (biases left out where the module
    has none)."""
    if getattr(module, "bias_k", None) is not None or getattr(module, "add_zero_attn", False):
        raise bad_value("mha_params", "module", "an nn.MultiheadAttention without "
                        "add_bias_kv / add_zero_attn", "a module with one of them set")
    E = module.embed_dim
    if getattr(module, "in_proj_weight", None) is not None:
        W = _np(module.in_proj_weight, dtype)
        ws = [W[:E].T, W[E:2 * E].T, W[2 * E:].T]
    else:
        ws = [_np(getattr(module, f"{c}_proj_weight"), dtype).T for c in "qkv"]
    ws = [np.ascontiguousarray(w) for w in ws]
    ws.append(np.ascontiguousarray(_np(module.out_proj.weight, dtype).T))
    kw = {"num_heads": int(module.num_heads)}
    if module.in_proj_bias is not None:
        b = _np(module.in_proj_bias, dtype)
        kw.update(b_q=b[:E].copy(), b_k=b[E:2 * E].copy(), b_v=b[2 * E:].copy())
    if module.out_proj.bias is not None:
        kw["b_o"] = _np(module.out_proj.bias, dtype)
    return tuple(ws), kw


def torch_mask(attn_mask=None, key_padding_mask=None):
    """refrt's ``mask`` (True = may attend, broadcastable to (N, H, L, S)) from PyTorch's
    bool masks (True = blocked): attn_mask (L, S) or (N H, L, S) (reshaped by the caller
    to (N, H, L, S)) and key_padding_mask (N, S).  None when both are None."""
    m = None
    if attn_mask is not None:
        a = np.asarray(attn_mask)
        if a.dtype != np.bool_:
            raise bad_value("torch_mask", "attn_mask", "a bool mask (True = blocked); an "
                            "additive float mask has no refrt equivalent", f"dtype {a.dtype}")
        m = ~a
    if key_padding_mask is not None:
        k = np.asarray(key_padding_mask)
        if k.dtype != np.bool_ or k.ndim != 2:
            raise bad_value("torch_mask", "key_padding_mask", "a 2-d (N, S) bool array",
                            f"dtype {k.dtype}, shape {k.shape}")
        kp = ~k[:, None, None, :]
        m = kp if m is None else (m & kp)
    return m
