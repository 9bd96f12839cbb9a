"""Abstract values: intervals with outward rounding, affine forms, tensor partitions.

Design:
(a) An abstract tensor keeps, per element, an interval ``[lo, hi]`` (float64 arrays of the
    tensor's shape) and a may-be-NaN flag.  The interval encloses both the value the
    program computes in the analysed dtype and the exact real value (the tester compares
    the two; a rule that only held for one of them would not be sound for ``refrt.check``).
(b) A partition ``labels`` (an int array of the tensor's shape) groups the elements into
    parts; after every op each part is *smashed*: its elements share the join of their
    intervals (DEBAR's tensor smashing).  ``expand`` gives every element its own part,
    ``smash`` one part per tensor, ``auto`` splits where data make elements differ
    (constants by value, ``where`` masks, ``concat`` blocks), see ``analyze.Policy``.
(c) Affine forms ``x = c0 + sum_s C[e, s] * s + [-err, err]`` per element over symbols
    ``s`` with intervals (DEBAR's affine equality relations, widened by an error radius so
    that rounding stays sound).  A symbol denotes one scalar (``singleton``: an element
    under expansion, a one-element part) or a whole part of a tensor at the *same flat
    position* as the element that uses it; an op that moves or mixes positions turns the
    latter into intervals first (``Forms.concretize``), so ``x - mean(x)`` is never 0.
(d) Rounding.  Bounds are computed in float64 and moved outward by ``widen``: by the
    op's registry tolerance plus one, in ulps of the analysed dtype (the float kernel's
    error, as refrt's accuracy tests measure it), plus float64's own rounding; a bound
    beyond the dtype's largest finite value becomes +-inf (the float result may overflow).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

INF = math.inf


class DtypeLimits:
    """The analysed dtype's exact limits."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        fi = np.finfo(self.dtype)
        self.max = float(fi.max)
        self.tiny = float(fi.tiny)
        self.denorm = float(np.nextafter(self.dtype.type(0), self.dtype.type(1)))
        self.eps = float(fi.eps)          # ulp(1) = 2 * unit roundoff
        self.u = self.eps / 2


U64 = 2.0 ** -53


def widen(lo, hi, lim, ulps=1.0):
    """Move [lo, hi] outward by ``ulps`` ulps of the dtype (relative eps * |v|, plus that
    many subnormal steps for results near 0) and by 2 ulps of float64; bounds past the
    dtype's maximum become +-inf."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    with np.errstate(all="ignore"):
        rel = ulps * lim.eps + 4 * U64
        lo2 = lo - np.abs(lo) * rel - ulps * lim.denorm
        hi2 = hi + np.abs(hi) * rel + ulps * lim.denorm
    lo2 = np.where(np.isinf(lo), lo, lo2)    # +-inf stay
    hi2 = np.where(np.isinf(hi), hi, hi2)
    lo2 = np.where(np.isnan(lo2), -INF, lo2)
    hi2 = np.where(np.isnan(hi2), INF, hi2)
    lo2 = np.where(lo2 < -lim.max, -INF, lo2)
    hi2 = np.where(hi2 > lim.max, INF, hi2)
    return lo2, hi2


def exact_widen(lo, hi, lim):
    """Bounds of an op that is exact in float (a copy, a select, max/min): only the
    float64 rounding of the bound computation."""
    return widen(lo, hi, lim, ulps=0.0)


class Symbols:
    """The symbol table: an interval per symbol and whether it denotes one scalar."""

    def __init__(self):
        self.lo, self.hi, self.singleton, self.origin = [], [], [], []

    def __len__(self):
        return len(self.lo)

    def new(self, lo, hi, singleton, origin):
        """Fresh symbols for the given (finite) intervals; returns their ids."""
        lo = np.atleast_1d(np.asarray(lo, np.float64))
        hi = np.atleast_1d(np.asarray(hi, np.float64))
        start = len(self.lo)
        self.lo += lo.tolist()
        self.hi += hi.tolist()
        self.singleton += [bool(singleton)] * lo.size
        self.origin += [origin] * lo.size
        return np.arange(start, start + lo.size)

    def arrays(self):
        lo, hi = np.array(self.lo, np.float64), np.array(self.hi, np.float64)
        return 0.5 * (lo + hi), 0.5 * (hi - lo), np.array(self.singleton, bool)


class Forms:
    """Affine forms of the elements of one tensor (flat order): ``c0 + C @ s +- err``."""

    __slots__ = ("c0", "C", "err")

    def __init__(self, c0, C, err):
        self.c0 = np.asarray(c0, np.float64).ravel()
        self.C = C.tocsr()
        self.err = np.asarray(err, np.float64).ravel()

    @staticmethod
    def constant(lo, hi, nsym):
        """Forms that only say x in [lo, hi] (no symbol); infinite bounds give err = inf."""
        lo, hi = np.ravel(lo).astype(np.float64), np.ravel(hi).astype(np.float64)
        fin = np.isfinite(lo) & np.isfinite(hi)
        with np.errstate(all="ignore"):
            c0 = np.where(fin, 0.5 * lo + 0.5 * hi, 0.0)
            err = np.where(fin, (hi - lo) * 0.5 * (1 + 4 * U64), INF)
        return Forms(c0, sp.csr_matrix((lo.size, nsym)), err)

    def resized(self, nsym):
        if self.C.shape[1] != nsym:
            C = self.C.copy()
            C.resize((self.C.shape[0], nsym))
            return Forms(self.c0, C, self.err)
        return self

    @property
    def n(self):
        return self.c0.size

    def range(self, symbols):
        """Interval enclosure of every element's form (rounded outward in float64)."""
        mid, rad, _ = symbols.arrays()
        F = self.resized(len(mid))
        with np.errstate(all="ignore"):
            m = F.c0 + (F.C @ mid if len(mid) else 0.0)
            r = (abs(F.C) @ rad if len(mid) else 0.0) + F.err
            slack = 8 * U64 * ((abs(F.C) @ np.abs(mid) if len(mid) else 0.0) + np.abs(m) + r)
            lo, hi = m - r - slack, m + r + slack
        lo = np.where(np.isnan(lo), -INF, lo)
        hi = np.where(np.isnan(hi), INF, hi)
        return lo, hi

    def concretize(self, symbols, rows=None):
        """Replace the terms over non-singleton symbols (in ``rows``, a bool mask of the
        elements; all by default) by their intervals."""
        mid, rad, single = symbols.arrays()
        F = self.resized(len(mid))
        if not len(mid) or single.all():
            return F
        ns = sp.diags((~single).astype(np.float64))
        if rows is not None:
            R = sp.diags(np.asarray(rows, np.float64).ravel())
            part = R @ F.C @ ns
        else:
            part = F.C @ ns
        with np.errstate(all="ignore"):
            c0 = F.c0 + part @ mid
            err = F.err + abs(part) @ rad + 8 * U64 * (abs(part) @ np.abs(mid))
        return Forms(c0, F.C - part, err)

    def take(self, idx):
        idx = np.asarray(idx).ravel()
        return Forms(self.c0[idx], self.C[idx], self.err[idx])

    def linear(self, M, symbols, const=0.0):
        """``M @ x + const`` for a sparse (or dense) matrix ``M`` over the elements; the
        caller adds the op's rounding to ``err``."""
        M = sp.csr_matrix(M)
        F = self.resized(len(symbols))
        with np.errstate(all="ignore"):
            c0 = M @ F.c0 + const
            aM = abs(M)
            err = aM @ F.err
            err = np.where(np.isnan(err), INF, err)
            # the float64 evaluation of c0 and of the coefficients: relative 2^-52 of
            # sum |M| |c0| (and of the coefficient magnitudes, bounded through the ranges)
            err = err + 4 * U64 * (aM @ np.abs(F.c0))
        return Forms(c0, M @ F.C, err)


def combine(a, b, wa, wb, symbols):
    """wa * a + wb * b elementwise (wa, wb arrays or scalars, finite)."""
    A, B = a.resized(len(symbols)), b.resized(len(symbols))
    wa = np.broadcast_to(np.asarray(wa, np.float64), A.c0.shape)
    wb = np.broadcast_to(np.asarray(wb, np.float64), B.c0.shape)
    with np.errstate(all="ignore"):
        c0 = wa * A.c0 + wb * B.c0
        err = np.where(wa == 0, 0.0, np.abs(wa) * A.err) + np.where(wb == 0, 0.0, np.abs(wb) * B.err)
        err = err + 4 * U64 * (np.abs(wa * A.c0) + np.abs(wb * B.c0))
    C = sp.diags(wa) @ A.C + sp.diags(wb) @ B.C
    return Forms(c0, C, err)


class ATensor:
    """An abstract tensor: per-element interval and NaN flag, a partition, affine forms."""

    __slots__ = ("lo", "hi", "nan", "labels", "forms", "point")

    def __init__(self, lo, hi, nan=None, labels=None, forms=None, point=None):
        self.lo = np.asarray(lo, np.float64)
        self.hi = np.asarray(hi, np.float64)
        self.nan = np.zeros(self.lo.shape, bool) if nan is None else \
            np.broadcast_to(np.asarray(nan, bool), self.lo.shape).copy()
        self.labels = np.zeros(self.lo.shape, np.int64) if labels is None else labels
        self.forms = forms
        self.point = point        # the concrete array when the tensor is a known constant

    @property
    def shape(self):
        return self.lo.shape

    @property
    def size(self):
        return self.lo.size

    @property
    def is_point(self):
        return self.point is not None

    def parts(self):
        return int(self.labels.max()) + 1 if self.labels.size else 0
