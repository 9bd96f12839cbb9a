"""mp formulas and VJPs of the recurrent cells: the real-number definitions (each
pre-activation one exact fsum, sigmoid(u) = 1 / (1 + e^-u), tanh, and the chain rule
written out), against ``ctx``."""
from __future__ import annotations

import numpy as np

from . import mp_impl, mp_vjp
from .mp_reductions import _fsum


def _batch(a):
    return a if a.ndim == 2 else a[None]


def _sig(ctx, u):
    return ctx.one / (ctx.one + ctx.exp(-u))


def _sigc(ctx, u):
    """1 - sigmoid(u) = sigmoid(-u)."""
    return _sig(ctx, -u)


def _sech2(ctx, u):
    t = ctx.tanh(u)
    return ctx.one - t * t


def _dot_rows(ctx, a, w, bias=()):
    """(N, R): row n of a against row r of w (both object arrays), + the bias terms."""
    n, r = a.shape[0], w.shape[0]
    out = np.empty((n, r), dtype=object)
    for i in range(n):
        for k in range(r):
            terms = [a[i, j] * w[k, j] for j in range(a.shape[1])]
            terms += [b[k] for b in bias]
            out[i, k] = _fsum(ctx, terms)
    return out


def _preact(ctx, x, h, w_ih, w_hh, b_ih, b_hh):
    a = np.concatenate([x, h], axis=1)
    w = np.concatenate([w_ih, w_hh], axis=1)
    return _dot_rows(ctx, a, w, (b_ih, b_hh))


def _grads(ctx, du_x, du_h, x, h, w_ih, w_hh, dh_direct=None):
    gx = _dot_rows(ctx, du_x, np.ascontiguousarray(w_ih.T))
    wt = w_hh.T
    a = du_h
    if dh_direct is not None:
        eye = np.full((wt.shape[0], wt.shape[0]), ctx.zero, dtype=object)
        for j in range(wt.shape[0]):
            eye[j, j] = ctx.one
        a = np.concatenate([du_h, dh_direct], axis=1)
        wt = np.concatenate([wt, eye], axis=1)
    gh = _dot_rows(ctx, a, wt)
    gw_ih = _dot_rows(ctx, du_x.T, x.T)
    gw_hh = _dot_rows(ctx, du_h.T, h.T)
    gb_ih = np.array([_fsum(ctx, list(du_x[:, k])) for k in range(du_x.shape[1])] or [],
                     dtype=object)
    gb_hh = np.array([_fsum(ctx, list(du_h[:, k])) for k in range(du_h.shape[1])] or [],
                     dtype=object)
    return gx, gh, gw_ih, gw_hh, gb_ih, gb_hh


def _u(a, like):
    return a if like.ndim == 2 else a[0]


def _map(fn, *arrays):
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(a[idx] for a in arrays))
    return out


@mp_impl("rnn_cell")
def rnn_cell(ctx, arrays, params):
    x, h = (_batch(a) for a in arrays[:2])
    z = _preact(ctx, x, h, *arrays[2:])
    if params["nonlinearity"] == "relu":
        act = lambda u: u if (u > 0 or ctx.isnan(u)) else ctx.zero
    else:
        act = ctx.tanh
    return _u(_map(act, z), arrays[0])


@mp_vjp("rnn_cell")
def rnn_cell_vjp(ctx, arrays, params, out, g):
    x, h = (_batch(a) for a in arrays[:2])
    z = _preact(ctx, x, h, *arrays[2:])
    g = _batch(np.asarray(g, dtype=object))
    if params["nonlinearity"] == "relu":
        du = _map(lambda u, gi: gi if u > 0 else ctx.zero, z, g)
    else:
        du = _map(lambda u, gi: gi * _sech2(ctx, u), z, g)
    gx, gh, *rest = _grads(ctx, du, du, x, h, arrays[2], arrays[3])
    return (_u(gx, arrays[0]), _u(gh, arrays[0]), *rest)


def _lstm_parts(ctx, z, hid):
    i = _map(lambda u: _sig(ctx, u), z[:, :hid])
    f = _map(lambda u: _sig(ctx, u), z[:, hid:2 * hid])
    gg = _map(ctx.tanh, z[:, 2 * hid:3 * hid])
    o = _map(lambda u: _sig(ctx, u), z[:, 3 * hid:])
    return i, f, gg, o


@mp_impl("lstm_cell")
def lstm_cell(ctx, arrays, params):
    x, h, c = (_batch(a) for a in arrays[:3])
    hid = h.shape[1]
    z = _preact(ctx, x, h, *arrays[3:])
    i, f, gg, o = _lstm_parts(ctx, z, hid)
    cn = _map(lambda fi, ci, ii, gi: _fsum(ctx, [fi * ci, ii * gi]), f, c, i, gg)
    hn = _map(lambda oi, ci: oi * ctx.tanh(ci), o, cn)
    out = np.stack([hn, cn])
    return out if arrays[0].ndim == 2 else out[:, 0]


@mp_vjp("lstm_cell")
def lstm_cell_vjp(ctx, arrays, params, out, g):
    x, h, c = (_batch(a) for a in arrays[:3])
    hid = h.shape[1]
    z = _preact(ctx, x, h, *arrays[3:])
    i, f, gg, o = _lstm_parts(ctx, z, hid)
    cn = _map(lambda fi, ci, ii, gi: _fsum(ctx, [fi * ci, ii * gi]), f, c, i, gg)
    g = np.asarray(g, dtype=object)
    if arrays[0].ndim == 1:
        g = g[:, None]
    gh_, gc_ = g[0], g[1]
    dcn = _map(lambda a, oi, ci, b: a * oi * _sech2(ctx, ci) + b, gh_, o, cn, gc_)
    zi, zf, zg, zo = (z[:, k * hid:(k + 1) * hid] for k in range(4))
    du = np.concatenate([
        _map(lambda d, gi, ii, u: d * gi * ii * _sigc(ctx, u), dcn, gg, i, zi),
        _map(lambda d, ci, fi, u: d * ci * fi * _sigc(ctx, u), dcn, c, f, zf),
        _map(lambda d, ii, u: d * ii * _sech2(ctx, u), dcn, i, zg),
        _map(lambda a, ci, oi, u: a * ctx.tanh(ci) * oi * _sigc(ctx, u), gh_, cn, o, zo),
    ], axis=1)
    dc = _map(lambda d, fi: d * fi, dcn, f)
    gx, gh, *rest = _grads(ctx, du, du, x, h, arrays[3], arrays[4])
    u = lambda a: _u(a, arrays[0])
    return (u(gx), u(gh), u(dc), *rest)


def _gru_parts(ctx, x, h, w_ih, w_hh, b_ih, b_hh):
    hid = h.shape[1]
    a = np.concatenate([x, h], axis=1)
    rz = _dot_rows(ctx, a, np.concatenate([w_ih[:2 * hid], w_hh[:2 * hid]], axis=1),
                   (b_ih[:2 * hid], b_hh[:2 * hid]))
    nx = _dot_rows(ctx, x, w_ih[2 * hid:], (b_ih[2 * hid:],))
    nh = _dot_rows(ctx, h, w_hh[2 * hid:], (b_hh[2 * hid:],))
    return rz[:, :hid], rz[:, hid:], nx, nh


@mp_impl("gru_cell")
def gru_cell(ctx, arrays, params):
    x, h = (_batch(a) for a in arrays[:2])
    ur, uz, nx, nh = _gru_parts(ctx, x, h, *arrays[2:])
    n = _map(lambda a, b, r: ctx.tanh(a + _sig(ctx, r) * b), nx, nh, ur)
    out = _map(lambda u, ni, hi: _fsum(ctx, [_sigc(ctx, u) * ni, _sig(ctx, u) * hi]),
               uz, n, h)
    return _u(out, arrays[0])


@mp_vjp("gru_cell")
def gru_cell_vjp(ctx, arrays, params, out, g):
    x, h = (_batch(a) for a in arrays[:2])
    ur, uz, nx, nh = _gru_parts(ctx, x, h, *arrays[2:])
    g = _batch(np.asarray(g, dtype=object))
    npre = _map(lambda a, b, r: a + _sig(ctx, r) * b, nx, nh, ur)
    n = _map(ctx.tanh, npre)
    dnp = _map(lambda gi, u, p: gi * _sigc(ctx, u) * _sech2(ctx, p), g, uz, npre)
    duz = _map(lambda gi, hi, ni, u: gi * (hi - ni) * _sig(ctx, u) * _sigc(ctx, u),
               g, h, n, uz)
    dur = _map(lambda d, b, u: d * b * _sig(ctx, u) * _sigc(ctx, u), dnp, nh, ur)
    dnh = _map(lambda d, u: d * _sig(ctx, u), dnp, ur)
    ddir = _map(lambda gi, u: gi * _sig(ctx, u), g, uz)
    du_x = np.concatenate([dur, duz, dnp], axis=1)
    du_h = np.concatenate([dur, duz, dnh], axis=1)
    gx, gh, *rest = _grads(ctx, du_x, du_h, x, h, arrays[2], arrays[3], ddir)
    u = lambda a: _u(a, arrays[0])
    return (u(gx), u(gh), *rest)
