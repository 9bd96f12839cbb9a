"""Abstract interval transformers for the attention and norm2 ops (issue 10), as data
merged into ``transfer.INTERVAL``.  Same contract as there: real-number bounds in float64
over the input box, ``(lo, hi, nan)``; the driver widens them by the op's tolerance.

* scaled_dot_product_attention: each output row is a convex combination of v's rows
  (softmax weights are >= 0 and sum to 1), so it lies between the least lower and the
  greatest upper bound of v over the keys; a row that may be fully masked also reaches 0
  (the hard-masked softmax gives zeros).  NaN is possible wherever an input of the batch
  may be NaN or unbounded (inf - inf in the scores).
* multi_head_attention: V = value W_v + b_v (interval matmul bounds), each head's output
  row a convex combination of V's rows of that head (0 too where a row may be fully
  masked), then O W_o + b_o by interval matmul bounds; NaN possible on every output of
  a batch entry with an input that may be NaN or unbounded.
* hard_masked_softmax: weights in [0, 1]; exactly 0 where the mask (a point box) blocks;
  NaN possible on a row whose scores may be NaN or unbounded (+inf, or all -inf).
* the norm2 ops: y = xhat * gamma + beta with |xhat| <= sqrt(n - 1) for a centred set of n
  elements (Samuelson's bound; eps > 0 only shrinks it), |xhat| <= sqrt(n) for rms_norm
  and |xhat| <= 1 for weight_norm (a component of a unit vector).
"""
from __future__ import annotations

import math

import numpy as np

from ..registry._norm2_layout import HAS_BETA, layout
from .transfer import _matmul_bounds, _mul_bounds


def _unbounded(box):
    return box.nan | ~np.isfinite(box.lo) | ~np.isfinite(box.hi)


def _sdpa(ins, p, shape):
    q, k, v = ins
    L, S, Ev = q.lo.shape[-2], k.lo.shape[-2], v.lo.shape[-1]
    lead = q.lo.shape[:-2]
    vlo = v.lo.min(axis=-2, keepdims=True) if S else np.zeros(lead + (1, Ev))
    vhi = v.hi.max(axis=-2, keepdims=True) if S else np.zeros(lead + (1, Ev))
    lo = np.broadcast_to(vlo, lead + (L, Ev)).copy()
    hi = np.broadcast_to(vhi, lead + (L, Ev)).copy()
    mask = p.get("mask")
    empty = np.zeros(lead + (L, 1), bool) if S else np.ones(lead + (L, 1), bool)
    if mask is not None and S:
        empty = ~np.asarray(mask).any(axis=-1, keepdims=True)
    lo = np.where(empty, np.minimum(lo, 0.0), lo)
    hi = np.where(empty, np.maximum(hi, 0.0), hi)
    bad = np.zeros(lead, bool)
    for box in ins:
        u = _unbounded(box)
        bad = bad | (u.reshape(lead + (-1,)).any(axis=-1) if u.size else bad)
    nan = np.broadcast_to(bad[..., None, None], lead + (L, Ev))
    return lo, hi, nan


def _mha(ins, p, shape):
    q, k, v, wq, wk, wv, wo, bq, bk, bv, bo = ins
    batched = q.lo.ndim == 3
    N = q.lo.shape[0] if batched else 1
    L, S, D, H = q.lo.shape[-2], k.lo.shape[-2], wq.lo.shape[1], p["num_heads"]
    hd = D // H
    vl, vh = (a.reshape(N, S, -1) for a in (v.lo, v.hi))
    Vl, Vh, _ = _matmul_bounds(vl, vh, wv.lo[None], wv.hi[None])
    Vl, Vh = Vl + bv.lo, Vh + bv.hi
    if S:
        ol = np.broadcast_to(Vl.min(axis=1, keepdims=True), (N, L, D)).copy()
        oh = np.broadcast_to(Vh.max(axis=1, keepdims=True), (N, L, D)).copy()
    else:
        ol, oh = np.zeros((N, L, D)), np.zeros((N, L, D))
    mask = p.get("mask")
    if mask is not None and S:
        empty = ~np.asarray(mask).reshape(N, H, L, S).any(axis=-1)        # (N, H, L)
        empty = np.repeat(empty.transpose(0, 2, 1), hd, axis=-1)           # (N, L, D)
        ol, oh = np.where(empty, np.minimum(ol, 0.0), ol), np.where(empty, np.maximum(oh, 0.0), oh)
    lo, hi, _ = _matmul_bounds(ol, oh, wo.lo[None], wo.hi[None])
    lo, hi = lo + bo.lo, hi + bo.hi
    bad = np.zeros(N, bool)
    for box in (q, k, v):
        bad |= _unbounded(box).reshape(N, -1).any(axis=-1) if box.lo.size else False
    anyw = any(_unbounded(b).any() for b in (wq, wk, wv, wo, bq, bk, bv, bo))
    nan = np.broadcast_to((bad | anyw)[:, None, None], lo.shape) | np.isnan(lo) | np.isnan(hi)
    lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
    return lo.reshape(shape), hi.reshape(shape), nan.reshape(shape)


def _hms(ins, p, shape):
    x, m = ins
    shape = x.lo.shape
    allowed = np.broadcast_to(m.point.astype(bool), shape) if m.is_point else np.ones(shape, bool)
    lo = np.zeros(shape)
    hi = np.where(allowed, 1.0, 0.0)
    u = _unbounded(x) & allowed
    if len(shape):
        ax = p["axis"]
        u = np.broadcast_to(u.any(axis=ax, keepdims=True), shape)
    return lo, hi, u & allowed


def _norm(name):
    beta_in = HAS_BETA[name]

    def transfer(ins, p, shape):
        x, g = ins[0], ins[1]
        L = layout(name, x.lo.shape, p)
        R, D = L.rows(x.lo).shape
        B = math.sqrt(max(D - 1, 0)) if L.centred else (math.sqrt(D) if L.mean else 1.0)
        B = B * (1 + 2.0 ** -20) + 2.0 ** -20
        glo, ghi = np.asarray(L.expand(g.lo)), np.asarray(L.expand(g.hi))
        lo, hi, n = _mul_bounds(np.full((R, D), -B), np.full((R, D), B), glo, ghi)
        if beta_in:
            b = ins[2]
            lo, hi = lo + np.asarray(L.expand(b.lo)), hi + np.asarray(L.expand(b.hi))
            n = n | np.asarray(L.expand(_unbounded(b)))
        rowbad = np.asarray(L.rows(_unbounded(x))).any(axis=1, keepdims=True)
        n = n | rowbad | np.asarray(L.expand(_unbounded(g)))
        return (np.asarray(L.unrows(lo)), np.asarray(L.unrows(hi)),
                np.asarray(L.unrows(np.broadcast_to(n, (R, D)))))
    return transfer


INTERVAL_ATTN = {"scaled_dot_product_attention": _sdpa, "hard_masked_softmax": _hms,
                 "multi_head_attention": _mha}
INTERVAL_ATTN.update({name: _norm(name) for name in HAS_BETA})
