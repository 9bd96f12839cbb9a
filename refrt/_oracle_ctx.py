"""Certifying contexts for the oracle: the mp formulas of ``refrt.backends`` run unchanged
in them (see ``refrt/backends/mpctx.py`` for the protocol).

Design:

a. ``IntervalContext(prec)``: every number is a closed interval ``[lo, hi]`` of mpmath
   raw mpf tuples, and every operation returns an interval that contains the exact real
   result of the operation on any points of its operands (outward rounding through
   mpmath's ``libmp`` with ``round_floor`` / ``round_ceiling``, the primitives that
   ``mpmath.iv`` is built on).  A formula evaluated in it therefore yields a rigorous
   enclosure of the exact value.  It is a small class of our own, not ``mpmath.iv``:
   ``mpmath.iv`` maps NaN to [-inf, +inf], computes NaN * 2 = [0, 0], answers ``None``
   to an undecidable comparison (so ``max(a, b)`` would silently pick ``a``) and lacks
   tanh/sinh/cosh/expm1/log1p.
b. An undecidable question (comparing overlapping intervals, sqrt/log of an interval
   that straddles the domain edge) raises ``Undecidable``: the oracle treats the unit as
   undecided at this precision and retries with more bits, never guesses a branch.
c. NaN is one singleton interval (``ctx.nan``) that every operation propagates.
   Undefined results of the *formula* (its explicit guards) are therefore NaN exactly.
d. ``RationalContext``: exact rationals (``fractions.Fraction``, or ``gmpy2.mpq`` when
   installed).  Rational formulas (add, mul, div, sum, mean, matmul, min/max, clamp, mse,
   ...) run in it exactly, so exact zeros and ties between floats are decided exactly.
   A transcendental call raises ``NotRational`` and the oracle falls back to intervals.
e. Contexts are created per evaluation and hold their precision on the instance (no
   global mpmath state is read or written).
"""
from __future__ import annotations

import math
from fractions import Fraction

from mpmath import libmp
from mpmath.libmp import (mpf_pos, fnan, finf, fninf, fone, fzero, from_float, from_int,
                          from_rational, mpf_add, mpf_cmp, mpf_div, mpf_exp, mpf_log,
                          mpf_lt, mpf_le, mpf_mul, mpf_neg, mpf_shift, mpf_sqrt, mpf_sub,
                          mpf_sum, mpi_abs, mpi_add, mpi_div, mpi_mul, mpi_sub,
                          round_ceiling, round_floor)

from ._oracle_special import IntervalSpecialMixin, RationalSpecialMixin

try:  # optional accelerator for exact rationals
    from gmpy2 import mpq as _Q
except ImportError:  # pragma: no cover - depends on the environment
    _Q = Fraction

FTWO = from_int(2)

# mpmath's elementary functions do not honour directed rounding everywhere (mpf_exp of a
# tiny argument returns the same truncated 1 + x + x**2/2 for round_floor and
# round_ceiling, so mpmath.iv's exp([2**-52]) is a point that excludes the true value).
# They are, however, accurate to a few ulp at the precision asked.  So each function
# value is computed at WP_EXTRA more bits, widened by 2**SLACK ulps of that precision
# in both directions, and rounded outward: the enclosure then holds as long as
# mpmath's error stays below 2**SLACK = 16 ulps (it is documented as < 1 ulp).  The
# widening costs 2**-(WP_EXTRA - SLACK) = 2**-6 ulp of the working precision.
WP_EXTRA = 10
SLACK = 4


def _down(v, wp, prec):
    """Lower bound at ``prec`` bits of a value known to relative error 2**(SLACK - wp)."""
    if not v[1]:
        return v
    return mpf_sub(v, mpf_shift(libmp.mpf_abs(v), SLACK - wp), prec, round_floor)


def _up(v, wp, prec):
    if not v[1]:
        return v
    return mpf_add(v, mpf_shift(libmp.mpf_abs(v), SLACK - wp), prec, round_ceiling)


def _enclose(f, arg, prec, rnd, wp=None):
    """f(arg) rounded outward in direction ``rnd`` (design note at WP_EXTRA)."""
    # exp(0) = 1 and log(1) = 0 are exact: no slack, so log_softmax of a one-element row
    # (x - x - log(exp(0))) is an exact 0 the enclosure can decide
    if (f is mpf_exp and arg == fzero) or (f is mpf_log and arg == fone):
        return fone if f is mpf_exp else fzero
    wp = wp or prec + WP_EXTRA
    v = f(arg, wp, libmp.round_nearest)
    return _down(v, wp, prec) if rnd == round_floor else _up(v, wp, prec)


class Undecidable(ArithmeticError):
    """The enclosure is too wide to answer a question the formula asks (a comparison, a
    domain test); more precision may answer it."""


class NotRational(ArithmeticError):
    """The formula needs a transcendental function: the exact-rational context cannot
    evaluate it."""


# ---------------------------------------------------------------------------
# Interval numbers
# ---------------------------------------------------------------------------

class _Iv:
    """[lo, hi] with lo <= hi, raw mpf endpoints.  ``prec`` and ``ctx`` are class
    attributes of the per-context subclass."""

    __slots__ = ("lo", "hi")
    prec = 53
    ctx = None

    def __init__(self, lo, hi):
        self.lo = lo
        self.hi = hi

    # -- conversions ---------------------------------------------------------
    def _other(self, t):
        if type(t) is type(self):
            return t
        return self.ctx.convert(t)

    def __repr__(self):
        return f"[{libmp.to_str(self.lo, 20)}, {libmp.to_str(self.hi, 20)}]"

    @property
    def is_nan(self):
        return self.lo == fnan

    # -- arithmetic (c: NaN propagates before mpmath's interval rules see it) -
    def _bin(self, t, f, swap=False):
        t = self._other(t)
        if t is NotImplemented:
            return t
        nan = self.ctx.nan
        if self is nan or t is nan or self.lo == fnan or t.lo == fnan:
            return nan
        a, b = ((t.lo, t.hi), (self.lo, self.hi)) if swap else ((self.lo, self.hi), (t.lo, t.hi))
        lo, hi = f(a, b, self.prec)
        return type(self)(lo, hi)

    def __add__(self, t): return self._bin(t, mpi_add)
    def __radd__(self, t): return self._bin(t, mpi_add, True)
    def __sub__(self, t): return self._bin(t, mpi_sub)
    def __rsub__(self, t): return self._bin(t, mpi_sub, True)

    def __mul__(self, t):
        if t is self:
            return self.square()
        return self._bin(t, mpi_mul)

    def __rmul__(self, t): return self._bin(t, mpi_mul, True)

    def __truediv__(self, t):
        return self._div(self, self._other(t))

    def __rtruediv__(self, t):
        return self._div(self._other(t), self)

    @staticmethod
    def _div(s, t):
        nan = s.ctx.nan
        if s.lo == fnan or t.lo == fnan:
            return nan
        if t.lo == fzero and t.hi == fzero:
            # the plain mp backend raises here too: a formula must guard its divisors
            raise ZeroDivisionError("interval division by exact zero")
        if mpf_le(t.lo, fzero) and mpf_le(fzero, t.hi):
            # divisor encloses 0 but is not 0: value unknown at this precision
            return type(s)(fninf, finf)
        lo, hi = mpi_div((s.lo, s.hi), (t.lo, t.hi), s.prec)
        return type(s)(lo, hi)

    def __neg__(self):
        if self.lo == fnan:
            return self
        return type(self)(mpf_neg(self.hi), mpf_neg(self.lo))

    def __pos__(self):
        return self

    def __abs__(self):
        if self.lo == fnan:
            return self
        lo, hi = mpi_abs((self.lo, self.hi))
        return type(self)(lo, hi)

    def square(self):
        """x * x without the dependency problem (the result is never negative)."""
        if self.lo == fnan:
            return self
        a, b = mpi_abs((self.lo, self.hi))
        return type(self)(mpf_mul(a, a, self.prec, round_floor),
                          mpf_mul(b, b, self.prec, round_ceiling))

    def __pow__(self, n):
        if isinstance(n, int) and not isinstance(n, bool):
            if n == 2:
                return self.square()
            if n >= 0:
                return self.ctx.mpf(1) if n == 0 else self * self ** (n - 1)
            return 1 / self ** (-n)
        raise NotImplementedError("interval context: only integer powers (write "
                                  "exp(y * log(x)) in the formula)")

    # -- comparisons (b: exact answer or Undecidable) ------------------------
    def _cmp(self, t):
        """-1, 0, 1 when the order is certain; raises otherwise."""
        t = self._other(t)
        a, b = self.lo, t.lo
        if a == fnan or b == fnan:
            return None  # NaN compares false, as in IEEE and plain mpmath
        if a is self.hi and b is t.hi:   # two points (the inputs): one exact comparison
            return mpf_cmp(a, b)
        if mpf_lt(self.hi, t.lo):
            return -1
        if mpf_lt(t.hi, self.lo):
            return 1
        if self.lo == self.hi == t.lo == t.hi:
            return 0
        raise Undecidable("comparison of overlapping intervals")

    def __lt__(self, t):
        c = self._cmp(t)
        return c is not None and c < 0

    def __le__(self, t):
        c = self._cmp(t)
        return c is not None and c <= 0

    def __gt__(self, t):
        c = self._cmp(t)
        return c is not None and c > 0

    def __ge__(self, t):
        c = self._cmp(t)
        return c is not None and c >= 0

    def __eq__(self, t):
        try:
            t = self._other(t)
        except TypeError:
            return False
        c = self._cmp(t)
        return c == 0

    def __ne__(self, t):
        return not self.__eq__(t)

    __hash__ = None

    # Formulas may inspect *input* values as Python numbers (e.g. Fraction(float(v))):
    # a point interval converts exactly; anything wider cannot be converted honestly.
    def __float__(self):
        if self.lo == self.hi:
            f = libmp.to_float(self.lo)
            if self.lo in (fnan, finf, fninf) or from_float(f) == self.lo:
                return f
        raise Undecidable("float() of an interval that is not one float")

    def __int__(self):
        a, b = libmp.to_int(self.lo), libmp.to_int(self.hi)
        if a == b:
            return int(a)
        raise Undecidable("int() of an interval that spans an integer")

    def __bool__(self):
        if self.lo == fzero and self.hi == fzero:
            return False
        if mpf_lt(fzero, self.lo) or mpf_lt(self.hi, fzero) or self.lo == fnan:
            return True
        raise Undecidable("truth value of an interval that contains 0")


class IntervalContext(IntervalSpecialMixin):
    """Outward-rounded interval arithmetic at ``prec`` bits (design note a)."""

    def __init__(self, prec: int):
        self.prec = int(prec)
        self.mpf_type = type("Iv", (_Iv,), {"__slots__": (), "prec": self.prec,
                                            "ctx": self})
        Iv = self.mpf_type
        self.nan = Iv(fnan, fnan)
        self.inf = Iv(finf, finf)
        self.ninf = Iv(fninf, fninf)
        self.zero = Iv(fzero, fzero)
        self.one = Iv(fone, fone)

    # -- conversion ------------------------------------------------------------
    def point(self, v):
        """A degenerate interval from a raw mpf tuple."""
        return self.mpf_type(v, v)

    def from_floats(self, values):
        """Exact conversion of a list of Python floats (fast path for inputs)."""
        Iv, nan = self.mpf_type, self.nan
        out = []
        for x in values:
            if x != x:
                out.append(nan)
            else:
                v = from_float(x)
                out.append(Iv(v, v))
        return out

    def convert(self, x):
        if isinstance(x, _Iv):
            if x.ctx is not self:
                raise TypeError("interval from another context")
            return x
        if isinstance(x, float):
            return self.nan if x != x else self.point(from_float(x))
        if isinstance(x, int) and not isinstance(x, bool):
            if x == 0:
                return self.zero
            return self.point(from_int(x))
        if isinstance(x, Fraction):
            return self.mpf_type(from_rational(x.numerator, x.denominator, self.prec, round_floor),
                                 from_rational(x.numerator, x.denominator, self.prec, round_ceiling))
        if isinstance(x, str):
            return self.convert(Fraction(x)) if x.lower() not in ("nan", "inf", "-inf", "+inf") \
                else self.convert(float(x))
        if hasattr(x, "_mpf_"):
            return self.point(x._mpf_)
        if isinstance(x, (tuple, list)) and len(x) == 2:
            lo, hi = self.convert(x[0]), self.convert(x[1])
            return self.mpf_type(lo.lo, hi.hi)
        if hasattr(x, "__float__"):  # numpy scalars
            return self.convert(float(x))
        raise TypeError(f"interval context cannot convert {type(x).__name__}")

    def mpf(self, x=0):
        return self.convert(x)

    # -- predicates ------------------------------------------------------------
    def isnan(self, x):
        return self.convert(x).lo == fnan

    def isinf(self, x):
        x = self.convert(x)
        return x.lo == x.hi and x.lo in (finf, fninf)

    def isfinite(self, x):
        return not (self.isnan(x) or self.isinf(x))

    @property
    def pi(self):
        f = lambda _, wp, rnd: libmp.mpf_pi(wp, rnd)
        return self.mpf_type(_enclose(f, None, self.prec, round_floor),
                             _enclose(f, None, self.prec, round_ceiling))

    @property
    def ln2(self):
        f = lambda _, wp, rnd: libmp.mpf_ln2(wp, rnd)
        return self.mpf_type(_enclose(f, None, self.prec, round_floor),
                             _enclose(f, None, self.prec, round_ceiling))

    # -- sums ------------------------------------------------------------------
    def fsum(self, terms, absolute=False, squared=False):
        """Sum of the lower ends rounded down, of the upper ends rounded up: each sum is
        formed exactly and rounded once by ``mpf_sum``."""
        xs = [self.convert(t) for t in terms]
        if squared:
            xs = [x.square() for x in xs]
        if absolute:
            xs = [abs(x) for x in xs]
        if any(x.lo == fnan for x in xs):
            return self.nan
        if not xs:
            return self.zero
        # mpf_sum(prec=0) adds exactly (mpmath drops terms more than 2*prec bits below
        # the running sum when given a precision, which made 1.8e308 + 709 - 1.8e308 = 0
        # with a tight but wrong enclosure); the exact sum is then rounded outward once.
        lo = mpf_pos(mpf_sum([x.lo for x in xs], 0), self.prec, round_floor)
        hi = mpf_pos(mpf_sum([x.hi for x in xs], 0), self.prec, round_ceiling)
        if lo == fnan or hi == fnan:  # +inf and -inf among the ends
            return self.mpf_type(fninf, finf)
        return self.mpf_type(lo, hi)

    def fabs(self, x):
        return abs(self.convert(x))

    def ldexp(self, x, n):
        x = self.convert(x)
        return self.mpf_type(mpf_shift(x.lo, n), mpf_shift(x.hi, n))

    # -- elementary functions --------------------------------------------------
    # Monotone functions are evaluated on the endpoints and rounded outward with
    # ``_enclose`` (see WP_EXTRA / SLACK for why mpmath's own directed rounding is not
    # trusted).  sqrt is exact integer arithmetic in mpmath and needs no slack.
    def exp(self, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        return self.mpf_type(_enclose(mpf_exp, x.lo, self.prec, round_floor),
                             _enclose(mpf_exp, x.hi, self.prec, round_ceiling))

    def log(self, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        if mpf_lt(x.hi, fzero):
            return self.nan
        if mpf_le(x.lo, fzero):
            if x.lo == fzero and x.hi == fzero:
                return self.ninf
            raise Undecidable("log of an interval that reaches 0")
        return self.mpf_type(_enclose(mpf_log, x.lo, self.prec, round_floor),
                             _enclose(mpf_log, x.hi, self.prec, round_ceiling))

    ln = log

    def sqrt(self, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        if mpf_lt(x.hi, fzero):
            return self.nan
        if mpf_lt(x.lo, fzero):
            raise Undecidable("sqrt of an interval that straddles 0")
        return self.mpf_type(mpf_sqrt(x.lo, self.prec, round_floor),
                             mpf_sqrt(x.hi, self.prec, round_ceiling))

    def log1p(self, x):
        # For |x| < 1, 1 + x is formed exactly (prec=0) so log1p(tiny) keeps its bits;
        # mpmath's log is accurate to full relative precision next to 1.  For |x| >= 1
        # an exact sum could need ~2**1024-bit integers (x near float64 max), so 1 + x
        # is rounded outward instead: log is increasing, the enclosure stays valid, and
        # since log(1 + x) >= log 2 there the relative widening is ~2**-(prec + 9).
        x = self.convert(x)
        if x.lo == fnan:
            return x
        wp = self.prec + 10

        def end(v, rnd):
            if v == fzero:
                return v
            mag = v[2] + v[3]                            # |v| < 2**mag
            if v[1] and mag < -wp:
                # |v| < 2**-wp: 1 + v would need a 2**|mag|-bit integer; use
                # v - v**2 <= log1p(v) <= v (|v| <= 1/2), tight to ~2**-wp relative
                if rnd == round_ceiling:
                    return v
                return mpf_sub(v, mpf_mul(v, v, wp, round_ceiling), wp, round_floor)
            one_plus = mpf_add(fone, v, 0 if (v[1] and mag <= 0) else wp, rnd)
            if mpf_le(one_plus, fzero):
                return fninf if one_plus == fzero else fnan
            return _enclose(mpf_log, one_plus, self.prec, rnd)
        lo, hi = end(x.lo, round_floor), end(x.hi, round_ceiling)
        if hi == fnan:
            return self.nan
        if lo == fnan:
            raise Undecidable("log1p of an interval that reaches -1")
        return self.mpf_type(lo, hi)

    def _expm1_end(self, v, rnd):
        """expm1 at one endpoint, rounded in direction ``rnd``.

        exp(v) - 1 cancels about -log2|v| bits when |v| < 1, so exp is computed with that
        many extra bits, rounded in the same direction (exp is increasing and the
        subtraction of 1 is exact), and the difference is then rounded once."""
        if v in (fzero, finf):
            return v
        if v == fninf:
            return libmp.fnone
        mag = v[2] + v[3]                       # |v| < 2**mag
        if mag < -(self.prec + 10):
            # v <= expm1(v) <= v + v**2 for |v| <= 1 (e^v >= 1 + v by convexity; the
            # tail v**2/2 + v**3/6 + ... is at most v**2)
            if rnd == round_floor:
                return v
            return mpf_add(v, mpf_mul(v, v, self.prec, round_ceiling), self.prec, rnd)
        extra = max(0, -mag) + 10
        e = _enclose(mpf_exp, v, self.prec + extra, rnd)
        return mpf_sub(e, fone, self.prec, rnd)

    def expm1(self, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        return self.mpf_type(self._expm1_end(x.lo, round_floor),
                             self._expm1_end(x.hi, round_ceiling))

    def _at_point(self, f, v):
        return f(self.mpf_type(v, v))

    # tanh, sinh are increasing: the lower end of f([lo, lo]) and the upper end of
    # f([hi, hi]) enclose f([lo, hi]).  At a point the formulas below lose nothing to
    # cancellation: they are built on expm1, so tanh(x) ~ x for tiny x keeps its bits.
    @staticmethod
    def _tanh_formula(x):
        # tanh(x) = (e^{2x} - 1) / (e^{2x} + 1) = m / (m + 2), m = expm1(2x)
        m = x.ctx.expm1(x.ctx.ldexp(x, 1))
        if m.hi == finf:                        # x = +inf
            return x.ctx.one
        return m / (m + 2)

    @staticmethod
    def _sinh_formula(x):
        # sinh(x) = (e - 1/e) / 2 = m (m + 2) / (2 (m + 1)), m = expm1(x).  For x < 0,
        # m + 1 = e^x would cancel, so the odd symmetry sinh(x) = -sinh(-x) is used.
        if mpf_lt(x.lo, fzero):
            return -x.ctx._sinh_formula(-x)
        m = x.ctx.expm1(x)
        if m.hi == finf or m.lo == fninf:
            return x
        return m * (m + 2) / (2 * (m + 1))

    def _monotone(self, f, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        return self.mpf_type(self._at_point(f, x.lo).lo, self._at_point(f, x.hi).hi)

    def tanh(self, x):
        x = self.convert(x)
        if x.lo == fninf and x.hi == fninf:
            return -self.one
        return self._monotone(self._tanh_formula, x)

    def sinh(self, x):
        return self._monotone(self._sinh_formula, x)

    def cosh(self, x):
        # cosh(x) = (e + 1/e) / 2: no cancellation.  Even, minimal (= 1) at 0.
        x = self.convert(x)
        if x.lo == fnan:
            return x
        a, b = mpi_abs((x.lo, x.hi))

        def at(v, end):
            if v == finf:
                return finf
            e = self.exp(self.point(v))
            c = (e + 1 / e) / 2
            return c.lo if end == 0 else c.hi
        return self.mpf_type(at(a, 0), at(b, 1))


# ---------------------------------------------------------------------------
# Exact rationals
# ---------------------------------------------------------------------------

def _q_from_float(x: float):
    return _Q(*x.as_integer_ratio())


class RationalContext(RationalSpecialMixin):
    """Exact rational arithmetic (design note d).  Non-finite constants are Python
    floats, so ``x / 0`` guarded as ``ctx.inf`` stays exact."""

    zero = _Q(0)
    one = _Q(1)
    inf = math.inf
    ninf = -math.inf
    nan = math.nan

    def from_floats(self, values):
        return [_q_from_float(x) for x in values]

    def convert(self, x):
        if isinstance(x, float):
            return _q_from_float(x) if math.isfinite(x) else x
        if isinstance(x, (int, Fraction)) or type(x) is _Q:
            return _Q(x)
        if isinstance(x, str):
            return _Q(Fraction(x)) if x.lower() not in ("nan", "inf", "-inf", "+inf") \
                else float(x)
        if hasattr(x, "_mpf_"):
            s, m, e, _ = x._mpf_
            if x._mpf_ in (fnan, finf, fninf):
                return float(x)
            v = _Q(int(m)) * (_Q(2) ** e)
            return -v if s else v
        if hasattr(x, "__float__"):
            return self.convert(float(x))
        raise TypeError(f"rational context cannot convert {type(x).__name__}")

    def mpf(self, x=0):
        return self.convert(x)

    def isnan(self, x):
        return isinstance(x, float) and x != x

    def isinf(self, x):
        return isinstance(x, float) and math.isinf(x)

    def isfinite(self, x):
        return not isinstance(x, float) or math.isfinite(x)

    def fsum(self, terms, absolute=False, squared=False):
        total = _Q(0)
        for t in terms:
            t = self.convert(t) if isinstance(t, (str, float)) else t
            if squared:
                t = t * t
            if absolute:
                t = abs(t)
            total = total + t
        return total

    def fabs(self, x):
        return abs(x)

    def ldexp(self, x, n):
        return x * _Q(2) ** n

    def sqrt(self, x):
        """Exact when x is the square of a rational, else NotRational."""
        if isinstance(x, float):
            if x != x or x < 0:
                return math.nan
            return x
        if x < 0:
            return math.nan
        x = _Q(x)
        p, q = int(x.numerator), int(x.denominator)
        rp, rq = math.isqrt(p), math.isqrt(q)
        if rp * rp == p and rq * rq == q:
            return _Q(rp, rq)
        raise NotRational("sqrt of a non-square rational")

    def _transcendental(self, *args, **kw):
        raise NotRational("transcendental function in the rational context")

    exp = log = ln = log1p = expm1 = tanh = sinh = cosh = _transcendental

    @property
    def pi(self):
        raise NotRational("pi in the rational context")

    ln2 = pi


def is_exact_rational(v) -> bool:
    """A result element the rational context may return: a rational, or a non-finite
    float constant (finite floats mean a float leaked into the computation)."""
    if isinstance(v, float):
        return not math.isfinite(v)
    return isinstance(v, (int, Fraction)) or type(v) is _Q
