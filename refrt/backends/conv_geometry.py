"""Window geometry shared by the float and mp bindings of the conv/pool ops.

Windows are half-open index ranges [hs[i], he[i]) per output row (and the same per
column); they are nondecreasing in i, so the outputs whose window holds input row h are
the contiguous range [olo[h], ohi[h]) (``inverse``).  Pure index arithmetic (NumPy).
"""
from __future__ import annotations

import numpy as np


def sliding(n_in, n_out, k, s, p, clip=True):
    """Pool windows start = i s - p, end = start + k, clipped to [0, n_in) if ``clip``."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    end = start + k
    if clip:
        return np.maximum(start, 0), np.minimum(end, n_in)
    return start, end


def adaptive(n_in, n_out):
    """TorchLean/PyTorch bins [floor(i n_in / n_out), ceil((i + 1) n_in / n_out))."""
    i = np.arange(n_out, dtype=np.int64)
    return (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)


def inverse(hs, he, n_in):
    """[olo[h], ohi[h]): the outputs whose window [hs, he) holds h, for 0 <= h < n_in."""
    h = np.arange(n_in, dtype=np.int64)
    return (np.searchsorted(he, h, side="right").astype(np.int64),
            np.searchsorted(hs, h, side="right").astype(np.int64))


def pool_windows(op, params, H, W, Ho, Wo):
    """(hs, he, ws, we, divh, divw) for a pool op on an H x W input (divisor dh[i] dw[j])."""
    if op.startswith("adaptive"):
        hs, he = adaptive(H, Ho)
        ws, we = adaptive(W, Wo)
        return hs, he, ws, we, he - hs, we - ws
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    clip = op != "smooth_max_pool2d"      # TorchLean's smooth pool counts padded cells as 0
    hs, he = sliding(H, Ho, kh, sh, ph, clip)
    ws, we = sliding(W, Wo, kw, sw, pw, clip)
    if op == "avg_pool2d" and params["count_include_pad"]:
        dh, dw = np.full(Ho, kh, np.int64), np.full(Wo, kw, np.int64)
    else:
        dh, dw = he - hs, we - ws
    return hs, he, ws, we, dh, dw


def conv_out(n_in, k, s, p, d):
    return (n_in + 2 * p - d * (k - 1) - 1) // s + 1


PAIRS = ("kernel_size", "stride", "padding", "dilation", "output_padding", "output_size")


def pairs(params):
    """The shape rule's normalised params (int -> (int, int), stride None -> kernel_size)
    for callers of a binding that skip the rule (the backend tables called directly)."""
    p = dict(params)
    for k in PAIRS:
        if isinstance(p.get(k), (int, np.integer)) and not isinstance(p.get(k), bool):
            p[k] = (int(p[k]), int(p[k]))
    if "kernel_size" in p and p.get("stride") is None:
        p["stride"] = p["kernel_size"]
    return p
