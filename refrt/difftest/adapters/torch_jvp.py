"""PyTorch rows for the forward-mode (JVP) ops (merged into torch.py's table).

Each row is ``torch.func.jvp`` of the torch primal at the primal inputs with the tangents,
(scaled_dot_product_attention_jvp under torch's math SDPA backend: the CPU flash kernel
has no forward AD), except log_softmax_jvp: refrt's op takes the log_softmax *output* y (TorchLean
logSoftmaxJvpSpec), so its row evaluates the same formula, dx - (exp(y) dx).sum(dim), in
torch ops (torch.func.jvp of F.log_softmax at y agrees only where exp(y) sums to 1).
batch_norm2d_jvp is the JVP of F.batch_norm(training=True) (x given a batch axis for
TorchLean's (C, ...) form); beta does not enter, zeros are passed for it.  Native eps is
torch's 1e-5 for the norms.  ``grad=False``: reverse mode through a dual-tensor JVP is not
the computation users run, so the tester compares the forward only.
"""
from __future__ import annotations


def entries(torch):
    from ._base import Entry as E
    F = torch.nn.functional
    jvp = torch.func.jvp
    pool = ("kernel_size", "stride", "padding")

    def lsm(y, dx, axis):
        return dx - (torch.exp(y) * dx).sum(axis, keepdim=True)

    def ln(x, gamma, dx, dgamma, dbeta, eps):
        D = x.shape[-1]
        return jvp(lambda a, g, b: F.layer_norm(a, (D,), g, b, eps),
                   (x, gamma, torch.zeros_like(gamma)), (dx, dgamma, dbeta))[1]

    def bn(x, gamma, dx, dgamma, dbeta, eps, channel_axis):
        def f(a, g, b):
            ab = a[None] if channel_axis == 0 else a
            y = F.batch_norm(ab, None, None, g, b, True, 0.0, eps)
            return y[0] if channel_axis == 0 else y
        return jvp(f, (x, gamma, torch.zeros_like(gamma)), (dx, dgamma, dbeta))[1]

    def mp(x, dx, kernel_size, stride, padding):
        return jvp(lambda a: F.max_pool2d(a, kernel_size, stride, padding), (x,), (dx,))[1]

    def sdpa(q, k, v, dq, dk, dv, mask=None, is_causal=False, scale=None):
        import numpy as np
        from torch.nn.attention import SDPBackend, sdpa_kernel
        m = None if (mask is None or is_causal) else torch.as_tensor(np.asarray(mask))
        # torch 2.13's CPU flash kernel has no forward AD: the math backend has
        with sdpa_kernel(SDPBackend.MATH):
            return jvp(lambda a, b, c: F.scaled_dot_product_attention(
                a, b, c, attn_mask=m, is_causal=is_causal, scale=scale), (q, k, v),
                (dq, dk, dv))[1]

    return {
        "scaled_dot_product_attention_jvp": E(
            sdpa, "torch.func.jvp(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, "
            "attn_mask=mask, is_causal={is_causal}, scale={scale}), (q, k, v), (dq, dk, "
            "dv))[1]", params=("mask", "is_causal", "scale"), grad=False,
            conventions="torch.func.jvp of F.scaled_dot_product_attention under "
            "sdpa_kernel(SDPBackend.MATH) (the CPU flash kernel has no forward AD); bool "
            "attn_mask True = may attend, as refrt"),
        "log_softmax_jvp": E(lsm, "dx - (torch.exp(y) * dx).sum({axis}, keepdim=True)",
                             params=("axis",), grad=False,
                             conventions="the formula in torch ops (y is log_softmax's output)"),
        "layer_norm_jvp": E(ln, "torch.func.jvp(lambda a, g, b: F.layer_norm(a, (x.shape[-1],), "
                            "g, b, {eps}), (x, gamma, torch.zeros_like(gamma)), (dx, dgamma, "
                            "dbeta))[1]", params=("eps",), native={"eps": 1e-5}, grad=False,
                            conventions="torch.func.jvp of F.layer_norm; native eps 1e-5"),
        "batch_norm2d_jvp": E(bn, "torch.func.jvp(lambda a, g, b: F.batch_norm(a, None, None, g, "
                              "b, True, 0.0, {eps}), (x, gamma, torch.zeros_like(gamma)), (dx, "
                              "dgamma, dbeta))[1]", params=("eps", "channel_axis"),
                              native={"eps": 1e-5}, grad=False,
                              conventions="torch.func.jvp of F.batch_norm(training=True); "
                              "channel_axis=0: x[None]; native eps 1e-5"),
        "max_pool2d_jvp": E(mp, "torch.func.jvp(lambda a: F.max_pool2d(a, {kernel_size}, "
                            "stride={stride}, padding={padding}), (x,), (dx,))[1]",
                            params=pool, grad=False,
                            conventions="torch.func.jvp of F.max_pool2d (same winner but at "
                            "ties and NaN)"),
    }
