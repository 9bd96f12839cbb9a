# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Normalisation kernels (batch_norm_inference, layer_norm): forward and VJP,
float32 and float64.

Design:
a) One fused type; float32 kernels run float32 arithmetic (``sqrtf``, ``fmaf``) and
   float32 accumulators: nothing widens.
b) Why double-words.  y = (x - mu) / std * gamma + beta is compared with the exact real
   value rounded once.  Where x_hat * gamma and beta nearly cancel, any rounding in
   x_hat * gamma is amplified by |x_hat * gamma| / |y|; in plain working precision that
   gives tens of ulp for ~10% of normal-family inputs.  So every intermediate is carried
   as hi + lo (about 2p bits): x - mu by TwoSum, sqrt and 1/std by one Newton-style
   correction with an fma residual, products by fma, and the final + beta by TwoSum;
   the result is rounded once.  Folding into a per-channel (scale, bias = beta -
   mu * scale) pair, as the TorchLean affine lemma suggests, rounds bias and loses the
   cancellation between x * scale and mu * scale.  Measured on 40 draws of the normal
   family: working-precision fold 1168 ulp (float32) / 299 ulp (float64), unfolded
   working-precision formula 748 / 185 ulp, this double-word form 0 ulp.  So the fold
   is kept only for scale = gamma / std (a per-channel double-word) and x - mu is
   formed exactly per element.
c) Range.  The double-word fast path needs finite intermediates and a scale whose low
   part is not cut by underflow.  Elements whose fast result is not finite while every
   input is finite (x - mu, x_hat * gamma or the sum overflowing, while the real
   result may be finite) go to a scaled path that splits exponents off with frexp and
   adds them back once with ldexp.  layer_norm scales a row by 2**-k (exact) when its
   largest magnitude could overflow the squares (the normalised value is scale
   invariant; eps is scaled by 2**-2k with it).
d) Statistics (layer_norm, norm_rows.h c): the two-pass variance with a shifted first pass: mean =
   x_0 + sum(x_i - x_0) / D (Sum2, the branch-free Neumaier sum), so a
   constant row has mean exactly x_0 and deviations exactly 0 (normalises to beta), and
   D = 1 gives deviation 0 (the LayerNorm BugZoo case: output beta).  Both sums run on
   16 Sum2 lanes (element i to lane i mod 16, lanes folded in order), which lets them
   vectorise; the order depends on D only.  var = sum(dev^2) / D >= 0, so TorchLean's
   clamp max(var, 0) is a no-op here.
e) Non-finite inputs (inf/NaN in x, stats, gamma, beta) take the plain IEEE formula,
   which propagates them as the spec's real formula does (inf - inf = NaN, ...).
f) VJP sums (dgamma, dbeta, layer_norm's row means) use Sum2 in an order fixed by the
   shape: batch_norm's channel sums and layer_norm's row sums on 16 lanes (element i of
   a plane or row to lane i mod 16, planes in n order, lanes folded in order), the
   column sums over rows in order; gradients do not depend on the thread count.
g) ``cdivision=True``: IEEE division, never raises.
h) layer_norm's row passes (statistics, output, x_hat) are C in norm_rows.h, cloned per
   ISA level (AVX-512 / AVX2 / baseline, same bits: tests/test_norm_rows_clones.py):
   max|x| and the shifted mean in one pass, the deviations with one TwoSum (not two),
   and the output as fma(x_hat_hi, gamma, beta) + x_hat_lo gamma (the bn_fast scheme,
   ~1 ulp) instead of the double-word product + TwoSum (~0.5 ulp at ~1.6x the flops);
   layer_norm 4096x1000 at one thread went from 22 to 8.5 ms CPU time (float32) and 28
   to 15 ms (float64) on the issue-12 machine (shared; old and new interleaved).  This file keeps the non-finite and scaled
   paths (Design c, e) and the VJP.  At one thread no kernel enters an OpenMP region.
"""
import numpy as _np
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isnan, isfinite, NAN
from ._scalar cimport f_sqrt, f_abs, f_fma, two_sum, f_frexp, f_ldexp, mul_add_scaled


# Quiet a > b (C99 isgreater): no FE_INVALID on NaN, so gcc can vectorise the select.
cdef extern from *:
    """
    #define refrt_norm_gt(a, b) __builtin_isgreater((a), (b))
    """
    bint norm_gt "refrt_norm_gt" (double a, double b) nogil


# ---------------------------------------------------------------- scalar helpers

# Independent Sum2 lanes of the VJP sums (16 float32 = two AVX2 registers).
cdef enum:
    LANES = 16
# Columns (channels) per block of the row-major column sums: 4 x CB accumulators fit L1.
cdef enum:
    CB = 256


cdef inline int emax_of(floating x) noexcept nogil:
    # largest binary exponent: frexp(max) gives 128 (float32) / 1024 (float64)
    if floating is float:
        return 128
    else:
        return 1024


cdef inline floating small_scale(floating x) noexcept nogil:
    # 2**(emin + p): below it the low word of a double-word product is subnormal
    if floating is float:
        return 1.9721522630525295e-31     # 2**-102
    else:
        return 2.004168360008973e-292    # 2**-969


# Double-word sqrt and reciprocal of v = vh + vl > 0 (finite).
# s = sqrt(vh) rounded; v - s^2 = fma(-s, s, vh) + vl (the fma residual is exact), and
# sqrt(v) = s + (v - s^2) / (2 s) + O((v - s^2)^2 / s^3): one Newton step.
# 1 / (sh + sl): r = 1/sh rounded, 1 - r sh = fma(-r, sh, 1) exactly, and
# 1/(sh + sl) - r = (1 - r sh - r sl) / (sh + sl) ~= (fma(-r, sh, 1) - r sl) * r.
cdef inline void rsqrt_dw(floating vh, floating vl, floating *rh, floating *rl) noexcept nogil:
    cdef floating sh = f_sqrt(vh)
    cdef floating sl = (f_fma(-sh, sh, vh) + vl) / (2 * sh)
    rh[0] = 1 / sh
    rl[0] = (f_fma(-rh[0], sh, 1) - rh[0] * sl) * rh[0]


# (ah + al) * (bh + bl) + c = y, one rounding at the end (the fast path).
# Product: ah bh = ph + fma(ah, bh, -ph) exactly; the cross terms ah bl + al bh are
# below ulp(ph) and round harmlessly.  Sum: TwoSum(ph, c) exact, lo parts added last.
cdef inline floating mul_add_dw(floating ah, floating al, floating bh, floating bl,
                                floating c) noexcept nogil:
    cdef floating e
    cdef floating ph = ah * bh
    cdef floating pl = f_fma(ah, bh, -ph) + (ah * bl + al * bh)
    cdef floating s = two_sum(ph, c, &e)
    return s + (e + pl)


# ---------------------------------------------------------------- batch_norm_inference
# x is viewed as (N, C, S): channel_axis=0 is N = 1 (TorchLean's (C, spatial...)).

cdef inline void bn_channel(floating mu, floating var, floating gamma, floating eps,
                            floating *std, floating *rh, floating *rl, floating *sh,
                            floating *sl, bint *fast) noexcept nogil:
    # v = max(max(var, 0) + eps, 0) as the exact double-word vh + vl (TwoSum); NaN var
    # stays NaN (the clamp would otherwise hide it).
    cdef floating v0 = var if (var > 0 or isnan(var)) else 0
    cdef floating vl
    cdef floating vh = two_sum(v0, eps, &vl)
    if not (vh > 0):
        vh = vh if isnan(vh) else 0
        vl = 0
    std[0] = f_sqrt(vh)
    fast[0] = vh > 0 and isfinite(vh) and isfinite(mu) and isfinite(gamma)
    if fast[0]:
        rsqrt_dw(vh, vl, rh, rl)
        # scale = gamma / std as a double-word (one fma residual).
        sh[0] = gamma * rh[0]
        sl[0] = f_fma(gamma, rh[0], -sh[0]) + gamma * rl[0]
        fast[0] = isfinite(sh[0]) and (sh[0] == 0 or f_abs(sh[0]) >= small_scale(sh[0]))
    else:
        rh[0] = NAN
        rl[0] = NAN
        sh[0] = NAN
        sl[0] = NAN


cdef inline floating bn_element(floating x, floating mu, floating std, floating rh,
                                floating rl, floating sh, floating sl, bint fast,
                                floating gamma, floating beta) noexcept nogil:
    cdef floating dh, dl, y, xs, ms, mg, Sh, Sl
    cdef int a = 0, eg
    if fast:
        # x - mu = dh + dl exactly; y = (dh + dl) (sh + sl) + beta, one final rounding.
        dh = two_sum(x, -mu, &dl)
        y = mul_add_dw(dh, dl, sh, sl, beta)
        if isfinite(y):
            return y
    if not (isfinite(x) and isfinite(mu) and isfinite(gamma) and isfinite(beta)
            and isfinite(rh) and isfinite(rl)):
        # Design e: the formula as written, IEEE semantics.
        return (x - mu) / std * gamma + beta
    # Scaled path (Design c): x, mu quartered when x - mu could overflow (exact: they
    # are huge), gamma split into mantissa and exponent so gamma / std cannot overflow.
    xs = x
    ms = mu
    if f_abs(x) >= f_ldexp(<floating>1, emax_of(x) - 2) or f_abs(mu) >= f_ldexp(<floating>1, emax_of(x) - 2):
        xs = f_ldexp(x, -2)
        ms = f_ldexp(mu, -2)
        a = 2
    dh = two_sum(xs, -ms, &dl)
    mg = f_frexp(gamma, &eg)
    Sh = mg * rh
    Sl = f_fma(mg, rh, -Sh) + mg * rl
    return mul_add_scaled(dh, dl, Sh, Sl, a + eg, beta)


# One (n, c) plane of S elements with a fast channel.  Pass 1 is call- and branch-free
# so it vectorises (~10 flops per element):
#   x - mu = dh + dl exactly (TwoSum);
#   y1 = fma(dh, sh, beta): dh sh + beta rounded once, so a cancellation between
#        dh sh and beta costs nothing;
#   y  = y1 + (dh sl + dl sh): the cross terms are ~u |dh sh|, their own rounding and
#        the dropped dl sl are ~u^2 |dh sh|.
# Error: 1/2 ulp(y1) + 1/2 ulp(y) + O(u^2 |dh sh|), <= ~1.5 ulp of y unless y is itself
# below ~u |dh sh| (a double cancellation the u^2 terms then dominate).  The
# double-word product + TwoSum of the former version gave ~0.5 ulp at 2x the flops.
# The same loop sums y * 0 in 16 lanes (NaN iff some y is +-inf or NaN); only a plane
# with a non-finite result (overflow, inf/NaN inputs) is walked again through
# bn_element.
# Fast-path element: y = (x - mu)(sh + sl) + beta with x - mu = dh + dl exact (TwoSum),
# stored to y; returns y * 0 (0 if y is finite, NaN otherwise) for the caller's check.
cdef inline floating bn_fast(floating xi, floating mu, floating sh, floating sl,
                             floating beta, floating *y) noexcept nogil:
    cdef floating dh = xi - mu
    cdef floating bb = dh - xi
    cdef floating dl = (xi - (dh - bb)) + (-mu - bb)
    cdef floating y1 = f_fma(dh, sh, beta) + (dh * sl + dl * sh)
    y[0] = y1
    return y1 * 0


cdef void bn_plane(const floating *x, floating *y, Py_ssize_t S, floating mu,
                   floating std, floating rh, floating rl, floating sh, floating sl,
                   floating gamma, floating beta) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating K[16]
    cdef floating chk = 0
    cdef Py_ssize_t l, full = S - S % 16
    # Non-finite check: K[l] sums y * 0 over lane l, 0 while every y is finite and NaN
    # as soon as one is +-inf or NaN (inf * 0 = NaN).  Summed in 16 lanes in the main
    # loop: one running sum would be an in-order reduction (no vectorisation without
    # reassociation), and the former separate pass (int flag |= y * 0 != 0) compiled
    # to widening compares and lane shuffles, ~40% of the plane time.
    for l in range(16):
        K[l] = 0
    for i in range(0, full, 16):
        for l in range(16):
            K[l] = K[l] + bn_fast(x[i + l], mu, sh, sl, beta, &y[i + l])
    for i in range(full, S):
        chk = chk + bn_fast(x[i], mu, sh, sl, beta, &y[i])
    for l in range(16):
        chk = chk + K[l]
    if chk != chk:
        for i in range(S):
            if not isfinite(y[i]):
                y[i] = bn_element(x[i], mu, std, rh, rl, sh, sl, True, gamma, beta)


# S == 1 (x is (N, C), e.g. features after a linear layer): one (n, :) row at a time,
# the same per-element formula as bn_plane vectorised across channels (per-channel
# mu, sh, sl, beta arrays).  A channel without the fast path has sh = NaN, so its
# elements are flagged and go through bn_element with that channel's flag.
cdef void bn_row(const floating *x, floating *y, Py_ssize_t C, const floating *mu,
                 const floating *sh, const floating *sl, const floating *beta,
                 const floating[:, ::1] st, const unsigned char[::1] fast,
                 const floating *gamma) noexcept nogil:
    cdef Py_ssize_t c
    cdef floating K[16]
    cdef floating chk = 0
    cdef Py_ssize_t l, full = C - C % 16
    for l in range(16):                # the lane check of bn_plane
        K[l] = 0
    for c in range(0, full, 16):
        for l in range(16):
            K[l] = K[l] + bn_fast(x[c + l], mu[c + l], sh[c + l], sl[c + l], beta[c + l],
                                  &y[c + l])
    for c in range(full, C):
        chk = chk + bn_fast(x[c], mu[c], sh[c], sl[c], beta[c], &y[c])
    for l in range(16):
        chk = chk + K[l]
    if chk != chk:
        for c in range(C):
            if not isfinite(y[c]):
                y[c] = bn_element(x[c], mu[c], st[0, c], st[1, c], st[2, c], st[3, c],
                                  st[4, c], fast[c], gamma[c], beta[c])


def bn_fwd(const floating[::1] x,         # IN  (N, C, S) flat
           const floating[::1] mean,      # IN  (C,) running mean
           const floating[::1] var,       # IN  (C,) running variance
           const floating[::1] gamma,     # IN  (C,)
           const floating[::1] beta,      # IN  (C,)
           floating eps,                  # IN  exact dtype value
           Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
           floating[::1] out,             # OUT (N, C, S) flat
           int threads=1):
    dt = _np.float32 if floating is float else _np.float64
    arr = _np.empty((5, C), dtype=dt)
    fast_arr = _np.zeros(C, dtype=_np.uint8)
    cdef floating[:, ::1] st = arr
    cdef unsigned char[::1] fast = fast_arr
    cdef Py_ssize_t c, p, i, base
    cdef bint f
    with nogil:
        for c in range(C):
            bn_channel(mean[c], var[c], gamma[c], eps, &st[0, c], &st[1, c], &st[2, c],
                       &st[3, c], &st[4, c], &f)
            fast[c] = f
            if not f:
                st[3, c] = NAN             # flags every element of the channel in bn_row
        if S == 1 and threads == 1:     # no OpenMP region at 1 thread (its start-up
            for p in range(N):          # is most of a small call)
                bn_row(&x[p * C], &out[p * C], C, &mean[0], &st[3, 0], &st[4, 0],
                       &beta[0], st, fast, &gamma[0])
        elif S == 1:
            for p in prange(N, num_threads=threads, schedule="static"):
                bn_row(&x[p * C], &out[p * C], C, &mean[0], &st[3, 0], &st[4, 0],
                       &beta[0], st, fast, &gamma[0])
        else:
            _bn_planes(x, mean, gamma, beta, st, fast, N, C, S, out, threads)


cdef void _bn_planes(const floating[::1] x, const floating[::1] mean,
                     const floating[::1] gamma, const floating[::1] beta,
                     const floating[:, ::1] st, const unsigned char[::1] fast,
                     Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, floating[::1] out,
                     int threads) noexcept nogil:
    cdef Py_ssize_t p
    if threads == 1:                    # no OpenMP region at 1 thread
        for p in range(N * C):
            _bn_one_plane(x, mean, gamma, beta, st, fast, C, S, out, p)
    else:
        for p in prange(N * C, num_threads=threads, schedule="static"):
            _bn_one_plane(x, mean, gamma, beta, st, fast, C, S, out, p)


cdef inline void _bn_one_plane(const floating[::1] x, const floating[::1] mean,
                               const floating[::1] gamma, const floating[::1] beta,
                               const floating[:, ::1] st, const unsigned char[::1] fast,
                               Py_ssize_t C, Py_ssize_t S, floating[::1] out,
                               Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t c = p % C, base = p * S, i
    if fast[c]:
        bn_plane(&x[base], &out[base], S, mean[c], st[0, c], st[1, c], st[2, c],
                 st[3, c], st[4, c], gamma[c], beta[c])
    else:
        for i in range(S):
            out[base + i] = bn_element(x[base + i], mean[c], st[0, c], st[1, c],
                                       st[2, c], st[3, c], st[4, c], False,
                                       gamma[c], beta[c])


def bn_vjp(const floating[::1] x,         # IN  (N, C, S) flat
           const floating[::1] mean,      # IN  (C,)
           const floating[::1] var,       # IN  (C,)
           const floating[::1] gamma,     # IN  (C,)
           const floating[::1] g,         # IN  upstream (N, C, S) flat
           floating eps,
           Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
           floating[::1] gx,              # OUT g gamma / std
           floating[::1] gmean,           # OUT -sum g gamma / std
           floating[::1] gvar,            # OUT -1/2 sum g gamma (x - mu) / v^(3/2), v = var' + eps
           floating[::1] ggamma,          # OUT sum g x_hat
           floating[::1] gbeta,           # OUT sum g
           int threads=1):
    # d/dvar of max(var, 0) is taken as 1 for var >= 0 and 0 below (the clamp's side).
    cdef Py_ssize_t c
    if S == 1:
        _bn_vjp_rows(x, mean, var, gamma, g, eps, N, C, gx, gmean, gvar, ggamma, gbeta,
                     threads)
        return
    with nogil:
        for c in prange(C, num_threads=threads, schedule="static"):
            bn_vjp_channel(&x[0], &g[0], &gx[0], mean[c], var[c], gamma[c], eps, N, C, S,
                           c, &gmean[c], &gvar[c], &ggamma[c], &gbeta[c])


# Sum2 step on lane arrays (s, e): the branch-free Neumaier step of Design f.
cdef inline void lane_acc(floating v, floating *s, floating *e) noexcept nogil:
    cdef floating t = s[0] + v
    cdef floating bb = t - s[0]
    e[0] = e[0] + ((s[0] - (t - bb)) + (v - bb))
    s[0] = t


# Fold LANES Sum2 lanes in lane order into one rounded value.
cdef inline floating lanes_total(const floating *s, const floating *e) noexcept nogil:
    cdef floating t = 0, c = 0
    cdef Py_ssize_t l
    for l in range(LANES):
        lane_acc(s[l], &t, &c)
        c = c + e[l]
    # a non-finite sum: the compensation holds inf - inf = NaN garbage (losses.pyx
    # Design f); the sum itself follows IEEE
    return t + c if isfinite(t) else t


# One channel of bn_vjp over its N planes of S elements.  The sums (g and g x_hat) run
# on LANES Sum2 lanes: element i of every plane goes to lane i mod LANES (the S % LANES
# tail to the first lanes), planes in n order, lanes folded in lane order; a single
# Sum2 chain would serialise on its ~4 dependent adds per element.  The order depends
# on S only, never on the thread count.
cdef void bn_vjp_channel(const floating *x, const floating *g, floating *gx, floating mu,
                         floating var, floating gamma, floating eps, Py_ssize_t N,
                         Py_ssize_t C, Py_ssize_t S, Py_ssize_t c, floating *gmean,
                         floating *gvar, floating *ggamma, floating *gbeta) noexcept nogil:
    cdef floating sg[16]              # LANES
    cdef floating cg[16]
    cdef floating sgx[16]
    cdef floating cgx[16]
    cdef floating v, std, inv, scale, gi, tg, tgx
    cdef const floating *xp
    cdef const floating *gp
    cdef floating *op
    cdef Py_ssize_t n, i, l, full = S - S % LANES
    v = (var if (var > 0 or isnan(var)) else 0) + eps
    std = f_sqrt(v if (v > 0 or isnan(v)) else 0)
    inv = 1 / std
    scale = gamma * inv
    for l in range(LANES):
        sg[l] = 0
        cg[l] = 0
        sgx[l] = 0
        cgx[l] = 0
    for n in range(N):
        xp = x + (n * C + c) * S
        gp = g + (n * C + c) * S
        op = gx + (n * C + c) * S
        for i in range(0, full, 16):       # LANES
            for l in range(LANES):
                gi = gp[i + l]
                op[i + l] = gi * scale
                lane_acc(gi, &sg[l], &cg[l])
                lane_acc(gi * ((xp[i + l] - mu) * inv), &sgx[l], &cgx[l])
        for l in range(S - full):
            gi = gp[full + l]
            op[full + l] = gi * scale
            lane_acc(gi, &sg[l], &cg[l])
            lane_acc(gi * ((xp[full + l] - mu) * inv), &sgx[l], &cgx[l])
    tg = lanes_total(sg, cg)
    tgx = lanes_total(sgx, cgx)
    gbeta[0] = tg
    ggamma[0] = tgx
    # Exact zeros stay 0 when a factor overflows (the hunt, float32: gamma = max with
    # var = 0 makes gamma / std = inf, and x - mu = -max makes the normalised x = -inf;
    # inf * 0 was NaN where the exact cotangent is 0): a zero sum or a zero gamma
    # decides the product.
    gmean[0] = -tg * scale if tg != 0 else -tg * gamma
    gvar[0] = (((-0.5 * tgx) * inv) * inv * gamma if (tgx != 0 and gamma != 0) else 0) \
        if var >= 0 else 0


# ---------------------------------------------------------------- layer_norm

# Row statistics (Design c, d, h): on return dev_i = (x_i * 2**-k - mh) - ml and
# 1/sqrt(var_s + eps_s) = rh + rl in the scaled units, with k in *k (norm_rows.h).
# Returns False for a row with a non-finite value (the caller takes the plain path).
cdef extern from "norm_rows.h" nogil:
    int refrt_ln_stats_f64(const double *x, Py_ssize_t D, double eps, int *k, double *st)
    int refrt_ln_stats_f32(const float *x, Py_ssize_t D, float eps, int *k, float *st)
    int refrt_ln_out_f64(const double *x, Py_ssize_t D, double sc, const double *st,
                         const double *g, const double *b, double *y)
    int refrt_ln_out_f32(const float *x, Py_ssize_t D, float sc, const float *st,
                         const float *g, const float *b, float *y)
    void refrt_ln_xhat_f64(const double *x, Py_ssize_t D, double sc, const double *st,
                           double *xh)
    void refrt_ln_xhat_f32(const float *x, Py_ssize_t D, float sc, const float *st,
                           float *xh)


cdef inline bint ln_stats(const floating *x, Py_ssize_t D, floating eps, int *k,
                          floating *st) noexcept nogil:
    if floating is float:
        return refrt_ln_stats_f32(x, D, eps, k, st)
    else:
        return refrt_ln_stats_f64(x, D, eps, k, st)


cdef void ln_row(const floating *x, const floating *gamma, const floating *beta,
                 Py_ssize_t D, floating eps, floating *y) noexcept nogil:
    cdef int k
    cdef floating st[4]
    cdef floating sc, dh, dl, e, qh, ql, m, v
    cdef Py_ssize_t i
    cdef bint redo
    if D == 0:
        return
    if not ln_stats(x, D, eps, &k, st):
        # Design e: plain two-pass formula, IEEE propagation.
        m = 0
        for i in range(D):
            m += x[i]
        m = m / D
        v = 0
        for i in range(D):
            v += (x[i] - m) * (x[i] - m)
        v = v / D
        for i in range(D):
            y[i] = (x[i] - m) / f_sqrt(v + eps) * gamma[i] + beta[i]
        return
    sc = f_ldexp(<floating>1, -k)
    # Output pass (norm_rows.h, d); only a row with a non-finite result (overflow of
    # x_hat * gamma + beta, inf/NaN gamma or beta) is walked again for the scaled path.
    if floating is float:
        redo = refrt_ln_out_f32(x, D, sc, st, gamma, beta, y)
    else:
        redo = refrt_ln_out_f64(x, D, sc, st, gamma, beta, y)
    if redo:
        for i in range(D):
            if not isfinite(y[i]) and isfinite(gamma[i]) and isfinite(beta[i]):
                dh = two_sum(x[i] * sc, -st[0], &e)
                dh = two_sum(dh, e - st[1], &dl)
                qh = dh * st[2]
                ql = f_fma(dh, st[2], -qh) + (dh * st[3] + dl * st[2])
                if isfinite(qh):
                    y[i] = mul_add_scaled(qh, ql, gamma[i], 0, 0, beta[i])


def ln_fwd(const floating[::1] x,         # IN  (R, D) flat
           const floating[::1] gamma,     # IN  (D,)
           const floating[::1] beta,      # IN  (D,)
           floating eps,                  # IN  exact dtype value
           Py_ssize_t D,
           floating[::1] out,             # OUT (R, D) flat
           int threads=1):
    cdef Py_ssize_t R = x.shape[0] // D if D > 0 else 0, r
    with nogil:
        if threads == 1:    # no OpenMP region: its start-up dominates small inputs
            for r in range(R):
                ln_row(&x[r * D], &gamma[0], &beta[0], D, eps, &out[r * D])
        else:
            for r in prange(R, num_threads=threads, schedule="static"):
                ln_row(&x[r * D], &gamma[0], &beta[0], D, eps, &out[r * D])


# One row of ln_vjp: x_hat (written to xhat) and gx = inv (gg - mean(gg) - x_hat
# mean(gg x_hat)), gg = g gamma.  The two row sums run on LANES Sum2 lanes (element i to
# lane i mod LANES, tail to the first lanes, folded in lane order), so the loop
# vectorises instead of serialising on one Sum2 chain.
cdef void ln_row_vjp(const floating *x, const floating *gamma, const floating *g,
                     Py_ssize_t D, floating eps, floating *gx,
                     floating *xhat) noexcept nogil:
    cdef floating s1[16]              # LANES
    cdef floating c1[16]
    cdef floating s2[16]
    cdef floating c2[16]
    cdef int k
    cdef floating st[4]
    cdef floating sc, inv, m1, m2, gg
    cdef Py_ssize_t i, l, full = D - D % LANES
    if not ln_stats(x, D, eps, &k, st):
        for i in range(D):
            xhat[i] = NAN
            gx[i] = NAN
        return
    sc = f_ldexp(<floating>1, -k)
    inv = f_ldexp(st[2], -k)           # 1/std in the input's units
    if floating is float:
        refrt_ln_xhat_f32(x, D, sc, st, xhat)
    else:
        refrt_ln_xhat_f64(x, D, sc, st, xhat)
    for l in range(LANES):
        s1[l] = 0
        c1[l] = 0
        s2[l] = 0
        c2[l] = 0
    for i in range(0, full, 16):           # LANES
        for l in range(LANES):
            gg = g[i + l] * gamma[i + l]
            lane_acc(gg, &s1[l], &c1[l])
            lane_acc(gg * xhat[i + l], &s2[l], &c2[l])
    for l in range(D - full):
        gg = g[full + l] * gamma[full + l]
        lane_acc(gg, &s1[l], &c1[l])
        lane_acc(gg * xhat[full + l], &s2[l], &c2[l])
    m1 = lanes_total(s1, c1) / D
    m2 = lanes_total(s2, c2) / D
    for i in range(D):
        gx[i] = inv * ((g[i] * gamma[i] - m1) - xhat[i] * m2)


# Column sums of ln_vjp (gbeta = sum_rows g, ggamma = sum_rows g x_hat) for columns
# [c0, c0 + nc): row-major (each row's slice is contiguous, vectorised across columns),
# one Sum2 per column over the rows in order: deterministic, thread-count independent.
cdef void ln_colsums(const floating *g, const floating *xhat, Py_ssize_t R, Py_ssize_t D,
                     Py_ssize_t c0, Py_ssize_t nc, floating *ggamma,
                     floating *gbeta) noexcept nogil:
    cdef floating sg[256]             # CB
    cdef floating cg[256]
    cdef floating sgx[256]
    cdef floating cgx[256]
    cdef Py_ssize_t r, c, j
    for c in range(nc):
        sg[c] = 0
        cg[c] = 0
        sgx[c] = 0
        cgx[c] = 0
    for r in range(R):
        j = r * D + c0
        for c in range(nc):
            lane_acc(g[j + c], &sg[c], &cg[c])
            lane_acc(g[j + c] * xhat[j + c], &sgx[c], &cgx[c])
    for c in range(nc):
        gbeta[c0 + c] = sg[c] + cg[c] if isfinite(sg[c]) else sg[c]
        ggamma[c0 + c] = sgx[c] + cgx[c] if isfinite(sgx[c]) else sgx[c]


def ln_vjp(const floating[::1] x,         # IN  (R, D) flat
           const floating[::1] gamma,     # IN  (D,)
           const floating[::1] g,         # IN  upstream (R, D) flat
           floating eps,
           Py_ssize_t D,
           floating[::1] gx,              # OUT inv_std (gg - mean(gg) - x_hat mean(gg x_hat))
           floating[::1] xhat,            # OUT work: x_hat (R, D) flat
           floating[::1] ggamma,          # OUT sum_rows g x_hat
           floating[::1] gbeta,           # OUT sum_rows g
           int threads=1):
    cdef Py_ssize_t R = x.shape[0] // D if D > 0 else 0, r, b, c0, nb = (D + CB - 1) // CB
    if R == 0:
        return
    with nogil:
        for r in prange(R, num_threads=threads, schedule="static"):
            ln_row_vjp(&x[r * D], &gamma[0], &g[r * D], D, eps, &gx[r * D], &xhat[r * D])
        for b in prange(nb, num_threads=threads, schedule="static"):
            c0 = b * CB
            ln_colsums(&g[0], &xhat[0], R, D, c0, D - c0 if D - c0 < CB else CB,
                       &ggamma[0], &gbeta[0])


# bn_vjp for S == 1, x (N, C): row-major, channels vectorised.  Per-channel work arrays
# hold inv, scale and the four Sum2 accumulators; each channel's sums run over n in
# order.  Threads take blocks of CB channels (the sums never cross a block).

cdef void _bn_vjp_block(const floating *x, const floating *mean, const floating *var,
                        const floating *gamma, const floating *g, floating eps,
                        Py_ssize_t N, Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc,
                        floating *gx, floating *gmean, floating *gvar, floating *ggamma,
                        floating *gbeta) noexcept nogil:
    cdef floating inv[256]            # CB
    cdef floating sc[256]
    cdef floating sg[256]
    cdef floating cg[256]
    cdef floating sgx[256]
    cdef floating cgx[256]
    cdef floating v, std, gi, xh, s, bb, q
    cdef Py_ssize_t c, n, j
    for c in range(nc):
        v = (var[c0 + c] if (var[c0 + c] > 0 or isnan(var[c0 + c])) else 0) + eps
        std = f_sqrt(v if (v > 0 or isnan(v)) else 0)
        inv[c] = 1 / std
        sc[c] = gamma[c0 + c] * inv[c]
        sg[c] = 0
        cg[c] = 0
        sgx[c] = 0
        cgx[c] = 0
    for n in range(N):
        j = n * C + c0
        for c in range(nc):
            gi = g[j + c]
            xh = (x[j + c] - mean[c0 + c]) * inv[c]
            gx[j + c] = gi * sc[c]
            s = sg[c] + gi
            bb = s - sg[c]
            cg[c] = cg[c] + ((sg[c] - (s - bb)) + (gi - bb))
            sg[c] = s
            q = gi * xh
            s = sgx[c] + q
            bb = s - sgx[c]
            cgx[c] = cgx[c] + ((sgx[c] - (s - bb)) + (q - bb))
            sgx[c] = s
    for c in range(nc):
        gbeta[c0 + c] = sg[c] + cg[c] if isfinite(sg[c]) else sg[c]
        ggamma[c0 + c] = sgx[c] + cgx[c] if isfinite(sgx[c]) else sgx[c]
        # exact zeros as in bn_vjp_channel
        tg = sg[c] + cg[c] if isfinite(sg[c]) else sg[c]
        tgx = sgx[c] + cgx[c] if isfinite(sgx[c]) else sgx[c]
        gmean[c0 + c] = -tg * sc[c] if tg != 0 else -tg * gamma[c0 + c]
        gvar[c0 + c] = ((((-0.5 * tgx) * inv[c]) * inv[c] * gamma[c0 + c])
                        if (tgx != 0 and gamma[c0 + c] != 0) else 0) if var[c0 + c] >= 0 else 0


cdef void _bn_vjp_rows(const floating[::1] x, const floating[::1] mean,
                       const floating[::1] var, const floating[::1] gamma,
                       const floating[::1] g, floating eps, Py_ssize_t N, Py_ssize_t C,
                       floating[::1] gx, floating[::1] gmean, floating[::1] gvar,
                       floating[::1] ggamma, floating[::1] gbeta, int threads):
    cdef Py_ssize_t b, nb = (C + CB - 1) // CB, c0
    if C == 0:
        return
    with nogil:
        for b in prange(nb, num_threads=threads, schedule="static"):
            c0 = b * CB
            _bn_vjp_block(&x[0], &mean[0], &var[0], &gamma[0], &g[0], eps, N, C, c0,
                          C - c0 if C - c0 < CB else CB, &gx[0], &gmean[0], &gvar[0],
                          &ggamma[0], &gbeta[0])
