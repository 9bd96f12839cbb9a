"""mp formulas for the forward-mode (JVP) ops, written once against ``ctx``.

log_softmax_jvp: out_i = dx_i - sum_j exp(y_j) dx_j, each output one exact sum.

layer_norm_jvp / batch_norm2d_jvp, per normalised set (row) of D elements: c = x - mean(x),
s = 1/sqrt(mean(c^2) + eps), xhat = s c, and with the centring P u = u - mean(u):

    dxhat[u] = s (P u - xhat mean(xhat u))           (d xhat along u; TorchLean's form)
    out      = gamma dxhat[dx] + xhat dgamma + dbeta

VJP.  <g, out> is linear in (dx, dgamma, dbeta): their gradients are layer_norm's own
(dx: s (P a - xhat mean(xhat a)) with a = g gamma, the Jacobian being symmetric; dgamma:
sum g xhat; dbeta: sum g); gamma's is sum g dxhat.  For x: F(x) = <a, dxhat[u]> + <b, xhat>
with b = g dgamma.  The second term's gradient is the first-order one, s (P b - xhat
mean(xhat b)).  For the first, write F1 = s A - s^3 B C with A = <P a, u> (independent of
x), B = <c, u> / D, C = <a, c>; ds[w] = -s^3 <c, w> / D, dB[w] = <P u, w> / D, dC[w] =
<P a, w>, so

    grad F1 = -s^3 A c / D + 3 s^5 B C c / D - s^3 (C / D) P u - s^3 B P a
            = s^2 [(3 mu ma - cov(a, u)) xhat - ma P u - mu P a]

with mu = mean(xhat u), ma = mean(xhat a), cov(a, u) = mean(a u) - mean(a) mean(u)
(tests/test_vjp.py checks it against mpmath.diff of the forward).

max_pool2d_jvp: dx at the first maximum of x in each window (max_pool2d's winner); the
VJP routes g there (max_pool2d's rule) and gives x a zero gradient.
"""
from __future__ import annotations

import itertools

import numpy as np

from . import MP_VJP, mp_impl, mp_vjp
from .conv_geometry import pairs
from .mp_conv import _cells, _first_best, _windows
from .mp_norm2 import _bad, _row_prec, _row_stats
from .mp_reductions import _fsum
from .mpctx import along, is_nan
from ..registry._norm2_layout import layout


def _obj(shape):
    return np.empty(shape, dtype=object)


# ---- log_softmax_jvp ----------------------------------------------------------------------

def _exp(ctx, v):
    return ctx.zero if v == ctx.ninf else ctx.exp(v)


def _rows2(ctx, fn, a, b, axis):
    if a.ndim == 0:
        r = _obj(())
        r[()] = fn([a[()]], [b[()]])[0]
        return r
    return along(fn, a, axis, b)


@mp_impl("log_softmax_jvp")
def log_softmax_jvp(ctx, arrays, params):
    y, dx = arrays

    def row(yr, dr):
        if any(ctx.isnan(v) for v in yr + dr):
            return [ctx.nan] * len(yr)
        terms = [-(_exp(ctx, a) * b) for a, b in zip(yr, dr)]
        return [_fsum(ctx, [d] + terms) for d in dr]
    return _rows2(ctx, row, y, dx, params["axis"])


@mp_vjp("log_softmax_jvp")
def log_softmax_jvp_vjp(ctx, arrays, params, out, g):
    y, dx = arrays
    g = np.asarray(g, dtype=object).reshape(y.shape)
    ax = params["axis"]

    def rows(fn):
        if y.ndim == 0:
            r = _obj(())
            r[()] = fn([y[()]], [dx[()]], [g[()]])[0]
            return r
        return along(fn, y, ax, dx, g)

    def gdx(yr, dr, gr):
        G = _fsum(ctx, gr)
        return [_fsum(ctx, [gj, -(_exp(ctx, a) * G)]) for a, gj in zip(yr, gr)]

    def gy(yr, dr, gr):
        G = _fsum(ctx, gr)
        return [-(_exp(ctx, a) * b * G) for a, b in zip(yr, dr)]
    return rows(gy), rows(gdx)


# ---- layer_norm_jvp / batch_norm2d_jvp ----------------------------------------------------

def _layout(name, x, params):
    if name == "layer_norm_jvp":
        D = x.shape[-1]
        R = int(np.prod(x.shape[:-1], dtype=np.int64))
        return (lambda a: np.asarray(a).reshape(R, D), lambda a: np.asarray(a).reshape(x.shape),
                lambda p: np.broadcast_to(np.asarray(p, dtype=object).reshape(1, D), (R, D)),
                lambda prod: np.asarray(prod).T)
    L = layout("batch_norm", x.shape, params)
    return L.rows, L.unrows, L.expand, L.reduce_view


def _mean(ctx, terms):
    return _fsum(ctx, terms) / len(terms)


def _stats(ctx, row, eps):
    """(xhat list, s) of one set, or None where the row is non-finite or v + eps = 0."""
    if _bad(ctx, row):
        return None
    c, inv = _row_stats(ctx, row, eps, True, True)
    if inv is None:
        return None
    return [ci * inv for ci in c], inv


def _dxhat(ctx, xh, s, u):
    mu = _mean(ctx, [a * b for a, b in zip(xh, u)])
    m1 = _mean(ctx, u)
    return [s * _fsum(ctx, [ui, -m1, -(xi * mu)]) for xi, ui in zip(xh, u)]


def _bind_norm(name):
    def fwd(ctx, arrays, params):
        x, gamma, dx, dgamma, dbeta = arrays
        rows, unrows, expand, _ = _layout(name, x, params)
        xr, ur = rows(x), rows(dx)
        gr, dgr, dbr = expand(gamma), expand(dgamma), expand(dbeta)
        R, D = xr.shape
        out = _obj((R, D))
        for r in range(R):
            row, u = list(xr[r]), list(ur[r])
            with _row_prec(ctx, row, u, list(gr[r]), list(dgr[r]), list(dbr[r]),
                           [ctx.mpf(params["eps"])], factor=6):
                st = _stats(ctx, row, params["eps"])
                if st is None or _bad(ctx, u):
                    vals = [ctx.nan] * D
                else:
                    xh, s = st
                    dxh = _dxhat(ctx, xh, s, u)
                    vals = [_fsum(ctx, [gr[r, i] * dxh[i], xh[i] * dgr[r, i], dbr[r, i]])
                            for i in range(D)]
            out[r] = [+v for v in vals]
        return unrows(out)

    def vjp(ctx, arrays, params, out, g):
        x, gamma, dx, dgamma, dbeta = arrays
        rows, unrows, expand, reduce_view = _layout(name, x, params)
        xr, ur = rows(x), rows(dx)
        gr_ = rows(np.asarray(g, dtype=object).reshape(x.shape))
        gam, dgam = expand(gamma), expand(dgamma)
        R, D = xr.shape
        res = [_obj((R, D)) for _ in range(5)]   # gx, g dxhat, gdx, g xhat, g
        for r in range(R):
            row, u, gv = list(xr[r]), list(ur[r]), list(gr_[r])
            with _row_prec(ctx, row, u, gv, list(gam[r]), list(dgam[r]),
                           [ctx.mpf(params["eps"])], factor=8):
                st = _stats(ctx, row, params["eps"])
                if st is None or _bad(ctx, u):
                    for k in range(4):
                        res[k][r] = [ctx.nan] * D
                    res[4][r] = gv
                    continue
                xh, s = st
                a = [gv[i] * gam[r, i] for i in range(D)]
                b = [gv[i] * dgam[r, i] for i in range(D)]
                m_u, m_a, m_b = _mean(ctx, u), _mean(ctx, a), _mean(ctx, b)
                mu = _mean(ctx, [p * q for p, q in zip(xh, u)])
                ma = _mean(ctx, [p * q for p, q in zip(xh, a)])
                mb = _mean(ctx, [p * q for p, q in zip(xh, b)])
                cov = _fsum(ctx, [_mean(ctx, [p * q for p, q in zip(a, u)]), -(m_a * m_u)])
                k3 = 3 * mu * ma - cov
                gx = [_fsum(ctx, [s * s * k3 * xh[i], -(s * s * ma * u[i]),
                                  s * s * ma * m_u, -(s * s * mu * a[i]), s * s * mu * m_a,
                                  s * b[i], -(s * m_b), -(s * xh[i] * mb)]) for i in range(D)]
                gdx = [s * _fsum(ctx, [a[i], -m_a, -(xh[i] * ma)]) for i in range(D)]
                dxh = _dxhat(ctx, xh, s, u)
                res[0][r] = [+v for v in gx]
                res[1][r] = [gv[i] * dxh[i] for i in range(D)]
                res[2][r] = [+v for v in gdx]
                res[3][r] = [gv[i] * xh[i] for i in range(D)]
                res[4][r] = gv

        def reduce(prod):
            red = np.asarray(reduce_view(prod))
            vals = _obj(red.shape[0])
            for i in range(red.shape[0]):
                vals[i] = _fsum(ctx, list(red[i])) if red.shape[1] else ctx.zero
            return vals.reshape(gamma.shape)
        return (unrows(res[0]), reduce(res[1]), unrows(res[2]), reduce(res[3]),
                reduce(res[4]))

    mp_impl(name)(fwd)
    mp_vjp(name)(vjp)


for _name in ("layer_norm_jvp", "batch_norm2d_jvp"):
    _bind_norm(_name)


# ---- max_pool2d_jvp -----------------------------------------------------------------------

@mp_impl("max_pool2d_jvp")
def max_pool2d_jvp(ctx, arrays, params):
    params = pairs(params)
    x, dx = arrays
    x4, (ho, wo), (hs, he, ws, we, _, _) = _windows("max_pool2d", params, x)
    d4 = dx if dx.ndim == 4 else dx[None]
    n, c = x4.shape[:2]
    out = _obj((n, c, ho, wo))
    for s, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        cells = _cells(x4, s, ch, hs[i], he[i], ws[j], we[j], ctx.zero)
        r, q = cells[_first_best(ctx, cells, lambda a, b: a > b)][1]
        out[s, ch, i, j] = d4[s, ch, r, q]
    return out if x.ndim == 4 else out[0]


@mp_vjp("max_pool2d_jvp")
def max_pool2d_jvp_vjp(ctx, arrays, params, out, g):
    x, dx = arrays
    (gdx,) = MP_VJP["max_pool2d"](ctx, [x], params, None, g)
    gx = _obj(x.shape)
    gx.ravel()[:] = [ctx.zero] * x.size
    return gx, gdx


# ---- smooth_max_pool2d_jvp ----------------------------------------------------------------

def _smooth_jvp_window(ctx, cells, dcells, beta):
    """(out, weights or None) of one window: sum_k softmax(beta x)_k dx_k."""
    k = _first_best(ctx, cells, (lambda a, b: a > b) if beta > 0 else (lambda a, b: a < b))
    p = cells[k][0]
    if is_nan(ctx, p):
        return p, None
    if not ctx.isfinite(p):
        return dcells[k], None
    B = ctx.mpf(beta)
    e = [ctx.exp(B * (v - p)) for v, _ in cells]
    S = _fsum(ctx, e)
    return _fsum(ctx, [a * d for a, d in zip(e, dcells)]) / S, [a / S for a in e]


def _smooth_cells(ctx, name, params, x, dx):
    x4, (ho, wo), (hs, he, ws, we, _, _) = _windows("smooth_max_pool2d", params, x)
    d4 = dx if dx.ndim == 4 else dx[None]
    n, c = x4.shape[:2]
    for s, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        cells = _cells(x4, s, ch, hs[i], he[i], ws[j], we[j], ctx.zero)
        dcells = [d4[s, ch][pos] if pos is not None else ctx.zero for _, pos in cells]
        yield (s, ch, i, j), cells, dcells, x4.shape, (n, c, ho, wo)


@mp_impl("smooth_max_pool2d_jvp")
def smooth_max_pool2d_jvp(ctx, arrays, params):
    params = pairs(params)
    x, dx = arrays
    x4, (ho, wo), _ = _windows("smooth_max_pool2d", params, x)
    out = _obj(x4.shape[:2] + (ho, wo))
    for idx, cells, dcells, _, oshape in _smooth_cells(ctx, "", params, x, dx):
        out[idx] = _smooth_jvp_window(ctx, cells, dcells, params["beta"])[0]
    return out if x.ndim == 4 else out[0]


@mp_vjp("smooth_max_pool2d_jvp")
def smooth_max_pool2d_jvp_vjp(ctx, arrays, params, out, g):
    params = pairs(params)
    x, dx = arrays
    B = ctx.mpf(params["beta"])
    terms = {}
    for idx, cells, dcells, _, oshape in _smooth_cells(ctx, "", params, x, dx):
        gv = np.asarray(g, dtype=object).reshape(oshape)[idx]
        o, w = _smooth_jvp_window(ctx, cells, dcells, params["beta"])
        if w is None:
            continue
        for (v, pos), wk, dk in zip(cells, w, dcells):
            if pos is not None:
                terms.setdefault(idx[:2] + pos, []).append(gv * B * wk * (dk - o))
    x4 = x if x.ndim == 4 else x[None]
    gx = _obj(x4.shape)
    for i in itertools.product(*(range(k) for k in x4.shape)):
        t = terms.get(i)
        gx[i] = _fsum(ctx, t) if t else ctx.zero
    (gdx,) = MP_VJP["smooth_max_pool2d"](ctx, [x], params, None, g)
    return gx.reshape(x.shape), gdx


# ---- scaled_dot_product_attention_jvp -----------------------------------------------------
# TorchLean scaledDotProductAttentionJvp, over the allowed keys of each query row:
#     dS_j = scale (<dq_i, k_j> + <q_i, dk_j>),   A = SDPA's weights (mp_attention)
#     out_i = sum_j A_j (dS_j - sum_l A_l dS_l) v_j + sum_j A_j dv_j
# with dS_j - sum_l A_l dS_l = sum_l A_l (dS_j - dS_l) (sum A = 1), each dS_j - dS_l one
# exact sum of products (no cancellation of rounded scores); no allowed key: 0.  The VJP
# with respect to (dq, dk, dv) is SDPA's VJP at (q, k, v) (the JVP is J (dq, dk, dv));
# q, k, v are not differentiable here (registry contract).

@mp_impl("scaled_dot_product_attention_jvp")
def sdpa_jvp(ctx, arrays, params):
    from .mp_attention import _scale, _split, _weights
    q, k, v, m, B, L, S, E, Ev = _split(arrays[:3], params)
    dq = np.asarray(arrays[3], dtype=object).reshape(B, L, E)
    dk = np.asarray(arrays[4], dtype=object).reshape(B, S, E)
    dv = np.asarray(arrays[5], dtype=object).reshape(B, S, Ev)
    scale = _scale(ctx, E, params.get("scale"))
    out = _obj((B, L, Ev))
    for b in range(B):
        for i in range(L):
            idx, A = _weights(ctx, q[b, i], k[b], m[b, i], scale)
            prods = [[a * c for a, c in zip(dq[b, i], k[b, j])]
                     + [a * c for a, c in zip(q[b, i], dk[b, j])] for j in idx]
            W = [a * _fsum(ctx, [al * _fsum(ctx, pj + [-t for t in pl]) * scale
                                 for al, pl in zip(A, prods)])
                 for a, pj in zip(A, prods)]
            for c in range(Ev):
                out[b, i, c] = _fsum(ctx, [w * v[b, j, c] for w, j in zip(W, idx)]
                                     + [a * dv[b, j, c] for a, j in zip(A, idx)]) \
                    if idx else ctx.zero
    return out.reshape(arrays[0].shape[:-1] + (Ev,))


@mp_vjp("scaled_dot_product_attention_jvp")
def sdpa_jvp_vjp(ctx, arrays, params, out, g):
    return (None, None, None) + tuple(MP_VJP["scaled_dot_product_attention"](
        ctx, list(arrays[:3]), params, None, g))
