"""Condition-number budgets (see _terms.py) for the recurrent cells' VJPs.

Every input gradient of a cell is a sum over gates (and over the batch for the weights)
of products of the pre-activation gradient du with an input: dx = du W_ih,
dW_ih = du^T x, db = sum(du, 0), ...  Those sums cancel (a gradient is a difference of
terms), and du itself contains differences: LSTM dc' = g_c + g_h o sech^2(c'), GRU
(h - n).  The budget of each component is the sum of the magnitudes of its terms, with
|du| built from the magnitudes of those inner terms, in float64 from the exact gates
of the inputs (an estimate is enough for a budget).
"""
from __future__ import annotations

import numpy as np


def _f(a):
    return np.asarray(a, dtype=np.float64)


def _b(a):
    a = _f(a)
    return a if a.ndim == 2 else a[None]


def _sig(u):
    # e^(-|u|) / (1 + e^(-|u|)) on the side where the result is small: it keeps its
    # relative accuracy down to e^-745 (0.5 (1 + tanh(u / 2)) was 0 below u = -37)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(u))
        return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sech2(u):
    with np.errstate(all="ignore"):
        e = np.exp(-2.0 * np.abs(u))
        return 4.0 * e / (1.0 + e) ** 2


def _pre(x, h, w_ih, w_hh, b_ih, b_hh):
    """The pre-activations and the magnitudes of their terms (sum |x W| + |h W| + |b|):
    a pre-activation rounded from a cancelling dot is off by ~eps times the latter."""
    w_ih, w_hh, b_ih, b_hh = (_f(a) for a in (w_ih, w_hh, b_ih, b_hh))
    with np.errstate(all="ignore"):
        u = x @ w_ih.T + h @ w_hh.T + b_ih + b_hh
        U = np.abs(x) @ np.abs(w_ih).T + np.abs(h) @ np.abs(w_hh).T + np.abs(b_ih) + np.abs(b_hh)
    return u, U


# A factor F(u) of a product, evaluated at a pre-activation u known to within eps * U,
# is off by ~eps * U |F'(u)|: each factor's budget is |F| + U |F'| (first order).
# 1 - s is written s(-u): for u > ~37 the float64 s(u) rounds to 1, and s (1 - s) was 0,
# a zero budget for a sigmoid' that is e^-u (the hunt's lstm_cell case: u = 108.27
# rounded to float32 moves e^-u by 45 ulp, all of it the pre-activation's rounding).
def S(u, U):                       # sigmoid
    s = _sig(u)
    with np.errstate(all="ignore"):
        return s + U * s * _sig(-u)


def SP(u, U):                      # sigmoid' = s s(-u); sigmoid'' = s' (1 - 2 s) = s' (s(-u) - s)
    s, sm = _sig(u), _sig(-u)
    with np.errstate(all="ignore"):
        return s * sm * (1 + U * np.abs(sm - s))


def T(u, U):                       # |tanh|
    return np.abs(np.tanh(u)) + U * _sech2(u)


def TP(u, U):                      # sech^2; (sech^2)' = -2 tanh sech^2
    return _sech2(u) * (1 + 2 * U * np.abs(np.tanh(u)))


def _out(du_x, du_h, x, h, w_ih, w_hh, like, extra_h=None):
    # du is stored in the working dtype: in the subnormal range it is off by up to its
    # quantum (the smallest subnormal), which the products with W then scale up (a
    # float32 sigmoid' of e^-106 times c = 87 is ~1e-45, three bits); the budget of each
    # du component therefore includes that quantum, in units of eps
    fi = np.finfo(like.dtype if like.dtype.kind == "f" else np.float64)
    q = float(fi.smallest_subnormal) / float(fi.eps)
    du_x, du_h = du_x + q, du_h + q
    with np.errstate(all="ignore"):
        tx = du_x @ np.abs(_f(w_ih))
        th = du_h @ np.abs(_f(w_hh))
        if extra_h is not None:
            th = th + extra_h
        res = (tx, th, du_x.T @ np.abs(x), du_h.T @ np.abs(h), du_x.sum(0), du_h.sum(0))
    if like.ndim == 1:
        res = (res[0][0], res[1][0]) + res[2:]
    return res


def rnn_cell(arrays, params, g):
    x, h = (_b(a) for a in arrays[:2])
    u, U = _pre(x, h, *arrays[2:])
    g = np.abs(_b(g))
    with np.errstate(all="ignore"):
        du = g * (TP(u, U) if params["nonlinearity"] == "tanh" else (u > 0))
    return _out(du, du, x, h, arrays[2], arrays[3], arrays[0])


def lstm_cell(arrays, params, g):
    x, h, c = (_b(a) for a in arrays[:3])
    hid = h.shape[1]
    u, U = _pre(x, h, *arrays[3:])
    g = np.abs(_f(g))
    if arrays[0].ndim == 1:
        g = g[:, None]
    blk = lambda a, k: a[:, k * hid:(k + 1) * hid]
    with np.errstate(all="ignore"):
        (ui, uf, ug, uo), (Ui, Uf, Ug, Uo) = ([blk(a, k) for k in range(4)] for a in (u, U))
        cn = _sig(uf) * c + _sig(ui) * np.tanh(ug)
        C = S(uf, Uf) * np.abs(c) + S(ui, Ui) * T(ug, Ug)        # c' to within eps * C
        dcn = g[1] + g[0] * S(uo, Uo) * TP(cn, C)               # |g_c| + |g_h o sech^2|
        du = np.concatenate([dcn * T(ug, Ug) * SP(ui, Ui), dcn * np.abs(c) * SP(uf, Uf),
                             dcn * S(ui, Ui) * TP(ug, Ug),
                             g[0] * T(cn, C) * SP(uo, Uo)], axis=1)
        dc = dcn * S(uf, Uf)
    gx, gh, *rest = _out(du, du, x, h, arrays[3], arrays[4], arrays[0])
    return (gx, gh, dc if arrays[0].ndim == 2 else dc[0], *rest)


def gru_cell(arrays, params, g):
    x, h = (_b(a) for a in arrays[:2])
    w_ih, w_hh, b_ih, b_hh = (_f(a) for a in arrays[2:])
    hid = h.shape[1]
    g = np.abs(_b(g))
    ax, ah = np.abs(x), np.abs(h)
    with np.errstate(all="ignore"):
        ur, Ur = _pre(x, h, w_ih[:hid], w_hh[:hid], b_ih[:hid], b_hh[:hid])
        uz, Uz = _pre(x, h, w_ih[hid:2 * hid], w_hh[hid:2 * hid], b_ih[hid:2 * hid],
                      b_hh[hid:2 * hid])
        nx = x @ w_ih[2 * hid:].T + b_ih[2 * hid:]
        nh = h @ w_hh[2 * hid:].T + b_hh[2 * hid:]
        Nx = ax @ np.abs(w_ih[2 * hid:]).T + np.abs(b_ih[2 * hid:])
        Nh = ah @ np.abs(w_hh[2 * hid:]).T + np.abs(b_hh[2 * hid:])
        npre = nx + _sig(ur) * nh
        P = Nx + S(ur, Ur) * Nh                                  # npre to within eps * P
        dnp = g * S(-uz, Uz) * TP(npre, P)
        duz = g * (ah + T(npre, P)) * SP(uz, Uz)
        dur = dnp * Nh * SP(ur, Ur)
        du_x = np.concatenate([dur, duz, dnp], axis=1)
        du_h = np.concatenate([dur, duz, dnp * S(ur, Ur)], axis=1)
    return _out(du_x, du_h, x, h, w_ih, w_hh, arrays[0], extra_h=g * S(uz, Uz))
