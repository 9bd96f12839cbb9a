"""sin, cos, erf and erfc for the certifying contexts of ``refrt._oracle_ctx``.

``IntervalSpecialMixin`` is a base of ``IntervalContext``; ``RationalSpecialMixin`` of
``RationalContext`` (where they are transcendental: ``NotRational``).

Design:

a. The same enclosure rule as the other elementary functions (``_oracle_ctx._enclose``):
   mpmath's value at WP_EXTRA more bits, widened by 2**SLACK ulps of that precision and
   rounded outward.  mpmath reduces sin/cos arguments with as many bits of pi as the
   argument's magnitude needs (``mod_pi2``), so sin(1e300) is accurate to its precision.
b. erf is increasing and erfc decreasing: their enclosure of an interval is the outward
   rounded value at the two ends.  sin and cos are not monotone: the enclosure of the
   end values is widened to +-1 where an extremum (pi/2 + k pi for sin, k pi for cos)
   lies inside the interval; whether one does is decided with an enclosure of pi, and
   raises ``Undecidable`` when the interval's end is too close to an extremum to tell.
c. Exact values: sin(0) = 0, cos(0) = 1, erf(0) = 0, erfc(0) = 1, erf(+-inf) = +-1,
   erfc(+inf) = 0, erfc(-inf) = 2; sin and cos of +-inf are NaN (C99 Annex F).
d. erfc(t) for t > 2**40: mpmath's erfc overflows a float in its series check
   (``erfc_check_series``), so the asymptotic expansion with its alternating-series
   error bound is used: for t > 0, S (1 - 1/(2t^2)) < erfc(t) < S with
   S = e^(-t^2) / (t sqrt(pi)) (Abramowitz & Stegun 7.1.24: the remainder after n terms
   has the sign and at most the size of the next term).  At t > 2**40 that pins erfc to
   a relative width of 2**-81, and the value is below 2**-(2**80), far below every
   float's smallest subnormal, so every target rounding is decided.
"""
from __future__ import annotations

from mpmath import libmp
from mpmath.libmp import (fnan, finf, fninf, fone, fzero, from_int, mpf_cos, mpf_lt,
                          mpf_sin, round_ceiling, round_floor)
from mpmath.libmp.libhyper import mpf_erf, mpf_erfc

FTWO = from_int(2)
FMONE = from_int(-1)
HUGE_ERFC_MAG = 40           # design note d: |t| >= 2**40


def _min(a, b):
    return a if mpf_lt(a, b) else b


def _max(a, b):
    return b if mpf_lt(a, b) else a


class IntervalSpecialMixin:
    """sin, cos, erf, erfc on ``_Iv`` intervals (design notes a-d).  Uses the context's
    ``convert``, ``mpf_type``, ``prec``, ``pi``, ``exp``, ``sqrt`` and ``nan``."""

    def _end(self, f, v, rnd):
        from ._oracle_ctx import _enclose
        return _enclose(f, v, self.prec, rnd)

    # -- sin / cos -----------------------------------------------------------------
    def _trig(self, x, f, exact_zero, phase_max, phase_min):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        if x.lo == x.hi and x.lo in (finf, fninf):
            return self.nan
        if x.lo in (finf, fninf) or x.hi in (finf, fninf):
            return self.mpf_type(FMONE, fone)
        if x.lo == x.hi == fzero:
            return self.point(exact_zero)
        lo = _min(self._end(f, x.lo, round_floor), self._end(f, x.hi, round_floor))
        hi = _max(self._end(f, x.lo, round_ceiling), self._end(f, x.hi, round_ceiling))
        if x.lo != x.hi:
            if self._hits(x, phase_max):
                hi = fone
            if self._hits(x, phase_min):
                lo = FMONE
        return self.mpf_type(_max(lo, FMONE), _min(hi, fone))

    def _hits(self, x, phase):
        """Whether [x.lo, x.hi] contains phase * pi + 2 k pi for an integer k."""
        two_pi = 2 * self.pi
        c = self.pi * self.convert(phase)
        u = (self.point(x.lo) - c) / two_pi
        w = (self.point(x.hi) - c) / two_pi
        kmin = libmp.to_int(u.lo, round_ceiling), libmp.to_int(u.hi, round_ceiling)
        kmax = libmp.to_int(w.lo, round_floor), libmp.to_int(w.hi, round_floor)
        if kmin[0] != kmin[1] or kmax[0] != kmax[1]:
            from ._oracle_ctx import Undecidable
            raise Undecidable("an end of the interval is too close to an extremum of sin/cos")
        return kmin[0] <= kmax[0]

    def sin(self, x):
        from fractions import Fraction
        return self._trig(x, mpf_sin, fzero, Fraction(1, 2), Fraction(-1, 2))

    def cos(self, x):
        return self._trig(x, mpf_cos, fone, 0, 1)

    # -- erf / erfc ----------------------------------------------------------------
    def erf(self, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x

        def end(v, rnd):
            if v in (finf, fninf):
                return fone if v == finf else FMONE
            return self._end(mpf_erf, v, rnd)
        return self.mpf_type(_max(end(x.lo, round_floor), FMONE), _min(end(x.hi, round_ceiling), fone))

    def _erfc_end(self, v, rnd):
        if v == finf:
            return fzero
        if v == fninf:
            return FTWO
        if v == fzero:
            return fone
        if v[1] and not v[0] and v[2] + v[3] > HUGE_ERFC_MAG:     # t > 2**40: note d
            t = self.point(v)
            s = self.exp(-(t * t)) / (t * self.sqrt(self.pi))
            return s.hi if rnd == round_ceiling else (s * (1 - 1 / (2 * (t * t)))).lo
        return self._end(mpf_erfc, v, rnd)

    def erfc(self, x):
        x = self.convert(x)
        if x.lo == fnan:
            return x
        lo = _max(self._erfc_end(x.hi, round_floor), fzero)
        hi = _min(self._erfc_end(x.lo, round_ceiling), FTWO)
        return self.mpf_type(lo, hi)


class RationalSpecialMixin:
    def _not_rational(self, *args, **kw):
        from ._oracle_ctx import NotRational
        raise NotRational("transcendental function in the rational context")

    sin = cos = erf = erfc = _not_rational
