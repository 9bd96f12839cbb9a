"""Bind the multi-head attention kernels (``refrt._kernels.mha``) to op names.

Every product here goes through ``float_reductions._mm_nt`` (correctly rounded: the
Ozaki scheme or Dot2, docs/matmul.md) on augmented operands, so the pipeline carries
double-words (hi + lo, ~2p bits) between stages and rounds once at the end:

* a projection P = x W + b as hi = round(x W + b) (the operand [x | 1] times [W ; b])
  and lo = round(x W + b - hi) ([x | 1 | hi] times [W ; b ; -I]: the exact remainder,
  rounded once; hi + lo = P to ~2^-2p relative);
* the head outputs O (double-word) from ``mha_core_fwd`` (refrt/_kernels/mha.pyx);
* out = round(O_hi W_o + O_lo W_o + b_o) ([O_hi | O_lo | 1] times [W_o ; W_o ; b_o]).

The VJP does the same: dO = g W_o^T as a double-word, the core VJP's double-word dQ, dK,
dV, then each parameter and input gradient one correctly rounded product of the
stacked double-word parts (dW_q = [x ; x]^T [dQ_hi ; dQ_lo], ...).  Head split and
combine are column ranges of (N, L, H hd) (no data movement); the mask is materialised
as uint8 (N, H, L, S).
"""
from __future__ import annotations

import numpy as np

from .._kernels import mha as K
from . import float_impl, float_vjp
from .float_attention import _DUMMY, scale_dw
from .float_reductions import _mm_nt


def _mm(a, b, threads):
    """a (m, n) @ b (n, p), correctly rounded."""
    if a.shape[0] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)
    if a.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)
    return _mm_nt(a[None], np.ascontiguousarray(b.T)[None], threads)[0]


def _proj_dw(x, w, b, threads):
    """(hi, lo) of x (R, E) W (E, D) + b (D,)."""
    R, D = x.shape[0], w.shape[1]
    one = np.ones((R, 1), dtype=x.dtype)
    hi = _mm(np.hstack([x, one]), np.vstack([w, b[None]]), threads)
    eye = -np.eye(D, dtype=x.dtype)
    lo = _mm(np.hstack([x, one, hi]), np.vstack([w, b[None], eye]), threads)
    return hi, lo


def _dw_times(h, l, w, threads, bias=None):
    """round((h + l) W (+ bias)) for a double-word (R, D) times W (D, P)."""
    parts = [h, l] + ([np.ones((h.shape[0], 1), h.dtype)] if bias is not None else [])
    ws = [w, w] + ([bias[None]] if bias is not None else [])
    return _mm(np.hstack(parts), np.vstack(ws), threads)


def _dw_times_lo(h, l, w, hi, threads):
    """lo of (h + l) W: round((h + l) W - hi)."""
    return _mm(np.hstack([h, l, hi]), np.vstack([w, w, -np.eye(w.shape[1], dtype=w.dtype)]),
               threads)


class _Setup:
    """Flattened shapes, the double-word projections and the mask of one call."""

    def __init__(self, arrays, params, threads):
        q, k, v, wq, wk, wv, wo, bq, bk, bv, bo = arrays
        self.batched = q.ndim == 3
        self.N = q.shape[0] if self.batched else 1
        self.L, self.S = q.shape[-2], k.shape[-2]
        self.D, self.H = wq.shape[1], params["num_heads"]
        self.hd = self.D // self.H
        self.x = [a.reshape(-1, a.shape[-1]) for a in (q, k, v)]
        self.P = [_proj_dw(x, w, b, threads) for x, w, b in zip(self.x, (wq, wk, wv), (bq, bk, bv))]
        m = params.get("mask")
        self.has = m is not None
        self.mask = np.ascontiguousarray(m, dtype=np.uint8).reshape(-1) if self.has else _DUMMY
        self.sch, self.scl = scale_dw(self.hd, params.get("scale"), q.dtype)

    def core(self, threads):
        oh = np.zeros((self.N * self.L, self.D), dtype=self.x[0].dtype)
        ol = np.zeros_like(oh)
        if oh.size and self.S:
            (qh, ql), (kh, kl), (vh, vl) = self.P
            K.mha_core_fwd(qh.reshape(-1), ql.reshape(-1), kh.reshape(-1), kl.reshape(-1),
                           vh.reshape(-1), vl.reshape(-1), self.mask, self.has, self.sch,
                           self.scl, self.N, self.H, self.L, self.S, self.hd,
                           oh.reshape(-1), ol.reshape(-1), threads)
        return oh, ol


@float_impl("multi_head_attention")
def multi_head_attention(arrays, params, threads):
    s = _Setup(arrays, params, threads)
    wo, bo = arrays[6], arrays[10]
    oh, ol = s.core(threads)
    out = _dw_times(oh, ol, wo, threads, bias=bo)
    return out.reshape(arrays[0].shape[:-1] + (wo.shape[1],))


@float_vjp("multi_head_attention")
def multi_head_attention_vjp(arrays, params, out, g, threads):
    s = _Setup(arrays, params, threads)
    q, k, v, wq, wk, wv, wo, bq, bk, bv, bo = arrays
    dt = q.dtype
    g2 = np.ascontiguousarray(g, dtype=dt).reshape(-1, wo.shape[1])
    R = g2.shape[0]
    oh, ol = s.core(threads)
    # output projection: dW_o = O^T g, db_o = sum(g), dO = g W_o^T (double-word)
    gwo = _mm(np.vstack([oh, ol]).T, np.vstack([g2, g2]), threads)
    gbo = _mm(np.ones((1, R), dt), g2, threads)[0]
    wot = np.ascontiguousarray(wo.T)
    doh = _mm(g2, wot, threads)
    dol = _mm(np.hstack([g2, doh]), np.vstack([wot, -np.eye(s.D, dtype=dt)]), threads)
    (qh, ql), (kh, kl), (vh, vl) = s.P
    dq = [np.zeros_like(qh), np.zeros_like(qh)]
    dk = [np.zeros_like(kh), np.zeros_like(kh)]
    dv = [np.zeros_like(vh), np.zeros_like(vh)]
    if qh.size and s.S:
        K.mha_core_vjp(qh.reshape(-1), ql.reshape(-1), kh.reshape(-1), kl.reshape(-1),
                       vh.reshape(-1), vl.reshape(-1), s.mask, s.has, s.sch, s.scl,
                       s.N, s.H, s.L, s.S, s.hd, doh.reshape(-1), dol.reshape(-1),
                       *(a.reshape(-1) for a in dq + dk + dv), threads)
    grads_x, grads_w, grads_b = [], [], []
    for x, w, (dh, dl), a in zip(s.x, (wq, wk, wv), (dq, dk, dv), (q, k, v)):
        n = x.shape[0]
        grads_x.append(_dw_times(dh, dl, np.ascontiguousarray(w.T), threads).reshape(a.shape))
        # dW = x^T (dh + dl) = [x ; x]^T [dh ; dl]
        grads_w.append(_mm(np.vstack([x, x]).T, np.vstack([dh, dl]), threads))
        grads_b.append(_mm(np.ones((1, 2 * n), dt), np.vstack([dh, dl]), threads)[0])
    return (*grads_x, *grads_w, gwo, *grads_b, gbo)
