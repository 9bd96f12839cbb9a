"""Bind the recurrent cells (registry/recurrent.py) to the kernels.

The pre-activations are one compensated product (recurrent.pyx, Design a): the binding
concatenates [x, h, 1, 1] and [W_ih | W_hh | b_ih | b_hh] (data movement) and calls
linalg's Dot2 matmul; the gate kernels do the rest.  The VJPs' matrix products (du W,
du^T x, column sums) are the same compensated kernels.  Unbatched inputs (x (I,),
h (H,)) run as a batch of one.
"""
from __future__ import annotations

import numpy as np

from .._kernels import recurrent as K
from . import float_impl, float_vjp
from .float_reductions import _mm_nt, _sum_axes


def _batch(a):
    return a if a.ndim == 2 else a[None]


def _preact(x, h, w_ih, w_hh, b_ih, b_hh, threads):
    """(N, G H) = x W_ih^T + b_ih + h W_hh^T + b_hh, each entry one Dot2, rounded once."""
    n, dt = x.shape[0], x.dtype
    ones = np.ones((n, 2), dtype=dt)
    a = np.concatenate([x, h, ones], axis=1)
    bt = np.concatenate([w_ih, w_hh, b_ih[:, None], b_hh[:, None]], axis=1)
    return _mm_nt(a[None], bt[None], threads)[0]


def _grads(du_x, du_h, x, h, w_ih, w_hh, threads, dh_direct=None):
    """Gradients of x, h, the weights and the biases from the pre-activation gradients
    du_x (seen by W_ih) and du_h (seen by W_hh); ``dh_direct`` (N, H), a term added to
    h's gradient, joins the same dot products ([du_h, d] against [W_hh^T | I]), so
    each entry is still rounded once."""
    gx = _mm_nt(du_x[None], np.ascontiguousarray(w_ih.T)[None], threads)[0]      # du W_ih
    wt = w_hh.T
    if dh_direct is not None:
        du_h = np.concatenate([du_h, dh_direct], axis=1)
        wt = np.concatenate([wt, np.eye(wt.shape[0], dtype=wt.dtype)], axis=1)
    gh = _mm_nt(np.ascontiguousarray(du_h)[None], np.ascontiguousarray(wt)[None],
                threads)[0]                                                       # du W_hh
    du_h = du_h[:, :w_hh.shape[0]]
    gw_ih = _mm_nt(np.ascontiguousarray(du_x.T)[None], np.ascontiguousarray(x.T)[None],
                   threads)[0]                                                    # du^T x
    gw_hh = _mm_nt(np.ascontiguousarray(du_h.T)[None], np.ascontiguousarray(h.T)[None],
                   threads)[0]                                                    # du^T h
    gb_ih = _sum_axes(np.ascontiguousarray(du_x), (0,), threads)
    gb_hh = _sum_axes(np.ascontiguousarray(du_h), (0,), threads)
    return gx, gh, gw_ih, gw_hh, gb_ih, gb_hh


def _unbatch(res, like):
    return res if like.ndim == 2 else res[0]


@float_impl("rnn_cell")
def rnn_cell(arrays, params, threads):
    x, h = (_batch(a) for a in arrays[:2])
    z = _preact(x, h, *arrays[2:], threads)
    out = np.empty_like(z)
    K.rnn_fwd(params["nonlinearity"] == "relu", z, out)
    return _unbatch(out, arrays[0])


@float_vjp("rnn_cell")
def rnn_cell_vjp(arrays, params, out, g, threads):
    x, h = (_batch(a) for a in arrays[:2])
    w_ih, w_hh = arrays[2], arrays[3]
    z = _preact(x, h, *arrays[2:], threads)
    du = np.empty_like(z)
    K.rnn_vjp(params["nonlinearity"] == "relu", z,
              np.ascontiguousarray(_batch(np.asarray(g, x.dtype))), du)
    gx, gh, gw_ih, gw_hh, gb_ih, gb_hh = _grads(du, du, x, h, w_ih, w_hh, threads)
    return (_unbatch(gx, arrays[0]), _unbatch(gh, arrays[0]), gw_ih, gw_hh, gb_ih, gb_hh)


@float_impl("lstm_cell")
def lstm_cell(arrays, params, threads):
    x, h, c = (_batch(a) for a in arrays[:3])
    z = _preact(x, h, *arrays[3:], threads)
    hn = np.empty_like(c)
    cn = np.empty_like(c)
    K.lstm_fwd(z, c, hn, cn)
    out = np.stack([hn, cn])
    return out if arrays[0].ndim == 2 else out[:, 0]


@float_vjp("lstm_cell")
def lstm_cell_vjp(arrays, params, out, g, threads):
    x, h, c = (_batch(a) for a in arrays[:3])
    w_ih, w_hh = arrays[3], arrays[4]
    z = _preact(x, h, *arrays[3:], threads)
    g = np.asarray(g, x.dtype)
    out = np.asarray(out, x.dtype)
    if arrays[0].ndim == 1:
        g, out = g[:, None], out[:, None]
    du = np.empty_like(z)
    dc = np.empty_like(c)
    K.lstm_vjp(z, c, np.ascontiguousarray(out[1]), np.ascontiguousarray(g[0]),
               np.ascontiguousarray(g[1]), du, dc)
    gx, gh, gw_ih, gw_hh, gb_ih, gb_hh = _grads(du, du, x, h, w_ih, w_hh, threads)
    u = lambda a: _unbatch(a, arrays[0])
    return (u(gx), u(gh), u(dc), gw_ih, gw_hh, gb_ih, gb_hh)


def _gru_preact(x, h, w_ih, w_hh, b_ih, b_hh, threads):
    """(N, 4H): r and z pre-activations (one Dot2 each), n_x = x W_in^T + b_in and
    n_h = h W_hn^T + b_hn (kept apart: r multiplies n_h)."""
    hid = h.shape[1]
    dt = x.dtype
    zx = np.zeros((hid, x.shape[1]), dt)
    zh = np.zeros((hid, hid), dt)
    zb = np.zeros((hid, 1), dt)
    rows_rz = np.concatenate([w_ih[:2 * hid], w_hh[:2 * hid], b_ih[:2 * hid, None],
                              b_hh[:2 * hid, None]], axis=1)
    rows_nx = np.concatenate([w_ih[2 * hid:], zh, b_ih[2 * hid:, None], zb], axis=1)
    rows_nh = np.concatenate([zx, w_hh[2 * hid:], zb, b_hh[2 * hid:, None]], axis=1)
    a = np.concatenate([x, h, np.ones((x.shape[0], 2), dt)], axis=1)
    bt = np.concatenate([rows_rz, rows_nx, rows_nh], axis=0)
    return _mm_nt(a[None], bt[None], threads)[0]


@float_impl("gru_cell")
def gru_cell(arrays, params, threads):
    x, h = (_batch(a) for a in arrays[:2])
    z = _gru_preact(x, h, *arrays[2:], threads)
    out = np.empty_like(h)
    K.gru_fwd(z, h, out)
    return _unbatch(out, arrays[0])


@float_vjp("gru_cell")
def gru_cell_vjp(arrays, params, out, g, threads):
    x, h = (_batch(a) for a in arrays[:2])
    w_ih, w_hh = arrays[2], arrays[3]
    hid = h.shape[1]
    z = _gru_preact(x, h, *arrays[2:], threads)
    dz = np.empty_like(z)
    dh_direct = np.empty_like(h)
    K.gru_vjp(z, h, np.ascontiguousarray(_batch(np.asarray(g, x.dtype))), dz, dh_direct)
    du_x = np.ascontiguousarray(dz[:, :3 * hid])
    du_h = np.ascontiguousarray(np.concatenate([dz[:, :2 * hid], dz[:, 3 * hid:]], axis=1))
    gx, gh, gw_ih, gw_hh, gb_ih, gb_hh = _grads(du_x, du_h, x, h, w_ih, w_hh, threads,
                                                dh_direct)
    u = lambda a: _unbatch(a, arrays[0])
    return (u(gx), u(gh), gw_ih, gw_hh, gb_ih, gb_hh)
