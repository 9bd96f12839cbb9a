"""The certified oracle: correctly rounded values of the exact real result of any op.

``refrt.oracle.evaluate(op, *inputs, dtype=np.float64, **params)`` (or
``refrt.oracle.<op>(...)``) returns, element by element, the exact real value of the op
on the given floats rounded once to ``dtype`` (float64, float32, float16 or bfloat16;
round to nearest even, IEEE subnormals, overflow to +-inf).  bfloat16 results are
``ml_dtypes.bfloat16`` arrays when ml_dtypes is installed, else float32 arrays holding
bfloat16 values.

Design:

a. One formula per op.  The oracle runs the mp formulas of ``refrt.backends.MP`` (the
   same code as ``backend="mp"``) in the certifying contexts of ``refrt._oracle_ctx``:
   outward-rounded intervals, and exact rationals.  No op math is written twice.
b. Ziv's strategy, as MPFR, Rival and Herbie do: evaluate the enclosure at the target
   precision + GUARD bits; an element is decided when both ends of its enclosure round
   to the same target value.  The undecided units (elements for elementwise ops, rows
   for row ops, the whole op otherwise) are re-evaluated at twice the precision, up to
   ``max_prec`` (10,000 bits by default, Herbie's cap).  What is still undecided there is
   reported (``UndecidedError`` or the ``undecided`` mask), never silently rounded.
c. Exact rationals decide ties and exact zeros.  An interval around an exact midpoint
   between two floats never shrinks to one side of it, so every unit left undecided by
   the first interval pass is re-run in the exact-rational context; for rational ops
   (add, mul, div, sum, mean, matmul, min/max, relu, clamp, mse, ...) that settles it
   exactly.  Transcendental formulas raise ``NotRational`` there and continue in Ziv.
   Running intervals first keeps the common case at one pass.
d. Non-finite inputs.  Units with an inf or NaN input are evaluated with a plain mpmath
   context: their NaN / +-inf results are exact (limits and IEEE rules written in the
   formula).  A finite result there is certified by the interval pass (inf is a valid
   interval end); only a finite result computed *from a NaN input* (e.g. a formula that
   maps NaN to a constant) is taken from the plain context as is.
e. Zeros.  An exact zero is returned as +0.0 (mpmath has no signed zero, so the sign that
   IEEE arithmetic would give, e.g. -0 * 1 = -0, is not reproduced); a negative value
   that underflows is -0.0.  ``refrt.metrics`` counts +0 and -0 as equal.
f. Threads.  Contexts are built once per precision and reused; mpmath's global
   precision is never read or written.  mpmath's constant caches (ln2, pi, ...) are not
   updated atomically, and python-flint's working precision is one process-wide
   setting (refrt/_oracle_arb.py b), so evaluations are serialised by one lock; that
   costs no parallelism because mpmath is pure Python under the GIL anyway.
g. Arb.  With python-flint installed (a dependency; ``ENGINE = "arb"``, the default),
   each interval pass first runs the units in ``ArbContext`` (C ball arithmetic, same
   formulas, same precision ladder, the same rounding decision: both ends of the ball
   round to one target value).  Units it does not settle (a NaN or infinite result, an
   exception, non-finite inputs) run in the interval context exactly as before, so
   every special value and error is the interval path's.  ``ENGINE = "interval"`` (or
   REFRT_ORACLE=interval, or python-flint missing) is the mpmath-only path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import mpmath
from mpmath.libmp import ComplexResult, fnan, from_float, from_rational, fzero, round_ceiling, round_floor

import os

from . import backends
from ._oracle_arb import AVAILABLE as ARB_AVAILABLE, arb, arb_context, raw as arb_raw
from ._oracle_ctx import (IntervalContext, NotRational, RationalContext, Undecidable,
                          is_exact_rational)
from ._prepare import prepare
from .backends.mpctx import MPMATH_LOCK, make_context, to_ctx
from .registry import OPS, _shapes, get
from .rounding import format_of, round_rational, round_raw, storage_dtype

GUARD = 20              # first pass: target precision + GUARD bits
DEFAULT_MAX_PREC = 10_000
_LOCK = MPMATH_LOCK

# design note g: "arb" (python-flint's Arb balls first, the interval context for what
# they leave) or "interval" (mpmath intervals only, the path before Arb).  The default
# comes from REFRT_ORACLE, read once at import; tests select a path by setting ENGINE.
ENGINES = ("arb", "interval")
_env_engine = os.environ.get("REFRT_ORACLE", "").strip().lower()
if _env_engine and _env_engine not in ENGINES:
    raise ValueError(f"REFRT_ORACLE: expected one of {', '.join(ENGINES)}, got {_env_engine!r}")
ENGINE = _env_engine or ("arb" if ARB_AVAILABLE else "interval")


class UndecidedError(ArithmeticError):
    """Some elements could not be decided under the precision cap.  ``enclosure`` holds
    the full result (undecided elements are NaN in ``enclosure.value``)."""

    def __init__(self, message, enclosure):
        super().__init__(message)
        self.enclosure = enclosure


class Enclosure:
    """``value``: correctly rounded result (NaN where undecided); ``lower`` / ``upper``:
    object arrays of mpmath numbers bounding the exact value; ``undecided``: bool mask;
    ``prec``: the largest working precision used (bits).

    ``lower`` and ``upper`` are built on first access (an mpmath number per element
    costs more than certifying it on the Arb path); their values do not depend on when."""

    __slots__ = ("value", "undecided", "prec", "_lower", "_upper")

    def __init__(self, value, lower, upper, undecided, prec):
        self.value, self.undecided, self.prec = value, undecided, prec
        self._lower, self._upper = lower, upper

    @property
    def lower(self):
        if callable(self._lower):
            self._lower = self._lower()
        return self._lower

    @property
    def upper(self):
        if callable(self._upper):
            self._upper = self._upper()
        return self._upper

    def __iter__(self):  # value, lower, upper = evaluate(..., return_enclosure=True)
        return iter((self.value, self.lower, self.upper))

    def __repr__(self):
        return (f"Enclosure(value={self.value!r}, undecided={int(self.undecided.sum())} "
                f"element(s), prec={self.prec})")


# ---------------------------------------------------------------------------
# Units: the pieces of the result that can be re-evaluated on their own
# ---------------------------------------------------------------------------

class _Units:
    """Splits an op's inputs into independent units (design note b).

    ``pos[u]`` lists the flat output positions unit ``u`` produces; ``inputs(idx)``
    returns the arrays and params that evaluate exactly the units ``idx``."""

    def __init__(self, spec, arrays, params, out_shape):
        self.spec, self.arrays, self.params = spec, arrays, params
        self.out_size = int(np.prod(out_shape)) if out_shape else 1
        floats = [a for a in arrays if a.dtype.kind == "f"]
        x = arrays[0]
        axis = params.get("axis")
        same = all(a.shape == tuple(out_shape) for a in arrays)
        if x.ndim and (spec.shape is _shapes.elementwise
                       or (spec.kind in ("unary", "binary") and same)):
            self.kind = "elementwise"
            self.flat = [a.ravel() for a in arrays]
            self.pos = np.arange(x.size).reshape(-1, 1)
            bad = np.zeros(x.size, bool)
            for a in floats:
                bad |= ~np.isfinite(a.ravel())
            self.nonfinite = bad
        elif (spec.shape in (_shapes.along_axis, _shapes.reduction) and axis is not None
              and x.ndim and x.size and len(arrays) == 1):
            self.kind = "rows"
            self.reduce = spec.shape is _shapes.reduction
            xm = np.moveaxis(x, axis, -1)
            self.rows = xm.reshape(-1, xm.shape[-1])
            if self.reduce:
                self.pos = np.arange(self.rows.shape[0]).reshape(-1, 1)
            else:
                idx = np.moveaxis(np.arange(x.size).reshape(x.shape), axis, -1)
                self.pos = idx.reshape(self.rows.shape)
            self.nonfinite = ~np.isfinite(self.rows).all(axis=1)
        else:
            self.kind = "whole"
            self.pos = np.arange(self.out_size).reshape(1, -1)
            self.nonfinite = np.array([any(not np.isfinite(a).all() for a in floats)])
        self.n = self.pos.shape[0]

    def inputs(self, idx):
        if self.kind == "elementwise":
            return [a[idx] for a in self.flat], self.params
        if self.kind == "rows":
            return [self.rows[idx]], dict(self.params, axis=1)
        return self.arrays, self.params


def _to_objects(ctx, a):
    """Exact conversion of one input array into ctx numbers (class ids stay ints)."""
    if a.dtype.kind in "iub":
        return a
    out = np.empty(a.shape, dtype=object)
    vals = ctx.from_floats(a.ravel().tolist())
    if a.ndim == 0:
        out[()] = vals[0]
    else:
        out.reshape(-1)[:] = vals
    return out


def _run(formula, ctx, units, idx, plain=False):
    """Evaluate units ``idx``; returns an object array of shape (len(idx), unit size)."""
    arrays, params = units.inputs(idx)
    conv = [to_ctx(ctx, a) for a in arrays] if plain else [_to_objects(ctx, a) for a in arrays]
    res = np.asarray(formula(ctx, conv, dict(params)), dtype=object)
    return res.reshape(len(idx), -1)


# ---------------------------------------------------------------------------
# Deciding one element
# ---------------------------------------------------------------------------

def _decide_interval(ctx, v, fmt):
    """(value, decided, lo, hi) for one interval result."""
    if not hasattr(v, "lo"):
        v = ctx.convert(v)
    lo, hi = v.lo, v.hi
    if lo == fnan:
        return np.nan, True, lo, hi
    a, b = round_raw(lo, fmt), round_raw(hi, fmt)
    if a == b:
        # both ends round to one value; for a zero, b carries the sign (-0.0 only when
        # the whole enclosure is negative)
        return b, True, lo, hi
    return np.nan, False, lo, hi


def _decide_rational(v, fmt, prec):
    if isinstance(v, float):  # a non-finite constant of the formula
        raw = from_float(v)
        return v, True, raw, raw
    num, den = int(v.numerator), int(v.denominator)
    return (round_rational(num, den, fmt), True,
            from_rational(num, den, prec, round_floor), from_rational(num, den, prec, round_ceiling))


# ---------------------------------------------------------------------------
# The Ziv loop
# ---------------------------------------------------------------------------

class _State:
    def __init__(self, units, fmt):
        n = units.out_size
        self.value = np.full(n, np.nan)
        self.lower = np.empty(n, dtype=object)
        self.upper = np.empty(n, dtype=object)
        self.decided = np.zeros(n, bool)      # per output element
        self.done = np.zeros(units.n, bool)   # per unit: all its elements decided
        self.units, self.fmt = units, fmt

    def store(self, u, decided, values, los, his):
        """Record one evaluation of unit ``u``; an element decided earlier keeps its value
        (for non-finite units the plain pass decides NaN/inf elements first)."""
        pos = self.units.pos[u]
        keep = self.decided[pos]
        if not keep.any():              # the common case: nothing decided before
            self.value[pos] = values
            lower, upper = self.lower, self.upper
            for p, lo, hi in zip(pos.tolist(), los, his):   # raw bounds are tuples:
                lower[p] = lo                              # no sequence assignment
                upper[p] = hi
            self.decided[pos] = decided
            self.done[u] = all(decided)
            return
        new = np.asarray(decided, bool) & ~keep
        for k in np.flatnonzero(~keep):
            self.value[pos[k]] = values[k]
            self.lower[pos[k]] = los[k]
            self.upper[pos[k]] = his[k]
        self.decided[pos] |= new
        self.done[u] = self.decided[pos].all()

    def store_many(self, us, decided, values, los, his):
        """``store`` for units ``us`` at once: 2-d (unit, element) arrays."""
        if not len(us):
            return
        pos = self.units.pos[us]
        fresh = ~self.decided[pos]
        p = pos[fresh]
        self.value[p] = values[fresh]
        self.lower[p] = los[fresh]
        self.upper[p] = his[fresh]
        self.decided[p] = decided[fresh]
        self.done[us] = self.decided[pos].all(axis=1)


_INTERVAL_CONTEXTS: dict = {}
_BOUNDS_CTX = mpmath.MPContext()        # only wraps raw bounds as mpf (make_mpf)


def _interval_context(prec):
    ctx = _INTERVAL_CONTEXTS.get(prec)
    if ctx is None:
        ctx = _INTERVAL_CONTEXTS[prec] = IntervalContext(prec)
    return ctx


def _arb_pass(formula, units, idx, prec, state):
    """Design note g: evaluate units ``idx`` on Arb balls and store what they decide;
    returns the units left for the interval context."""
    ctx, fmt = arb_context(prec), state.fmt
    f64 = fmt.name == "float64"
    with ctx.active():      # lower() / upper() round outward at the working precision
        try:
            rows = _run(formula, ctx, units, idx)
        except Exception:               # noqa: BLE001 - the interval pass re-runs them
            return list(idx)
        flat = rows.ravel().tolist()
        n, m = len(flat), rows.shape[1]
        values, los, his = [np.nan] * n, [None] * n, [None] * n
        decided = np.zeros(n, bool)
        bad = set()                     # positions in idx of units left to intervals
        for i, v in enumerate(flat):
            if type(v) is not arb:
                bad.add(i // m)
                continue
            lo, hi = v.lower(), v.upper()
            if f64:     # exact round-to-nearest-even to float64 (_oracle_arb f)
                a, b = float(lo), float(hi)
            else:
                a, b = round_raw(arb_raw(lo), fmt), round_raw(arb_raw(hi), fmt)
            if a == b:  # a zero: b carries the sign, as in _decide_interval
                values[i] = b
                decided[i] = True
            elif not v.is_finite():     # NaN, an infinity, an overflowed ball
                bad.add(i // m)
            los[i], his[i] = lo, hi
    keep = np.ones(len(idx), bool)
    keep[list(bad)] = False
    state.store_many(np.asarray(idx)[keep], decided.reshape(-1, m)[keep],
                     np.asarray(values, dtype=np.float64).reshape(-1, m)[keep],
                     _objects(los).reshape(-1, m)[keep], _objects(his).reshape(-1, m)[keep])
    return [u for k, u in enumerate(idx) if not keep[k]]


def _objects(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _interval_pass(formula, units, idx, prec, state, arb_first=True):
    if arb_first and ENGINE == "arb":
        idx = _arb_pass(formula, units, idx, prec, state)
        if not idx:
            return
    ctx = _interval_context(prec)
    fmt = state.fmt

    def settle(rows, which):
        for u, row in zip(which, rows):
            got = [_decide_interval(ctx, v, fmt) for v in row]
            state.store(u, [g[1] for g in got], [g[0] for g in got],
                        [g[2] for g in got], [g[3] for g in got])

    try:
        settle(_run(formula, ctx, units, idx), idx)
    except (Undecidable, ComplexResult):
        # one unit asked an undecidable question: evaluate units one by one so the
        # others still settle at this precision
        for u in idx:
            try:
                settle(_run(formula, ctx, units, [u]), [u])
            except (Undecidable, ComplexResult):
                pass


def _rational_pass(formula, units, idx, prec, state):
    """Exact evaluation of ``idx``; returns False when the formula is not rational."""
    ctx = RationalContext()
    try:
        res = _run(formula, ctx, units, idx)
    except NotRational:
        return False
    if not all(is_exact_rational(v) for v in res.ravel()):
        return False
    for u, row in zip(idx, res):
        got = [_decide_rational(v, state.fmt, prec) for v in row]
        state.store(u, [True] * len(got), [g[0] for g in got], [g[2] for g in got],
                    [g[3] for g in got])
    return True


def _nonfinite_pass(formula, units, idx, prec, state):
    """Design note d."""
    ctx = make_context(prec)
    rows = _run(formula, ctx, units, idx, plain=True)
    finite = []
    for u, row in zip(idx, rows):
        raws = [ctx.convert(v)._mpf_ for v in row]
        special = [not r[1] and r != fzero for r in raws]      # nan / +-inf: exact
        state.store(u, special, [round_raw(r, state.fmt) for r in raws], raws, raws)
        if not all(special):
            finite.append((u, raws))
    if not finite:
        return
    # inf / NaN inputs: intervals only (an Arb ball of an infinity is [+/- inf])
    _interval_pass(formula, units, [u for u, _ in finite], prec, state, arb_first=False)
    for u, raws in finite:
        if not state.done[u] and _has_nan_input(units, u):
            state.store(u, [True] * len(raws), [round_raw(r, state.fmt) for r in raws],
                        raws, raws)


def _has_nan_input(units, u):
    arrays, _ = units.inputs([u])
    return any(a.dtype.kind == "f" and np.isnan(a).any() for a in arrays)


def _precisions(fmt, max_prec):
    p, out = fmt.prec + GUARD, []
    while p < max_prec:
        out.append(p)
        p *= 2
    return out + [max_prec]


def certify(spec, arrays, params, out_shape, dtype, max_prec=DEFAULT_MAX_PREC,
            formula=None) -> Enclosure:
    """The oracle on prepared arrays (see ``evaluate``); ``formula`` replaces the op's
    mp formula (the certified VJPs pass the VJP rule, see ``vjp``)."""
    backends.load()
    formula = formula or backends.MP.get(spec.name)
    if formula is None:
        raise NotImplementedError(f"{spec.name}: no mp formula is bound, so the oracle "
                                  "cannot evaluate it")
    fmt = format_of(dtype)
    units = _Units(spec, arrays, params, out_shape)
    state = _State(units, fmt)
    used = 0
    if units.n and units.out_size:
        for step, prec in enumerate(_precisions(fmt, max_prec)):
            pending = np.flatnonzero(~state.done)
            if not pending.size:
                break
            used = prec
            fin = [int(u) for u in pending if not units.nonfinite[u]]
            nonfin = [int(u) for u in pending if units.nonfinite[u]]
            if fin:
                _interval_pass(formula, units, fin, prec, state)
                left = [u for u in fin if not state.done[u]]
                if step == 0 and left:  # design note c: once, after the first pass
                    _rational_pass(formula, units, left, max_prec, state)
            if nonfin:
                _nonfinite_pass(formula, units, nonfin, prec, state)
    undecided = ~state.decided
    bctx = _BOUNDS_CTX
    store = storage_dtype(dtype)
    shape = tuple(out_shape)

    def bounds(raw):
        out = np.empty(units.out_size, dtype=object)
        out[:] = [bctx.nan if r is None else
                  bctx.make_mpf(arb_raw(r) if type(r) is arb else r) for r in raw]
        return out.reshape(shape)

    value = state.value.astype(np.float64).astype(store).reshape(shape)
    lower, upper = state.lower, state.upper
    return Enclosure(value, lambda: bounds(lower), lambda: bounds(upper),
                     undecided.reshape(shape), used)


def _widen_inputs(inputs):
    """float16 / bfloat16 arrays are widened exactly to float32 (prepare refuses them)."""
    out = []
    for v in inputs:
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype.itemsize == 2:
            v = v.astype(np.float32)
        elif isinstance(v, np.ndarray) and v.dtype.name == "bfloat16":
            v = v.astype(np.float32)
        out.append(v)
    return out


def _check_certify_args(name, dtype, max_prec, on_undecided):
    """The target format, after checking the arguments every certified entry point takes."""
    fmt = format_of(dtype)
    if isinstance(max_prec, bool) or not isinstance(max_prec, int) or max_prec < fmt.prec + 2:
        raise ValueError(f"{name}: argument 'max_prec' expected an integer >= "
                         f"{fmt.prec + 2} for {fmt.name}, got {max_prec!r}")
    if on_undecided not in ("raise", "nan"):
        raise ValueError(f"{name}: argument 'on_undecided' expected 'raise' or 'nan', "
                         f"got {on_undecided!r}")
    return fmt


def evaluate(op_name, *inputs, dtype=np.float64, max_prec=DEFAULT_MAX_PREC,
             return_enclosure=False, on_undecided="raise", **params):
    """Correctly rounded value of op ``op_name`` on ``inputs`` in ``dtype``.

    ``return_enclosure=True`` returns an ``Enclosure`` (``value, lower, upper =`` unpacks
    it; it also carries the ``undecided`` mask).  Elements undecided under ``max_prec``
    bits raise ``UndecidedError`` unless ``on_undecided="nan"`` (they are then NaN, and
    listed in the enclosure's mask).
    """
    spec = get(op_name)
    fmt = _check_certify_args(spec.name, dtype, max_prec, on_undecided)
    arrays, full, _, out_shape = prepare(spec, _widen_inputs(inputs), params)
    if 0 in out_shape:                 # nothing to certify: iterate only over what exists
        value = np.empty(out_shape, dtype=storage_dtype(fmt.name))
        empty = np.empty(out_shape, dtype=object)
        enc = Enclosure(value, empty, empty.copy(), np.zeros(out_shape, dtype=bool), 0)
        return enc if return_enclosure else enc.value
    with _LOCK:
        enc = certify(spec, arrays, full, out_shape, fmt.name, max_prec)
    if on_undecided == "raise" and enc.undecided.any():
        where = [tuple(int(i) for i in ix) for ix in np.argwhere(enc.undecided)[:5]]
        raise UndecidedError(f"{spec.name}: {int(enc.undecided.sum())} element(s) could not "
                             f"be certified in {fmt.name} under {max_prec} bits (first at "
                             f"{where}); pass on_undecided='nan' to get the rest", enc)
    return enc if return_enclosure else enc.value


# ---------------------------------------------------------------------------
# Certified gradients
# ---------------------------------------------------------------------------
# The same Ziv loop (design notes b-e) run on a formula that returns every input
# cotangent, flattened and concatenated: the op's mp forward and its mp VJP rule
# (``oracle.vjp``), or a traced program's mp forward and reverse walk (``oracle.grad``),
# in the interval and exact-rational contexts.  The upstream cotangent is one more exact
# input.  The whole result is one unit (re-evaluated as a whole at the next precision).

def _split(flat, shapes, store):
    out, k = [], 0
    for shp in shapes:
        if shp is None:
            out.append(None)
            continue
        n = int(np.prod(shp, dtype=np.int64))
        out.append(np.asarray(flat[k:k + n], dtype=store).reshape(shp))
        k += n
    return tuple(out)


def _certify_flat(name, formula, arrays, shapes, dtype, max_prec, on_undecided):
    fmt = _check_certify_args(name, dtype, max_prec, on_undecided)
    total = sum(int(np.prod(s, dtype=np.int64)) for s in shapes if s is not None)
    unit = _VjpUnit(name)
    if total == 0:
        store = storage_dtype(fmt.name)
        return _split(np.empty(0), shapes, store), np.zeros(0, bool)
    with _LOCK:
        enc = certify(unit, arrays, {}, (total,), fmt.name, max_prec, formula=formula)
    if on_undecided == "raise" and enc.undecided.any():
        raise UndecidedError(f"{name}: {int(enc.undecided.sum())} gradient element(s) could "
                             f"not be certified in {fmt.name} under {max_prec} bits; pass "
                             "on_undecided='nan' to get the rest", enc)
    return _split(enc.value, shapes, enc.value.dtype), enc.undecided


@dataclass(frozen=True)
class _VjpUnit:
    """The spec-like object certify needs for a gradient: one 'whole' unit."""
    name: str
    kind: str = "vjp"
    shape: object = None


def vjp(op_name, *inputs, cotangent=None, dtype=np.float64, max_prec=DEFAULT_MAX_PREC,
        on_undecided="raise", return_undecided=False, **params):
    """Certified VJP of op ``op_name``: the exact input cotangents J^T g of the exact op
    at ``inputs`` (floats taken exactly), each correctly rounded to ``dtype``.  A tuple
    with one entry per input (``None`` for class ids).  ``cotangent`` defaults to ones of
    the output's shape.  Undecided elements under ``max_prec`` bits raise
    ``UndecidedError`` unless ``on_undecided="nan"``; ``return_undecided=True`` also
    returns the per-input masks."""
    spec = get(op_name)
    backends.load()
    rule, forward = backends.MP_VJP.get(spec.name), backends.MP.get(spec.name)
    if rule is None or forward is None:
        raise NotImplementedError(f"{spec.name}: no mp VJP rule is bound, so the oracle "
                                  "cannot certify its gradient")
    arrays, full, _, out_shape = prepare(spec, _widen_inputs(inputs), params)
    g = np.ones(out_shape) if cotangent is None else np.asarray(cotangent, dtype=np.float64)
    if g.shape != tuple(out_shape):
        raise ValueError(f"{spec.name}: argument 'cotangent' expected shape "
                         f"{tuple(out_shape)} (the output's), got {g.shape}")
    # which inputs receive a cotangent: the rule's own answer (None for class ids and
    # non-differentiable inputs), from one plain evaluation at low precision
    from .autodiff import vjp_op
    probe = vjp_op(spec.name, arrays, full, None, g, "mp", prec=64, prepared=False)
    shapes = [None if c is None else a.shape for c, a in zip(probe, arrays)]
    n_in = len(arrays)

    def formula(ctx, conv, _params):
        xs, gc = list(conv[:n_in]), np.asarray(conv[n_in], dtype=object).reshape(out_shape)
        out = np.asarray(forward(ctx, xs, full), dtype=object).reshape(out_shape)
        cots = rule(ctx, xs, full, out, gc)
        flat = [np.asarray(c, dtype=object).ravel() for c, shp in zip(cots, shapes)
                if shp is not None]
        return np.concatenate(flat) if flat else np.empty(0, dtype=object)

    values, undecided = _certify_flat(f"vjp({spec.name})", formula,
                                      arrays + [np.ascontiguousarray(g)], shapes, dtype,
                                      max_prec, on_undecided)
    return (values, _split(undecided, shapes, bool)) if return_undecided else values


def grad(fn, *inputs, argnums=None, dtype=np.float64, max_prec=DEFAULT_MAX_PREC,
         on_undecided="raise", return_undecided=False, **params):
    """Certified gradient of a traced program: ``fn`` (built from ``refrt.ops``, with a
    0-d output) is traced on ``inputs`` and its mp forward and reverse walk run in the
    certifying contexts; returns the gradient for every input (a tuple), or for
    ``argnums`` (an int or a tuple).  Each element is the exact gradient correctly
    rounded to ``dtype`` (undecided elements as in ``vjp``)."""
    from .graph import Run, _mp_node, trace
    from . import tape
    graph = trace(fn, *inputs, **params)
    name = f"grad({getattr(fn, '__name__', 'fn')})"
    if len(graph.output_slots) != 1 or graph.example_run is None or \
            np.shape(graph.example_run.outputs) != ():
        raise ValueError(f"{name}: expected a program with one 0-d (scalar) output")
    arrays = [np.ascontiguousarray(np.asarray(a)) for a in inputs]
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    run_dtype = max(floats, key=lambda d: d.itemsize) if floats else np.dtype(np.float64)
    shapes = [None if a.dtype.kind in "iu" else a.shape for a in arrays]

    def formula(ctx, conv, _params):
        values = [None] * graph.nslots
        for slot, a in zip(graph.input_slots, conv):
            values[slot] = a
        for slot, c in graph.constants.items():
            values[slot] = _to_objects(ctx, np.ascontiguousarray(c))
        saved = []
        for node in graph.nodes:
            prepared, full_p, out = _mp_node(node, [values[s] for s in node.inputs],
                                             run_dtype, ctx)
            values[node.output] = out
            saved.append((prepared, full_p, out))
        run = Run(graph, "mp", run_dtype, values, saved, [], 1, ctx)
        grads = tape.backward(run, [tape.seed_like(run, run.outputs)])
        flat = [np.asarray(gr, dtype=object).ravel() for gr, shp in zip(grads, shapes)
                if shp is not None]
        return np.concatenate(flat) if flat else np.empty(0, dtype=object)

    values, undecided = _certify_flat(name, formula, arrays, shapes, dtype, max_prec,
                                      on_undecided)
    masks = _split(undecided, shapes, bool)
    if argnums is not None:
        pick = (lambda t: t[argnums]) if isinstance(argnums, int) else \
            (lambda t: tuple(t[i] for i in argnums))
        values, masks = pick(values), pick(masks)
    return (values, masks) if return_undecided else values


def _make(spec):
    def op(*inputs, dtype=np.float64, max_prec=DEFAULT_MAX_PREC, return_enclosure=False,
           on_undecided="raise", **params):
        return evaluate(spec.name, *inputs, dtype=dtype, max_prec=max_prec,
                        return_enclosure=return_enclosure, on_undecided=on_undecided, **params)
    op.__name__ = op.__qualname__ = spec.name
    op.__doc__ = (f"Certified {spec.signature}: the exact value of {spec.doc!r}, correctly "
                  "rounded to `dtype`.  See refrt.oracle.evaluate.")
    return op


# generated functions are cached here, not in globals(): an op named like a builtin
# (sum, abs, pow, ...) must not shadow the builtin for this module's own code
_GENERATED: dict = {}


def __getattr__(name):
    if name in OPS:
        fn = _GENERATED.get(name)
        if fn is None:
            fn = _GENERATED[name] = _make(OPS[name])
        return fn
    raise AttributeError(f"module 'refrt.oracle' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(OPS))
