"""Arb ball arithmetic (python-flint) as a certifying context for the oracle.

``ArbContext(prec)`` runs the mp formulas of ``refrt.backends`` unchanged (the protocol
of ``refrt/backends/mpctx.py``), beside the interval and rational contexts of
``refrt._oracle_ctx``; ``refrt.oracle`` tries it first and keeps the interval context
for everything it does not settle.

Design:

a. Numbers are ``flint.arb`` balls [m +- r]: Arb (Johansson, "Arb: efficient
   arbitrary-precision midpoint-radius interval arithmetic", IEEE TC 2017) computes in
   C a ball that contains the exact result of every operation on any points of its
   operands, elementary functions included (its error bounds are rigorous; no widening
   by hand as ``_oracle_ctx._enclose`` needs for mpmath).  ``+ - * /`` and the
   comparisons are Arb's own operators, so a formula's arithmetic runs in C; that is
   where the speed comes from (~10-20x the interval context).
b. Precision: python-flint keeps its working precision in one process-wide setting
   (``flint.ctx.prec``).  ``ArbContext.active()`` sets it for one evaluation and puts
   the previous value back; the oracle holds its lock (``MPMATH_LOCK``) meanwhile, so
   two oracle evaluations never share it.  Code of the caller's own that uses
   python-flint from another thread during an oracle call would see the oracle's
   precision: the price of python-flint's global setting.
c. Inputs are exact points (``arb(float)`` is exact), so the comparisons a formula
   makes on its inputs are exact, as in the interval context.  Arb answers a comparison
   of overlapping balls with False both ways (the interval context raises
   ``Undecidable``); formulas compare only inputs (the protocol), and the oracle's tests
   run every op on both contexts (tests/test_oracle.py, test_oracle_vjp.py).
d. The domain edges that the interval context decides explicitly are decided here the
   same way: log(0) = -inf, log1p(-1) = -inf, log/sqrt/log1p of a certainly negative
   (below -1) ball are NaN, and a ball that straddles the edge raises ``Undecidable``.
e. What Arb does not settle goes to the interval context (``refrt.oracle``): a result
   that is not a finite ball (NaN, an infinity, an overflowed ``[+/- inf]``), any
   exception in the formula (``int()`` of a ball, a division by an exact zero, ...),
   and inputs with an inf or NaN (the oracle's non-finite pass).  So NaN and inf results
   and every error come from the path they came from before.
f. ``round_floats(values)`` decides float64 results without leaving C: python-flint's
   ``float()`` of an exact Arb number is ``arf_get_d(..., ARF_RND_NEAR)``, round to
   nearest even with IEEE subnormals and overflow (FLINT documents that it rounds
   correctly when the result over- or underflows), i.e. the oracle's ``round_raw`` for
   float64.  Other formats go through the exact mantissa and exponent (``raw``).
"""
from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction

from mpmath.libmp import finf, fnan, fninf, from_man_exp

from ._oracle_ctx import Undecidable

try:
    import flint
    from flint import arb, fmpq
except ImportError:  # pragma: no cover - python-flint is a dependency; see pyproject.toml
    flint = arb = fmpq = None

AVAILABLE = flint is not None


def raw(point):
    """The raw mpmath mpf tuple of an exact Arb number (a ball's ``lower()``/``upper()``,
    which may be +-inf or NaN)."""
    if not point.is_finite():
        return fnan if point.is_nan() else finf if point > 0 else fninf
    m, e = point.man_exp()
    return from_man_exp(int(m), int(e))


class ArbContext:
    """Arb balls at ``prec`` bits (design notes a-e).  Reused per precision."""

    _erfc_end = None    # marks an erfc that is rigorous for huge arguments (mp_math2)

    def __init__(self, prec: int):
        self.prec = int(prec)
        self.zero, self.one = arb(0), arb(1)
        self.inf, self.ninf, self.nan = arb.pos_inf(), arb.neg_inf(), arb.nan()
        self.mpf_type = arb

    @contextmanager
    def active(self):
        """Run with python-flint's working precision at ``prec`` (design note b)."""
        old = flint.ctx.prec
        flint.ctx.prec = self.prec
        try:
            yield self
        finally:
            flint.ctx.prec = old

    # -- conversion ------------------------------------------------------------
    def from_floats(self, values):
        return [arb(x) for x in values]

    def convert(self, x):
        if type(x) is arb:
            return x
        if isinstance(x, float):
            if x != x:
                return self.nan
            if x in (float("inf"), float("-inf")):
                return self.inf if x > 0 else self.ninf
            return arb(x)
        if isinstance(x, int) and not isinstance(x, bool):
            return arb(x)
        if isinstance(x, Fraction):
            return arb(fmpq(x.numerator, x.denominator))
        if isinstance(x, str):
            return self.convert(Fraction(x)) if x.lower() not in ("nan", "inf", "-inf", "+inf") \
                else self.convert(float(x))
        if hasattr(x, "_mpf_"):
            return arb(x)
        if hasattr(x, "__float__"):  # numpy scalars
            return self.convert(float(x))
        raise TypeError(f"arb context cannot convert {type(x).__name__}")

    def mpf(self, x=0):
        return self.convert(x)

    # -- predicates ------------------------------------------------------------
    def isnan(self, x):
        return (x if type(x) is arb else self.convert(x)).is_nan()

    def isinf(self, x):
        x = x if type(x) is arb else self.convert(x)
        return not x.is_finite() and (x == self.inf or x == self.ninf)

    def isfinite(self, x):
        return (x if type(x) is arb else self.convert(x)).is_finite()

    @property
    def pi(self):
        return arb.pi()

    @property
    def ln2(self):
        return arb.const_log2()

    # -- sums ------------------------------------------------------------------
    def fsum(self, terms, absolute=False, squared=False):
        xs = [self.convert(t) for t in terms]
        if squared:
            xs = [x * x for x in xs]
        if absolute:
            xs = [abs(x) for x in xs]
        total = self.zero
        for x in xs:
            total = total + x
        return total

    def fabs(self, x):
        return abs(self.convert(x))

    def ldexp(self, x, n):
        return self.convert(x) * arb((1, int(n)))    # 2**n exactly

    # -- elementary functions (domain edges: design note d) ---------------------
    def exp(self, x):
        return (x if type(x) is arb else self.convert(x)).exp()

    def log(self, x):
        x = self.convert(x)
        if x > 0:
            return x.log()
        if x.is_nan() or x < 0:
            return self.nan
        if x == 0:
            return self.ninf
        raise Undecidable("log of a ball that reaches 0")

    ln = log

    def sqrt(self, x):
        x = self.convert(x)
        if x >= 0:
            return x.sqrt()
        if x.is_nan() or x < 0:
            return self.nan
        raise Undecidable("sqrt of a ball that straddles 0")

    def log1p(self, x):
        x = self.convert(x)
        if x > -1:
            return x.log1p()
        if x.is_nan() or x < -1:
            return self.nan
        if x == -1:
            return self.ninf
        raise Undecidable("log1p of a ball that reaches -1")

    def expm1(self, x):
        return (x if type(x) is arb else self.convert(x)).expm1()

    def tanh(self, x):
        return (x if type(x) is arb else self.convert(x)).tanh()

    def sinh(self, x):
        return (x if type(x) is arb else self.convert(x)).sinh()

    def cosh(self, x):
        return (x if type(x) is arb else self.convert(x)).cosh()

    def sin(self, x):
        return (x if type(x) is arb else self.convert(x)).sin()

    def cos(self, x):
        return (x if type(x) is arb else self.convert(x)).cos()

    def erf(self, x):
        return (x if type(x) is arb else self.convert(x)).erf()

    def erfc(self, x):
        return (x if type(x) is arb else self.convert(x)).erfc()


_CONTEXTS: dict = {}


def arb_context(prec: int) -> ArbContext:
    """The ``ArbContext`` at ``prec`` bits, built once per precision."""
    ctx = _CONTEXTS.get(prec)
    if ctx is None:
        ctx = _CONTEXTS[prec] = ArbContext(prec)
    return ctx
