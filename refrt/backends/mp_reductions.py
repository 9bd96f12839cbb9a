"""mp formulas for reductions, the softmax family, linear algebra and shape ops.

Each is the direct real-number definition written against ``ctx`` (see mpctx): sums are
``ctx.fsum``, products and quotients plain ``*`` and ``/``; only input values are compared
(the max shift of the softmax family uses the max of the inputs, which leaves the
real-number value unchanged).  Special rows follow refrt._kernels.softmax's Design (e):
NaN anywhere -> NaN; a +inf entry -> logsumexp +inf, softmax/log_softmax NaN; all -inf ->
logsumexp -inf, softmax/log_softmax NaN.
"""
from __future__ import annotations

import mpmath
import numpy as np

from ..errors import bad_value
from . import mp_impl, mp_vjp
from .mpctx import along, is_inf, is_nan, reduce_along, scalar


SPAN = 4400  # > 2 * (float64's exponent range + 53): products of two float64 values


def _fsum(ctx, terms):
    """ctx.fsum, exact before its one final rounding.  mpmath's fsum works at ctx.prec,
    so 1.8e308 + 709 - 1.8e308 would lose the 709 at 256 bits; for an mpmath context the
    sum runs at a precision that spans every term's bits (exponent range + prec + log2 n),
    a private ``workprec`` of this context only.  Other contexts (intervals, rationals)
    carry their own guarantee."""
    terms = list(terms)
    if isinstance(ctx, mpmath.ctx_mp.MPContext):
        mags = [ctx.mag(t) for t in terms if ctx.isfinite(t) and t != 0]
        if len(mags) > 1:
            # terms more than SPAN binades below the largest (exp(-1e308) next to 1) are
            # far below any float format's subnormals relative to it: at most a sticky bit
            top = max(mags)
            need = top - max(min(mags), top - SPAN) + ctx.prec + len(terms).bit_length() + 8
            if need > ctx.prec:
                with ctx.workprec(need):
                    total = ctx.fsum(terms)
                return +total
    return ctx.fsum(terms)


def _obj(values, shape=None):
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out if shape is None else out.reshape(shape)


def _broadcast_back(g, x, axis):
    if axis is None or x.ndim == 0:
        value = np.asarray(g, dtype=object).reshape(())[()]
        return _obj([value] * x.size, x.shape)
    return np.broadcast_to(np.expand_dims(g, axis), x.shape).copy()


def _count(x, axis):
    return max(x.size if axis is None or x.ndim == 0 else x.shape[axis], 1)


def _axis_rows(fn, x, axis):
    """Same-shape op along axis (0-d input: a one-element row)."""
    if x.ndim == 0:
        return _obj(fn([x[()]]), ())
    return along(fn, x, axis)


# ---- reductions ------------------------------------------------------------------------

@mp_impl("sum")
def sum_(ctx, arrays, params):
    return reduce_along(lambda r: _fsum(ctx, r), arrays[0], params["axis"])


@mp_vjp("sum")
def sum_vjp(ctx, arrays, params, out, g):
    return (_broadcast_back(g, arrays[0], params["axis"]),)


@mp_impl("mean")
def mean(ctx, arrays, params):
    return reduce_along(lambda r: _fsum(ctx, r) / max(len(r), 1), arrays[0], params["axis"])


@mp_vjp("mean")
def mean_vjp(ctx, arrays, params, out, g):
    x = arrays[0]
    n = ctx.mpf(_count(x, params["axis"]))
    return (_broadcast_back(np.asarray(g, dtype=object) / n, x, params["axis"]),)


def _extreme(name, want_max):
    def pick(row):
        if not row:
            raise bad_value(name, "x", f"a non-empty reduction ({name} of nothing is "
                            "undefined)", "an empty axis")
        best = row[0]
        for v in row:
            if v != v:                      # NaN propagates
                return v
            if (v > best) if want_max else (v < best):
                best = v
        return best

    def formula(ctx, arrays, params):
        return reduce_along(pick, arrays[0], params["axis"])

    def vjp(ctx, arrays, params, out, g):
        x, axis = arrays[0], params["axis"]

        def split(row, y_row, g_row):
            y, gi = y_row[0], g_row[0]
            ties = sum(1 for v in row if v == y)
            if ties == 0:
                return [ctx.nan] * len(row)
            return [gi / ties if v == y else ctx.zero for v in row]

        if x.ndim == 0:
            return (_obj(split([x[()]], [out[()]], [g[()]]), ()),)
        yb = _broadcast_back(out, x, axis)
        gb = _broadcast_back(g, x, axis)
        if axis is None:
            return (_obj(split(list(x.ravel()), list(yb.ravel()), list(gb.ravel())), x.shape),)
        return (along(split, x, axis, yb, gb),)

    mp_impl(name)(formula)
    mp_vjp(name)(vjp)


_extreme("amax", True)
_extreme("amin", False)


def _var(ctx, row):
    if not row:
        return ctx.zero
    m = _fsum(ctx, row) / len(row)
    return _fsum(ctx, [(v - m) * (v - m) for v in row]) / len(row)


@mp_impl("var")
def var(ctx, arrays, params):
    return reduce_along(lambda r: _var(ctx, r), arrays[0], params["axis"])


@mp_vjp("var")
def var_vjp(ctx, arrays, params, out, g):
    x, axis = arrays[0], params["axis"]
    gb = _broadcast_back(g, x, axis)

    def rule(row, g_row):
        m = _fsum(ctx, row) / len(row)
        return [gi * 2 * (v - m) / len(row) for v, gi in zip(row, g_row)]

    if axis is None or x.ndim == 0:
        return (_obj(rule(list(x.ravel()), list(gb.ravel())) if x.size else [], x.shape),)
    return (along(rule, x, axis, gb),)


# ---- softmax family --------------------------------------------------------------------

def _special(ctx, row):
    """'nan', 'posinf', 'allneg' or None for a finite-max row."""
    if any(is_nan(ctx, v) for v in row):
        return "nan"
    if any(is_inf(ctx, v) and v > 0 for v in row):
        return "posinf"
    if all(is_inf(ctx, v) for v in row):
        return "allneg"
    return None


def _shift(ctx, row):
    """m = max(row) and the tail sum_{j != first argmax} exp(x_j - m): the same real number
    as sum exp(x_j - m) - 1, kept apart so log1p(tail) does not lose a tiny tail to
    1 + tail rounding at the context's precision."""
    m = max(row)
    a = row.index(m)
    return m, _fsum(ctx, [ctx.exp(v - m) for j, v in enumerate(row) if j != a])


def _lse(ctx, row):
    if not row:
        return ctx.ninf
    kind = _special(ctx, row)
    if kind is not None:
        return {"nan": ctx.nan, "posinf": ctx.inf, "allneg": ctx.ninf}[kind]
    m, tail = _shift(ctx, row)
    return m + ctx.log1p(tail)


def _softmax_row(ctx, row):
    if _special(ctx, row) is not None:
        return [ctx.nan] * len(row)
    m = max(row)
    e = [ctx.exp(v - m) for v in row]
    total = _fsum(ctx, e)
    return [v / total for v in e]


def _log_softmax_row(ctx, row):
    if _special(ctx, row) is not None:
        return [ctx.nan] * len(row)
    m, tail = _shift(ctx, row)
    log_total = ctx.log1p(tail)
    return [(v - m) - log_total for v in row]


@mp_impl("logsumexp")
def logsumexp(ctx, arrays, params):
    return reduce_along(lambda r: _lse(ctx, r), arrays[0], params["axis"])


@mp_vjp("logsumexp")
def logsumexp_vjp(ctx, arrays, params, out, g):
    x, axis = arrays[0], params["axis"]
    if axis is None or x.ndim == 0:
        y = _obj(_softmax_row(ctx, list(x.ravel())) if x.size else [], x.shape)
    else:
        y = along(lambda r: _softmax_row(ctx, r), x, axis)
    return (y * _broadcast_back(g, x, axis),)


@mp_impl("softmax")
def softmax(ctx, arrays, params):
    return _axis_rows(lambda r: _softmax_row(ctx, r), arrays[0], params["axis"])


@mp_impl("log_softmax")
def log_softmax(ctx, arrays, params):
    return _axis_rows(lambda r: _log_softmax_row(ctx, r), arrays[0], params["axis"])


def _rows_vjp(rule):
    def vjp(ctx, arrays, params, out, g):
        x = arrays[0]
        if x.ndim == 0:
            return (_obj(rule(ctx, [out[()]], [g[()]], [x[()]]), ()),)
        return (along(lambda y, gr, xr: rule(ctx, y, gr, xr), out, params["axis"], g, x),)
    return vjp


def _softmax_rule(ctx, y, g, x):
    """y_i (g_i - sum_j g_j y_j), written with sum_j y_j = 1 as y_i ((g_i - g_a) - R),
    R = sum_{j != a} y_j (g_j - g_a), a = the first argmax of the input x (only inputs are
    compared): the direct form cancels to 0 at any
    finite precision once y_a = 1 - 1e-130 (one dominant logit)."""
    a = x.index(max(x)) if x and not any(is_nan(ctx, v) for v in x) else 0
    r = _fsum(ctx, [y[j] * (g[j] - g[a]) for j in range(len(y)) if j != a])
    return [yi * ((gi - g[a]) - r) for gi, yi in zip(g, y)]


def _log_softmax_rule(ctx, y, g, x):
    s = _fsum(ctx, g)
    return [gi - ctx.exp(yi) * s for gi, yi in zip(g, y)]


mp_vjp("softmax")(_rows_vjp(_softmax_rule))
mp_vjp("log_softmax")(_rows_vjp(_log_softmax_rule))


# ---- linear algebra --------------------------------------------------------------------

def _mm(ctx, a, b, bias=None):
    """(m, n) @ (n, p) (+ bias (p,)) with every entry one fsum."""
    m, n, p = a.shape[0], a.shape[1], b.shape[1]
    out = np.empty((m, p), dtype=object)
    for i in range(m):
        for k in range(p):
            terms = [a[i, j] * b[j, k] for j in range(n)]
            if bias is not None:
                terms.append(bias[k])
            out[i, k] = _fsum(ctx, terms)
    return out


def _lead(a, b):
    rows = int(np.prod(a.shape[:-1], dtype=np.int64))
    if b.ndim == 2:
        return a.reshape(1, rows, a.shape[-1]), b[None]
    nb = int(np.prod(a.shape[:-2], dtype=np.int64))
    return a.reshape((nb,) + a.shape[-2:]), b.reshape((nb,) + b.shape[-2:])


@mp_impl("matmul")
def matmul(ctx, arrays, params):
    a, b = arrays
    a3, b3 = _lead(a, b)
    out = np.empty(a3.shape[:2] + b3.shape[2:], dtype=object)
    for i in range(a3.shape[0]):
        out[i] = _mm(ctx, a3[i], b3[i])
    return out.reshape(a.shape[:-1] + b.shape[-1:])


@mp_vjp("matmul")
def matmul_vjp(ctx, arrays, params, out, g):
    a, b = arrays
    a3, b3 = _lead(a, b)
    g3 = np.asarray(g, dtype=object).reshape(a3.shape[:2] + b.shape[-1:])
    ga = np.empty(a3.shape, dtype=object)
    gb = np.empty(b3.shape, dtype=object)
    for i in range(a3.shape[0]):
        ga[i] = _mm(ctx, g3[i], b3[i].T)
        gb[i] = _mm(ctx, a3[i].T, g3[i])
    return ga.reshape(a.shape), gb.reshape(b.shape)


def _samples(x):
    return int(np.prod(x.shape[:-1], dtype=np.int64))


@mp_impl("linear")
def linear(ctx, arrays, params):
    x, w, bias = arrays
    x2 = x.reshape(_samples(x), w.shape[1])
    return _mm(ctx, x2, w.T, bias).reshape(x.shape[:-1] + (w.shape[0],))


@mp_vjp("linear")
def linear_vjp(ctx, arrays, params, out, g):
    x, w, bias = arrays
    x2 = x.reshape(_samples(x), w.shape[1])
    g2 = np.asarray(g, dtype=object).reshape(_samples(x), w.shape[0])
    gb = _obj([_fsum(ctx, list(g2[:, k])) for k in range(w.shape[0])])
    return _mm(ctx, g2, w).reshape(x.shape), _mm(ctx, g2.T, x2), gb


@mp_impl("affine")
def affine(ctx, arrays, params):
    x, a, b = arrays
    return _mm(ctx, a, x.reshape(-1, 1), None).reshape(-1) + b


@mp_vjp("affine")
def affine_vjp(ctx, arrays, params, out, g):
    x, a, b = arrays
    return _mm(ctx, a.T, np.asarray(g, dtype=object).reshape(-1, 1)).reshape(x.shape), None, None


# ---- shape ops -------------------------------------------------------------------------

def _fsum_axes(ctx, g, axes):
    g = np.asarray(g, dtype=object)
    axes = tuple(sorted(a % g.ndim for a in axes)) if g.ndim else ()
    if not axes:
        return g.copy()
    kept = [a for a in range(g.ndim) if a not in axes]
    moved = np.transpose(g, kept + list(axes))
    kept_shape = moved.shape[:len(kept)]
    flat = moved.reshape(int(np.prod(kept_shape, dtype=np.int64)), -1) if moved.size \
        else np.empty((int(np.prod(kept_shape, dtype=np.int64)), 0), dtype=object)
    return _obj([_fsum(ctx, list(r)) for r in flat], kept_shape)


def _copy_op(name, forward, backward):
    mp_impl(name)(lambda ctx, arrays, params: np.array(forward(arrays[0], params), dtype=object))
    if backward is not None:
        mp_vjp(name)(lambda ctx, arrays, params, out, g: (
            np.array(backward(np.asarray(g, dtype=object), arrays[0], params), dtype=object),))


_copy_op("transpose", lambda x, p: x.T, lambda g, x, p: g.T)
_copy_op("reshape", lambda x, p: x.reshape(p["shape"]), lambda g, x, p: g.reshape(x.shape))
_copy_op("flatten", lambda x, p: x.reshape(-1), lambda g, x, p: g.reshape(x.shape))
_copy_op("swap_first_two", lambda x, p: np.swapaxes(x, 0, 1), lambda g, x, p: np.swapaxes(g, 0, 1))
_copy_op("transpose_last_two", lambda x, p: np.swapaxes(x, -1, -2),
         lambda g, x, p: np.swapaxes(g, -1, -2))
_copy_op("broadcast_row", lambda x, p: np.broadcast_to(x[..., None], x.shape + (p["n"],)),
         None)
_copy_op("broadcast_col", lambda x, p: np.broadcast_to(x, (p["m"],) + x.shape), None)
_copy_op("broadcast_to", lambda x, p: np.broadcast_to(x, p["shape"]), None)


@mp_vjp("broadcast_row")
def broadcast_row_vjp(ctx, arrays, params, out, g):
    return (_fsum_axes(ctx, g, (-1,)).reshape(arrays[0].shape),)


@mp_vjp("broadcast_col")
def broadcast_col_vjp(ctx, arrays, params, out, g):
    return (_fsum_axes(ctx, g, (0,)).reshape(arrays[0].shape),)


@mp_vjp("broadcast_to")
def broadcast_to_vjp(ctx, arrays, params, out, g):
    x = arrays[0]
    g = np.asarray(g, dtype=object)
    lead = g.ndim - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(x.shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return (_fsum_axes(ctx, g, axes).reshape(x.shape),)


@mp_impl("concat")
def concat(ctx, arrays, params):
    return np.concatenate(arrays, axis=params["axis"])


@mp_vjp("concat")
def concat_vjp(ctx, arrays, params, out, g):
    ga, gb = np.split(np.asarray(g, dtype=object), [arrays[0].shape[params["axis"]]],
                      axis=params["axis"])
    return ga.copy(), gb.copy()


@mp_impl("row_mean")
def row_mean(ctx, arrays, params):
    return mean(ctx, arrays, {"axis": 1})


@mp_vjp("row_mean")
def row_mean_vjp(ctx, arrays, params, out, g):
    return mean_vjp(ctx, arrays, {"axis": 1}, out, g)


mp_impl("reduce_sum")(sum_)
mp_vjp("reduce_sum")(sum_vjp)
mp_impl("reduce_mean")(mean)
mp_vjp("reduce_mean")(mean_vjp)
