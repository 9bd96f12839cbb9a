# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Scaled dot-product attention: forward and VJP, float32 and float64.

out[b, i, :] = sum_j A[b, i, j] v[b, j, :],  A[b, i, :] = hard-masked softmax(u[b, i, :]),
u[b, i, j] = scale * <q[b, i, :], k[b, j, :]>; masked-out scores are -inf (weight 0)
and a row with every key masked out gives zeros (TorchLean's hardMaskedSoftmax; so does
torch 2.13's F.scaled_dot_product_attention on CPU; a softmax of all -inf gives NaN).

Design:
a) One fused type; float32 kernels run float32 arithmetic (``fmaf``, float32
   double-words): nothing widens.  Every intermediate is a double-word hi + lo (about 2p
   bits) and the result is rounded once at the end.
b) Why double-words.  The output sum_j A_j v_j cancels for mixed-sign v, and a relative
   error d in one weight becomes d |A_j v_j| / |out| in the result; the weights carry the
   rounding of the scores multiplied by |u| (exp(u - m) amplifies an absolute error of u
   into a relative error of exp).  So scores are compensated dot products (TwoProd by
   fma, TwoSum accumulation: Ogita-Rump-Oishi Dot2), times the double-word scale, and
   exp runs on the double-word argument with a double-word result (c); numerator and
   denominator are compensated sums; the quotient is a double-word division.  A plain
   working-precision formula is ~|u| ulp wrong in every weight (u = 80 in float32 gives
   ~40 ulp per weight before any cancellation).
c) exp_dw(t) for a double-word t <= ~0: t = n ln2 + r with n = rint(t / ln2), n ln2_hi
   exact by TwoProd, ln2 held as hi + lo (|error of r| <= n ulp(ln2_lo) ~ 2^-2p n);
   r / 2^8 (exact), expm1 by Horner r (1 + r/2 (1 + r/3 (... (1 + r/d)))) in
   double-words (d = 10 in float64: r^11 / 11! < 2^-110 for |r| <= ln2 / 2^9; d = 5 in
   float32: r^6 / 6! < 2^-60), then 8 doublings expm1(2r) = u (2 + u), which keep the
   relative accuracy of u, then 1 + u and ldexp by n.  t below -(emax + p) ln2 - 10
   gives 0 (below the smallest subnormal).
d) Range.  Each batch's q and k are scaled by powers of two (frexp of their largest
   magnitude, exact unless a scaled entry becomes subnormal) to max magnitude in
   [1/2, 1): products cannot overflow and their TwoProd errors stay normal; v only as
   far as needed (v_shift).  Scores are
   then in units of 2^(eq + ek): the max shift is taken in scaled units and the
   shifted score ldexp'd by eq + ek before exp (so |q| ~ 1e300 or subnormal q and k
   work: the real scores are huge or tiny, the weights one-hot or uniform); the output
   is ldexp'd by ev.  A batch with a non-finite entry in q, k or v is not scaled and
   runs the same formula, which propagates NaN/inf (IEEE; docs say so).
e) The max shift: m = the largest hi part of the unmasked scores (with its lo part), so
   the argmax weight's exp(0) = 1 exactly and the denominator is >= 1.
f) VJP (TorchLean scaledDotProductAttentionBackward): dA = g v^T, dS' = A (dA - <A, dA>)
   (softmaxBackwardFromWeights), dS = scale dS', dq = dS k, dk = dS^T q, dv = A^T g.
   A, dA, <A, dA> and dS are double-words; dq, dk, dv accumulate TwoProd/TwoSum
   double-words and round once.  dq and dk multiply dS by the unscaled k and q (a
   scaled copy turns the O(1) entries of a row holding +-max into subnormals).  Sums run in index order (no thread dependence:
   threads split batches).
f') Those unscaled products can overflow where the real gradient is finite (dS ~ |g v|
   times k ~ +-max; a tie of two keys then gives inf - inf = NaN for a real 0): the same
   sums also run on the scaled copies (units 2^(ev + ek), 2^(ev + eq)), and an element
   whose unscaled result is not finite while every input is takes the scaled one.
f'') dq is centred: sum_j dS_j = 0 (the rows of softmax's Jacobian sum to 0), so dq =
   sum_j dS_j (k_j - k_m), m the row's largest weight, k_j - k_m a TwoSum double-word
   (of the scaled copies in (f')'s sum; unscaled, an overflow there takes (f')): a key
   equal to k_m adds exactly 0.  Uncentred, dS's rounding (~2^-2p |dA|) times |k| is
   left where the real dq is 0 or small (equal keys: 1e5 keys and values gave 9e8 ulp
   float32; +-max keys inf - inf = NaN).
g) ``cdivision=True``: IEEE division, never raises.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, rint
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t
from ._scalar cimport f_fma, two_sum, f_frexp, f_ldexp


# double-word helpers (fast_two_sum, dw_*, acc_prod, acc_dw_prod, exp_dw): _dw.pxd
from ._dw cimport (fast_two_sum, dw_norm, dw_mul, dw_add, dw_div, acc_prod, acc_dw_prod,
                   acc_dw_dw, exp_dw)


from ._sdpa_rows cimport (max_exp, v_shift, scaled_copy, row_weights, needs_exact)


cdef void sdpa_batch(const floating *q, const floating *k, const floating *v,
                     const unsigned char *mask, bint has_mask, floating sch, floating scl,
                     Py_ssize_t L, Py_ssize_t S, Py_ssize_t E, Py_ssize_t Ev,
                     floating *out) noexcept nogil:
    cdef Py_ssize_t i, j, c
    cdef bint fin = True
    cdef int eq = max_exp(q, L * E, &fin), ek = max_exp(k, S * E, &fin)
    cdef int ev = max_exp(v, S * Ev, &fin)
    cdef floating dh, dl, nh, nl, oh, ol
    cdef bint exact
    cdef floating *buf = <floating *>malloc((L * E + S * E + S * Ev + 2 * S + 2 * Ev + 1)
                                            * sizeof(floating))
    cdef floating *qs = buf
    cdef floating *ks = qs + L * E
    cdef floating *vs = ks + S * E
    cdef floating *wh = vs + S * Ev
    cdef floating *wl = wh + S
    cdef floating *ns = wl + S
    cdef floating *nc = ns + Ev
    if buf == NULL:
        return
    if not fin:
        eq = 0
        ek = 0
        ev = 0
    ev = v_shift(sch, ev, S)
    exact = needs_exact(E, sch, eq + ek, fin)
    scaled_copy(q, qs, L * E, eq)
    scaled_copy(k, ks, S * E, ek)
    scaled_copy(v, vs, S * Ev, ev)
    for i in range(L):
        if row_weights(qs + i * E, ks, q + i * E, k, mask + i * S, has_mask, S, E, sch, scl,
                       eq + ek, exact, wh, wl, &dh, &dl) == 0:
            for c in range(Ev):
                out[i * Ev + c] = 0
            continue
        for c in range(Ev):
            ns[c] = 0
            nc[c] = 0
        for j in range(S):
            if wh[j] == 0:
                continue
            for c in range(Ev):
                acc_dw_prod(wh[j], wl[j], vs[j * Ev + c], &ns[c], &nc[c])
        for c in range(Ev):
            nh = fast_two_sum(ns[c], nc[c], &nl)
            dw_div(nh, nl, dh, dl, &oh, &ol)
            out[i * Ev + c] = f_ldexp(oh + ol, ev)
    free(buf)


def sdpa_fwd(const floating[::1] q,              # IN  (B, L, E) flat
             const floating[::1] k,              # IN  (B, S, E) flat
             const floating[::1] v,              # IN  (B, S, Ev) flat
             const unsigned char[::1] mask,      # IN  (B, L, S) flat, 1 = may attend
             bint has_mask, floating sch, floating scl,  # IN  scale = sch + scl
             Py_ssize_t B, Py_ssize_t L, Py_ssize_t S, Py_ssize_t E, Py_ssize_t Ev,
             floating[::1] out,                  # OUT (B, L, Ev) flat
             int threads=1):
    cdef Py_ssize_t b
    cdef const unsigned char *mp
    for b in prange(B, nogil=True, num_threads=threads, schedule="static"):
        sdpa_batch(&q[b * L * E], &k[b * S * E], &v[b * S * Ev],
                   &mask[b * L * S] if has_mask else &mask[0], has_mask, sch, scl,
                   L, S, E, Ev, &out[b * L * Ev])


cdef void sdpa_vjp_batch(const floating *q, const floating *k, const floating *v,
                         const unsigned char *mask, bint has_mask, floating sch,
                         floating scl, Py_ssize_t L, Py_ssize_t S, Py_ssize_t E,
                         Py_ssize_t Ev, const floating *g, floating *gq, floating *gk,
                         floating *gv) noexcept nogil:
    cdef Py_ssize_t i, j, c, t
    cdef bint fin = True
    cdef int eq = max_exp(q, L * E, &fin), ek = max_exp(k, S * E, &fin)
    cdef int ev = max_exp(v, S * Ev, &fin)
    cdef floating dh, dl, ah, al, s, cc, bh, bl, xh, xl, rh, rl
    cdef bint exact
    cdef Py_ssize_t nbuf = L * E + S * E + S * Ev + 6 * S + 4 * E + 4 * S * E + 2 * S * Ev + 1
    cdef floating *buf = <floating *>malloc(nbuf * sizeof(floating))
    cdef floating *qs = buf
    cdef floating *ks = qs + L * E
    cdef floating *vs = ks + S * E
    cdef floating *wh = vs + S * Ev
    cdef floating *wl = wh + S
    cdef floating *Ah = wl + S                  # A, double-word
    cdef floating *Al = Ah + S
    cdef floating *Sh = Al + S                  # dS = scale A (dA - <A, dA>)
    cdef floating *Sl = Sh + S
    cdef floating *qa = Sl + S                  # gq accumulators of one row
    cdef floating *qc = qa + E
    cdef floating *ka = qc + E                  # gk accumulators (S, E)
    cdef floating *kc = ka + S * E
    cdef floating *va = kc + S * E              # gv accumulators (S, Ev)
    cdef floating *vc = va + S * Ev
    cdef floating *qa2 = vc + S * Ev            # Design (f'): the same sums on scaled copies
    cdef floating *qc2 = qa2 + E
    cdef floating *ka2 = qc2 + E
    cdef floating *kc2 = ka2 + S * E
    cdef floating gt, dkh, dkl
    cdef Py_ssize_t jm
    if buf == NULL:
        return
    if not fin:
        eq = 0
        ek = 0
        ev = 0
    ev = v_shift(sch, ev, S)
    exact = needs_exact(E, sch, eq + ek, fin)
    scaled_copy(q, qs, L * E, eq)
    scaled_copy(k, ks, S * E, ek)
    scaled_copy(v, vs, S * Ev, ev)
    for j in range(S * E):
        ka[j] = 0
        kc[j] = 0
        ka2[j] = 0
        kc2[j] = 0
    for j in range(S * Ev):
        va[j] = 0
        vc[j] = 0
    for i in range(L):
        for t in range(E):
            gq[i * E + t] = 0
        if row_weights(qs + i * E, ks, q + i * E, k, mask + i * S, has_mask, S, E, sch, scl,
                       eq + ek, exact, wh, wl, &dh, &dl) == 0:
            continue
        # A_j and dA_j = <g_i, v_j> (in units of 2^ev); x = <A, dA>
        xh = 0
        xl = 0
        for j in range(S):
            dw_div(wh[j], wl[j], dh, dl, &ah, &al)
            Ah[j] = ah
            Al[j] = al
            s = 0
            cc = 0
            if ah != 0:
                for c in range(Ev):
                    acc_prod(g[i * Ev + c], vs[j * Ev + c], &s, &cc)
            s = fast_two_sum(s, cc, &cc)
            Sh[j] = s
            Sl[j] = cc
            dw_mul(ah, al, s, cc, &bh, &bl)
            dw_add(xh, xl, bh, bl, &xh, &xl)
        for j in range(S):
            # dS_j = scale A_j (dA_j - x)
            dw_add(Sh[j], Sl[j], -xh, -xl, &rh, &rl)
            dw_mul(Ah[j], Al[j], rh, rl, &rh, &rl)
            dw_mul(rh, rl, sch, scl, &rh, &rl)
            Sh[j] = rh
            Sl[j] = rl
        for t in range(E):
            qa[t] = 0
            qc[t] = 0
            qa2[t] = 0
            qc2[t] = 0
        jm = 0
        for j in range(S):
            if Ah[j] > Ah[jm]:
                jm = j
        for j in range(S):
            if Ah[j] == 0:
                continue
            for t in range(E):
                # Design (f''): centred, sum_j dS_j (k_j - k_m)
                dkh = two_sum(k[j * E + t], -k[jm * E + t], &dkl)
                acc_dw_dw(Sh[j], Sl[j], dkh, dkl, &qa[t], &qc[t])
                acc_dw_prod(Sh[j], Sl[j], q[i * E + t], &ka[j * E + t], &kc[j * E + t])
                if fin:
                    dkh = two_sum(ks[j * E + t], -ks[jm * E + t], &dkl)
                    acc_dw_dw(Sh[j], Sl[j], dkh, dkl, &qa2[t], &qc2[t])
                    acc_dw_prod(Sh[j], Sl[j], qs[i * E + t], &ka2[j * E + t],
                                &kc2[j * E + t])
            for c in range(Ev):
                acc_dw_prod(Ah[j], Al[j], g[i * Ev + c], &va[j * Ev + c], &vc[j * Ev + c])
        for t in range(E):
            gt = f_ldexp(qa[t] + qc[t], ev)
            if fin and not isfinite(gt):
                gt = f_ldexp(qa2[t] + qc2[t], ev + ek)
            gq[i * E + t] = gt
    for j in range(S * E):
        gt = f_ldexp(ka[j] + kc[j], ev)
        if fin and not isfinite(gt):
            gt = f_ldexp(ka2[j] + kc2[j], ev + eq)
        gk[j] = gt
    for j in range(S * Ev):
        gv[j] = va[j] + vc[j]
    free(buf)


def sdpa_vjp(const floating[::1] q,              # IN  (B, L, E) flat
             const floating[::1] k,              # IN  (B, S, E) flat
             const floating[::1] v,              # IN  (B, S, Ev) flat
             const unsigned char[::1] mask,      # IN  (B, L, S) flat
             bint has_mask, floating sch, floating scl,
             Py_ssize_t B, Py_ssize_t L, Py_ssize_t S, Py_ssize_t E, Py_ssize_t Ev,
             const floating[::1] g,              # IN  (B, L, Ev) upstream gradient
             floating[::1] gq,                   # OUT (B, L, E)
             floating[::1] gk,                   # OUT (B, S, E)
             floating[::1] gv,                   # OUT (B, S, Ev)
             int threads=1):
    cdef Py_ssize_t b
    for b in prange(B, nogil=True, num_threads=threads, schedule="static"):
        sdpa_vjp_batch(&q[b * L * E], &k[b * S * E], &v[b * S * Ev],
                       &mask[b * L * S] if has_mask else &mask[0], has_mask, sch, scl,
                       L, S, E, Ev, &g[b * L * Ev], &gq[b * L * E], &gk[b * S * E],
                       &gv[b * S * Ev])
