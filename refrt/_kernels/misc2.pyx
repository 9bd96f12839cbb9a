# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Kernels of the catalog's remaining tensor ops: float masks (logical_not, any, all),
first-occurrence argmax/argmin, rand_uniform, global-norm gradient clipping, the
symmetric clamp of clip_by_percentile, the diagonal selective scan and the affine
quantizer, float32 and float64.

Design:
a) Masks are floats (refrt's comparisons): true is nonzero, NaN included (x != 0 is
   true for NaN), results are exactly 1.0 / 0.0.  argmax/argmin keep the first
   extremum (a strict comparison replaces it) and a NaN wins at once (torch).
b) rand_uniform: u_i = splitmix64(key + i) mod 2^32 / 2^32 with key = splitmix64(seed +
   counter) (_splitmix.pxd, the catalog's keyOf / sampleNat / uniform).  The quotient
   is exact in binary64 (a 32-bit integer times 2^-32); float32 rounds it to nearest
   once.
c) clip_gradients: N^2 = sum g_i^2 is formed on g_i 2^-e, e = exponent of max|g_i| (so
   the largest scaled value lies in [1/2, 1): no square overflows, the small ones
   underflow only below 2^-1074 relative to the largest, where they cannot change the
   sum), as a double word S = sh + sl: each square is TwoProduct(x, x) by fma, the
   running sum TwoSum (Ogita-Rump-Oishi Sum2 on positive terms: relative error
   <= n u^2).  The branch N^2 > m^2 compares S with TwoProduct(m 2^-e, m 2^-e); the
   factor q = fm / sqrt(S), |m| = fm 2^em, is a double word (sqrt by one Newton
   correction of the residual sh - nh^2 + sl, division by one residual fma), and
   y_i = 2^em (g_i 2^-e) q by one fma and one ldexp: |y| <= |m| never overflows, one
   rounding (two where y is subnormal).  NaN anywhere: the comparison is
   false, g is returned; inf: N = inf, every element times 0 (inf * 0 = NaN), as the
   catalog's Float semantics give.
d) quantize: rnd(x / s) of the real quotient, round half to even.  k = rint(fl(x / s))
   is within one of it; the real position of x against (k +- 1/2) s is decided by one
   fma each, x - (k + 1/2) s rounded once, whose sign is exact (|k| < 2^21 / 2^51, so
   k + 1/2 is exact); a zero is an exact tie.  When s is below 2^-60 (float32) /
   2^-900 (float64) both are scaled by 2^60 / 2^900 first so that the remainder cannot
   underflow to zero; |x / s| >= 2^21 / 2^51 saturates (the code range is limited to
   2^20 / 2^50 by the registry).  Codes are int64, clamped, then converted exactly.
e) diagonal_scan: the state h_t = a_t h_(t-1) + b_t is a scaled double word
   (hh + hl) 2^E, |hh| in [1/2, 1), E an int, so a state whose real value leaves the
   format (a 1e308 step undone by a 1e-300 one) neither overflows nor underflows: with
   a = ma 2^ea and b = mb 2^eb (frexp), p + ep = ma hh exactly (TwoProduct by fma), the
   low part ep + ma hl, both brought to the larger exponent with b (the smaller may
   underflow: it is then below the larger's u^2), added by TwoSum, renormalised.  The
   output is ldexp(hh + hl, E): one rounding (two in the subnormal range).  Non-finite
   inputs fall back to IEEE arithmetic on the state's value (inf, NaN as the real
   limits).  The VJP runs the same recurrence backwards on lam_t = g_t + a_(t+1)
   lam_(t+1) and forms da_t = lam_t h_(t-1) and dh0 = a_0 lam_0 from the scaled double
   words with one rounding.
"""
from cython cimport floating
from libc.stdint cimport uint64_t, int64_t
from libc.math cimport isnan, isinf, isfinite, rint, INFINITY, NAN
from ._scalar cimport two_sum, f_fma, f_sqrt, f_abs, f_ldexp, f_frexp, f_exponent
from ._splitmix cimport splitmix64


# ---- masks and positions (Design a) ----------------------------------------------------

def logical_not(const floating[::1] x, floating[::1] out):
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            out[i] = 1 if x[i] == 0 else 0


def any_all_rows(const floating[:, ::1] rows,   # IN  (R, n)
                 bint want_all,
                 floating[::1] out):            # OUT (R,)
    cdef Py_ssize_t r, j, n = rows.shape[1]
    cdef bint acc
    with nogil:
        for r in range(rows.shape[0]):
            acc = want_all
            for j in range(n):
                if want_all:
                    if rows[r, j] == 0:
                        acc = False
                        break
                elif rows[r, j] != 0:          # NaN != 0 is true
                    acc = True
                    break
            out[r] = 1 if acc else 0


def argext_rows(const floating[:, ::1] rows,    # IN  (R, n), n >= 1
                bint is_max,
                floating[::1] out):             # OUT (R,) positions as exact floats
    cdef Py_ssize_t r, j, best, n = rows.shape[1]
    cdef floating v, m
    with nogil:
        for r in range(rows.shape[0]):
            best = 0
            m = rows[r, 0]
            if not isnan(m):
                for j in range(1, n):
                    v = rows[r, j]
                    if isnan(v):
                        best = j
                        break
                    if (v > m) if is_max else (v < m):
                        m = v
                        best = j
            out[r] = <floating>best


# ---- rand_uniform (Design b) -----------------------------------------------------------

def uniform_fill(uint64_t seed, uint64_t counter, floating[::1] out):
    cdef uint64_t key = splitmix64(seed + counter)
    cdef Py_ssize_t i
    with nogil:
        for i in range(out.shape[0]):
            out[i] = <floating>(<double>(splitmix64(key + <uint64_t>i) & <uint64_t>0xffffffffULL)
                                / 4294967296.0)


# ---- clip_gradients (Design c) ---------------------------------------------------------

cdef int _clip_state(const floating[::1] g, floating m, int *e_out, int *em_out,
                     floating *qh, floating *ql, floating *nh, floating *nl) noexcept nogil:
    """0: not clipped (return g); 1: clipped with y = 2^em (g 2^-e) (qh + ql); 2: N = inf
    (y = g * 0).  nh + nl = sqrt(S) of the scaled g; qh + ql = fm / (nh + nl) with
    |m| = fm 2^em (frexp: a subnormal max_norm keeps its full precision in q)."""
    cdef Py_ssize_t i, n = g.shape[0]
    cdef floating amax = 0, v, x, p, ep, sh = 0, sl = 0, es, mm, mp, emp, d, r, fm
    cdef int e, em
    for i in range(n):
        v = f_abs(g[i])
        if isnan(v):
            return 0
        if v > amax:
            amax = v
    if isinf(amax):
        return 2
    if amax == 0:
        return 0
    e = f_exponent(amax)
    for i in range(n):
        x = f_ldexp(g[i], -e)
        p = x * x
        ep = f_fma(x, x, -p)
        sh = two_sum(sh, p, &es)
        sl = sl + (es + ep)
    mm = f_ldexp(f_abs(m), -e)
    if isinf(mm):
        return 0
    mp = mm * mm
    emp = f_fma(mm, mm, -mp)
    if isinf(mp):
        return 0
    # S > m^2 <=> (sh - mp) + (sl - emp) > 0; sh - mp is exact when they are close
    d = (sh - mp) + (sl - emp)
    if not d > 0:
        return 0
    nh[0] = f_sqrt(sh)
    # sqrt(sh + sl) = nh + (sh - nh^2 + sl) / (2 nh) + O(u^2): the residual by fma
    r = f_fma(-nh[0], nh[0], sh) + sl
    nl[0] = r / (2 * nh[0])
    # q = fm / (nh + nl): qh = fl(fm / nh), ql = (fm - qh nh - qh nl) / nh
    fm = f_frexp(f_abs(m), &em)
    qh[0] = fm / nh[0]
    ql[0] = (f_fma(-qh[0], nh[0], fm) - qh[0] * nl[0]) / nh[0]
    e_out[0] = e
    em_out[0] = em
    return 1


def clip_norm(const floating[::1] g, floating m, floating[::1] out):
    cdef Py_ssize_t i
    cdef int e = 0, em = 0, state
    cdef floating qh = 0, ql = 0, nh = 0, nl = 0, x, zero = 0
    with nogil:
        state = _clip_state(g, m, &e, &em, &qh, &ql, &nh, &nl)
        for i in range(g.shape[0]):
            if state == 0:
                out[i] = g[i]
            elif state == 2:
                out[i] = g[i] * zero
            else:
                x = f_ldexp(g[i], -e)
                out[i] = f_ldexp(f_fma(x, qh, x * ql), em)
    return state


def clip_norm_vjp(const floating[::1] g, floating m,
                  const floating[::1] gbar,    # IN  upstream
                  floating[::1] out):          # OUT
    """c (gbar - g <g, gbar> / N^2) in the scaled variables: with x = g 2^-e and
    N_s = N 2^-e, c = q 2^-e, it is 2^-e q (gbar - x <x, gbar> / N_s^2); <x, gbar> is a
    compensated dot (TwoProduct + TwoSum)."""
    cdef Py_ssize_t i, n = g.shape[0]
    cdef int e = 0, em = 0, state
    cdef floating qh = 0, ql = 0, nh = 0, nl = 0, x, p, ep, dh = 0, dl = 0, es, t = 0, s2, zero = 0
    with nogil:
        state = _clip_state(g, m, &e, &em, &qh, &ql, &nh, &nl)
        if state == 1:
            for i in range(n):
                x = f_ldexp(g[i], -e)
                p = x * gbar[i]
                ep = f_fma(x, gbar[i], -p)
                dh = two_sum(dh, p, &es)
                dl = dl + (es + ep)
            # t = <x, gbar> / N_s^2 with N_s^2 = (nh + nl)^2 ~ nh^2 + 2 nh nl
            s2 = f_fma(nh, nh, 2 * nh * nl)
            t = (dh + dl) / s2
        for i in range(n):
            if state == 0:
                out[i] = gbar[i]
            elif state == 2:
                out[i] = gbar[i] * zero
            else:
                x = f_ldexp(g[i], -e)
                out[i] = f_ldexp(qh * f_fma(-x, t, gbar[i]), em - e)


# ---- clip_by_percentile's clamp --------------------------------------------------------

def clamp_sym(const floating[::1] g, floating b, floating[::1] out):
    """TorchLean's clampSpec with lo = -b, hi = b: t = x if lo <= x else lo (Lean's
    max lo x), then hi if hi <= t else t (min hi t): NaN gives lo."""
    cdef Py_ssize_t i
    cdef floating lo = -b, t
    with nogil:
        for i in range(g.shape[0]):
            t = g[i] if lo <= g[i] else lo
            out[i] = b if b <= t else t


def clamp_sym_vjp(const floating[::1] g, floating b, Py_ssize_t k,
                  const floating[::1] gbar, floating[::1] out):
    """gbar on -b <= g <= b (torch's clamp with tensor bounds: the closed interval goes
    to x); the clamped elements' gbar flows to b = |g_k|: out_k += sign(g_k) (sum over
    y = b minus sum over y = -b), summed compensated (TwoSum) with gbar_k."""
    cdef Py_ssize_t i
    cdef floating lo = -b, s = 0, c = 0, es, v, sg
    if isnan(b):
        out[:] = 0
        return
    with nogil:
        for i in range(g.shape[0]):
            v = g[i]
            if lo <= v and v <= b:
                out[i] = gbar[i]
            else:
                out[i] = 0
                if v > b:
                    s = two_sum(s, gbar[i], &es)
                else:                           # v < -b or NaN: y = -b
                    s = two_sum(s, -gbar[i], &es)
                c = c + es
        sg = 1 if g[k] > 0 else (-1 if g[k] < 0 else 0)
        v = two_sum(out[k], sg * s, &es)
        out[k] = v + (es + sg * c)


# ---- diagonal_scan (Design e) ----------------------------------------------------------

cdef inline void _renorm(floating *hh, floating *hl, int *E) noexcept nogil:
    # (hh + hl) 2^E with |hh| in [1/2, 1) (or hh = hl = 0, E = 0)
    cdef int k
    cdef floating nh
    if hh[0] == 0:
        hh[0] = hl[0]
        hl[0] = 0
    if hh[0] == 0:
        E[0] = 0
        return
    nh = f_frexp(hh[0], &k)
    hl[0] = f_ldexp(hl[0], -k)
    hh[0] = nh
    E[0] = E[0] + k


cdef inline void _step(floating a, floating b, floating *hh, floating *hl, int *E) noexcept nogil:
    """(hh + hl) 2^E <- a (hh + hl) 2^E + b, the state a scaled double word (its exponent
    an int: no intermediate overflow or underflow, Design e)."""
    cdef floating ma, mb, p, pl, ps, pls, bs, s, es, lo, nh
    cdef int ea, eb, F1, F
    if not (isfinite(a) and isfinite(b) and isfinite(hh[0])):
        # IEEE on the state's value: non-finite inputs give inf / NaN as the real limits
        hh[0] = a * f_ldexp(hh[0] + hl[0], E[0]) + b
        hl[0] = 0
        E[0] = 0
        if isfinite(hh[0]):
            _renorm(hh, hl, E)
        return
    ma = f_frexp(a, &ea)
    mb = f_frexp(b, &eb)
    if ma == 0 or hh[0] == 0:
        hh[0] = mb
        hl[0] = 0
        E[0] = eb if mb != 0 else 0
        return
    p = ma * hh[0]                       # |p| in [1/4, 1): exact TwoProduct below
    pl = f_fma(ma, hh[0], -p) + ma * hl[0]
    F1 = E[0] + ea
    if mb == 0:
        hh[0] = p
        hl[0] = pl
        E[0] = F1
        _renorm(hh, hl, E)
        return
    F = F1 if F1 > eb else eb
    ps = f_ldexp(p, F1 - F)              # the smaller operand may underflow: it is then
    pls = f_ldexp(pl, F1 - F)            # below the larger one's u^2
    bs = f_ldexp(mb, eb - F)
    s = two_sum(ps, bs, &es)
    lo = es + pls
    nh = s + lo
    hl[0] = lo - (nh - s)
    hh[0] = nh
    E[0] = F
    _renorm(hh, hl, E)


cdef inline floating _value(floating hh, floating hl, int E) noexcept nogil:
    return f_ldexp(hh + hl, E)


def diag_scan(const floating[:, ::1] a, const floating[:, ::1] b,   # IN  (T, S)
              const floating[::1] h0,                               # IN  (S,)
              floating[:, ::1] out,                                 # OUT (T, S)
              floating[:, ::1] high, floating[:, ::1] low,          # OUT the states
              int[:, ::1] expo):
    cdef Py_ssize_t t, j, T = a.shape[0], S = a.shape[1]
    cdef floating hh, hl
    cdef int E
    with nogil:
        for j in range(S):
            hh = h0[j]
            hl = 0
            E = 0
            if isfinite(hh):
                _renorm(&hh, &hl, &E)
            for t in range(T):
                _step(a[t, j], b[t, j], &hh, &hl, &E)
                out[t, j] = _value(hh, hl, E)
                high[t, j] = hh
                low[t, j] = hl
                expo[t, j] = E


cdef inline floating _dw_mul(floating ah, floating al, int ea, floating bh, floating bl,
                             int eb) noexcept nogil:
    # (ah + al) 2^ea (bh + bl) 2^eb rounded once (the mantissa product in [1/4, 1), then
    # one ldexp, which rounds only where the real value leaves the normal range)
    cdef floating p = ah * bh
    if not isfinite(p) or p == 0:
        return f_ldexp(p + (ah * bl + al * bh), ea + eb) if isfinite(p) else p
    return f_ldexp(p + (f_fma(ah, bh, -p) + (ah * bl + al * bh)), ea + eb)


def diag_scan_vjp(const floating[:, ::1] a,        # IN  (T, S)
                  const floating[::1] h0,          # IN  (S,)
                  const floating[:, ::1] hh,       # IN  (T, S) forward states
                  const floating[:, ::1] hl,
                  const int[:, ::1] he,
                  const floating[:, ::1] g,        # IN  (T, S) upstream
                  floating[:, ::1] ga, floating[:, ::1] gb, floating[::1] gh0):   # OUT
    cdef Py_ssize_t t, j, T = a.shape[0], S = a.shape[1]
    cdef floating lh, ll, ph, pl, m0
    cdef int le, pe, e0
    with nogil:
        for j in range(S):
            lh = 0
            ll = 0
            le = 0
            for t in range(T - 1, -1, -1):
                if t == T - 1:
                    lh = g[t, j]
                    ll = 0
                    le = 0
                    if isfinite(lh):
                        _renorm(&lh, &ll, &le)
                else:
                    _step(a[t + 1, j], g[t, j], &lh, &ll, &le)
                gb[t, j] = _value(lh, ll, le)
                if t > 0:
                    ph = hh[t - 1, j]
                    pl = hl[t - 1, j]
                    pe = he[t - 1, j]
                else:
                    ph = h0[j]
                    pl = 0
                    pe = 0
                    if isfinite(ph):
                        _renorm(&ph, &pl, &pe)
                ga[t, j] = _dw_mul(lh, ll, le, ph, pl, pe)
            if T > 0:
                m0 = f_frexp(a[0, j], &e0) if isfinite(a[0, j]) else a[0, j]
                if not isfinite(a[0, j]):
                    e0 = 0
                gh0[j] = _dw_mul(m0, 0, e0, lh, ll, le)
            else:
                gh0[j] = 0


# ---- the affine quantizer (Design d) ---------------------------------------------------

cdef inline int64_t _even(int64_t lo) noexcept nogil:
    # the even one of lo, lo + 1
    return lo if (lo % 2 == 0) else lo + 1


def quantize(const floating[::1] x, floating s, int64_t z, int64_t qmin, int64_t qmax,
             floating[::1] out):
    cdef Py_ssize_t i
    cdef floating t, k0, xs, ss, dhi, dlo, lim, half = 0.5
    cdef int64_t k, c
    cdef int up
    if floating is float:
        lim = 2097152.0                      # 2^21
        up = 60 if s < 8.673617379884035e-19 else 0      # 2^-60
    else:
        lim = 2251799813685248.0             # 2^51
        up = 900 if s < 1.4916681462400413e-271 else 0   # 2^-900
    ss = f_ldexp(s, up)
    with nogil:
        for i in range(x.shape[0]):
            if isnan(x[i]):
                out[i] = NAN
                continue
            xs = f_ldexp(x[i], up)
            t = xs / ss
            if t >= lim:
                c = qmax
            elif t <= -lim:
                c = qmin
            else:
                k0 = rint(t)
                dhi = f_fma(-(k0 + half), ss, xs)     # x - (k0 + 1/2) s, sign exact
                dlo = f_fma(-(k0 - half), ss, xs)     # x - (k0 - 1/2) s
                k = <int64_t>k0
                if dhi > 0:
                    k = k + 1
                elif dhi == 0:
                    k = _even(k)
                elif dlo < 0:
                    k = k - 1
                elif dlo == 0:
                    k = _even(k - 1)
                c = k + z
                if c < qmin:
                    c = qmin
                if c > qmax:
                    c = qmax
            out[i] = <floating>c


def dequantize(const floating[::1] k, floating s, floating z, floating[::1] out):
    cdef Py_ssize_t i
    cdef floating d, ed
    with nogil:
        for i in range(k.shape[0]):
            d = two_sum(k[i], -z, &ed)
            if not isfinite(d):
                out[i] = s * d
            else:
                out[i] = f_fma(s, d, s * ed)
