# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Multi-head attention core on double-word projections: forward and VJP, float32/float64.

For batch n and head h (columns h hd .. (h + 1) hd of the projections, D = H hd):
O[n, i, h] = sum_j A_ij V[n, j, h],  A_i = hard-masked softmax_j(scale <Q[n, i, h], K[n, j, h]>)
(masked-out keys weight 0; a row with every key masked out gives zeros, TorchLean's
hardMaskedSoftmax).  The projections Q = x W_q + b_q, ... and the output projection run
outside (refrt/backends/float_mha.py: correctly rounded products on augmented operands).

Design:
a) One fused type; float32 kernels run float32 arithmetic (``fmaf``, float32
   double-words): nothing widens.
b) Why double-words in and out.  A relative error d of a projection entry is an
   absolute error ~d |s| of a score s and so a relative error ~d |s| of every weight
   (exp amplifies absolute into relative errors): projections rounded to the working
   precision put ~|s| ulp into the result (s ~ 300 on N(0, 9) inputs with E = 4).  So
   Q, K, V arrive as double-words hi + lo (~2p bits, correctly rounded hi and the
   correctly rounded remainder lo), the scores are compensated double-word dot products
   (``acc_dw_dw``: TwoProd of the hi parts, cross terms in the correction), the weights
   come from SDPA's double-word exp and division (_dw.pxd: ``exp_dw``, ``dw_div``;
   attention.pyx Design (b), (c), (e)), and O leaves as a double-word too: the output
   projection rounds once.  The backward pass likewise takes dO as a double-word and
   returns dQ, dK, dV as double-words (each one TwoSum accumulation, never rounded
   in between).
c) The max shift: m = the largest (hi, lo) unmasked score, so the argmax weight is
   exp(0) = 1 exactly and the denominator is >= 1 (attention.pyx Design (e)).
d) Range.  Unlike scaled_dot_product_attention, no power-of-two scaling: the
   projections and their products must stay inside the format (an intermediate that
   overflows gives inf/NaN by IEEE rules, as in PyTorch; a TwoProd error below the
   subnormal range is lost, an absolute error of ~2^emin-p in a score).
e) VJP (TorchLean scaledDotProductAttentionBackward per head): dA_j = <dO_i, V_j>,
   x = <A, dA>, dS_j = scale A_j (dA_j - x), dQ_i = sum_j dS_j K_j, dK_j += dS_j Q_i,
   dV_j += A_j dO_i; every quantity a double-word; sums run in index order (threads
   split batches: no thread dependence).
f) ``cdivision=True``: IEEE division, never raises.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from ._scalar cimport two_sum
from ._dw cimport fast_two_sum, dw_mul, dw_add, dw_div, acc_dw_dw, exp_dw


# ---------------------------------------------------------------- one query row

cdef Py_ssize_t row_weights_dw(const floating *qh, const floating *ql, const floating *kh,
                               const floating *kl, const unsigned char *mrow, bint has_mask,
                               Py_ssize_t S, Py_ssize_t hd, Py_ssize_t D, floating sch,
                               floating scl, floating *wh, floating *wl, floating *dh,
                               floating *dl) noexcept nogil:
    """Unnormalised weights exp(u_j - m) (double-words; 0 where masked) and their sum
    for one query row of one head: qh/ql point at the head's hd entries, kh/kl at key
    0's (row stride D).  Returns the number of unmasked keys."""
    cdef Py_ssize_t j, t, jm = -1, nfree = 0
    cdef floating s, c, uh, ul, mh = 0, ml = 0, th, tl, eh, el, sh = 0, sl = 0
    for j in range(S):
        if has_mask and not mrow[j]:
            continue
        s = 0
        c = 0
        for t in range(hd):
            acc_dw_dw(qh[t], ql[t], kh[j * D + t], kl[j * D + t], &s, &c)
        s = fast_two_sum(s, c, &c)
        dw_mul(s, c, sch, scl, &uh, &ul)
        wh[j] = uh
        wl[j] = ul
        nfree += 1
        if jm < 0 or uh > mh or (uh == mh and ul > ml) or uh != uh:
            jm = j
            mh = uh
            ml = ul
    for j in range(S):
        if has_mask and not mrow[j]:
            wh[j] = 0
            wl[j] = 0
            continue
        # u_j - m as a double-word: TwoSum of the hi parts, the lo parts' difference
        th = two_sum(wh[j], -mh, &tl)
        tl = tl + (wl[j] - ml)
        th = fast_two_sum(th, tl, &tl)
        if j == jm and mh - mh == 0:
            # the argmax weight is exp(0) = 1 exactly (Design e); a NaN or +inf max
            # is not skipped: its inf - inf = NaN propagates (IEEE)
            th = 0
            tl = 0
        exp_dw(th, tl, &eh, &el)
        wh[j] = eh
        wl[j] = el
        dw_add(sh, sl, eh, el, &sh, &sl)
    dh[0] = sh
    dl[0] = sl
    return nfree


# ---------------------------------------------------------------- forward

cdef void fwd_batch(const floating *qh, const floating *ql, const floating *kh,
                    const floating *kl, const floating *vh, const floating *vl,
                    const unsigned char *mask, bint has_mask, floating sch, floating scl,
                    Py_ssize_t H, Py_ssize_t L, Py_ssize_t S, Py_ssize_t hd,
                    floating *oh, floating *ol) noexcept nogil:
    cdef Py_ssize_t h, i, j, c, D = H * hd
    cdef floating dh, dl, nh, nl, s, cc
    cdef floating *buf = <floating *>malloc((2 * S + 2 * hd + 1) * sizeof(floating))
    cdef floating *wh = buf
    cdef floating *wl = wh + S
    cdef floating *ns = wl + S
    cdef floating *nc = ns + hd
    if buf == NULL:
        return
    for h in range(H):
        for i in range(L):
            if row_weights_dw(qh + i * D + h * hd, ql + i * D + h * hd, kh + h * hd,
                              kl + h * hd, mask + (h * L + i) * S, has_mask, S, hd, D,
                              sch, scl, wh, wl, &dh, &dl) == 0:
                for c in range(hd):
                    oh[i * D + h * hd + c] = 0
                    ol[i * D + h * hd + c] = 0
                continue
            for c in range(hd):
                ns[c] = 0
                nc[c] = 0
            for j in range(S):
                if wh[j] == 0:
                    continue
                for c in range(hd):
                    acc_dw_dw(wh[j], wl[j], vh[j * D + h * hd + c], vl[j * D + h * hd + c],
                              &ns[c], &nc[c])
            for c in range(hd):
                nh = fast_two_sum(ns[c], nc[c], &nl)
                dw_div(nh, nl, dh, dl, &s, &cc)
                oh[i * D + h * hd + c] = s
                ol[i * D + h * hd + c] = cc
    free(buf)


def mha_core_fwd(const floating[::1] qh, const floating[::1] ql,   # IN  (N, L, D) flat
                 const floating[::1] kh, const floating[::1] kl,   # IN  (N, S, D) flat
                 const floating[::1] vh, const floating[::1] vl,   # IN  (N, S, D) flat
                 const unsigned char[::1] mask,      # IN  (N, H, L, S) flat, 1 = may attend
                 bint has_mask, floating sch, floating scl,        # IN  scale = sch + scl
                 Py_ssize_t N, Py_ssize_t H, Py_ssize_t L, Py_ssize_t S, Py_ssize_t hd,
                 floating[::1] oh, floating[::1] ol,               # OUT (N, L, D) flat
                 int threads=1):
    cdef Py_ssize_t n, D = H * hd
    for n in prange(N, nogil=True, num_threads=threads, schedule="static"):
        fwd_batch(&qh[n * L * D], &ql[n * L * D], &kh[n * S * D], &kl[n * S * D],
                  &vh[n * S * D], &vl[n * S * D],
                  &mask[n * H * L * S] if has_mask else &mask[0], has_mask, sch, scl,
                  H, L, S, hd, &oh[n * L * D], &ol[n * L * D])


# ---------------------------------------------------------------- VJP

cdef void vjp_batch(const floating *qh, const floating *ql, const floating *kh,
                    const floating *kl, const floating *vh, const floating *vl,
                    const unsigned char *mask, bint has_mask, floating sch, floating scl,
                    Py_ssize_t H, Py_ssize_t L, Py_ssize_t S, Py_ssize_t hd,
                    const floating *gh, const floating *gl,
                    floating *dqh, floating *dql, floating *dkh, floating *dkl,
                    floating *dvh, floating *dvl) noexcept nogil:
    # dkh/dkl and dvh/dvl hold the (sum, correction) accumulators until the end
    cdef Py_ssize_t h, i, j, t, D = H * hd
    cdef floating dh, dl, ah, al, s, cc, bh, bl, xh, xl, rh, rl
    cdef floating *buf = <floating *>malloc((6 * S + 2 * hd + 1) * sizeof(floating))
    cdef floating *wh = buf
    cdef floating *wl = wh + S
    cdef floating *Ah = wl + S
    cdef floating *Al = Ah + S
    cdef floating *Sh = Al + S
    cdef floating *Sl = Sh + S
    cdef floating *qa = Sl + S
    cdef floating *qc = qa + hd
    if buf == NULL:
        return
    for j in range(S * D):
        dkh[j] = 0
        dkl[j] = 0
        dvh[j] = 0
        dvl[j] = 0
    for h in range(H):
        for i in range(L):
            for t in range(hd):
                dqh[i * D + h * hd + t] = 0
                dql[i * D + h * hd + t] = 0
            if row_weights_dw(qh + i * D + h * hd, ql + i * D + h * hd, kh + h * hd,
                              kl + h * hd, mask + (h * L + i) * S, has_mask, S, hd, D,
                              sch, scl, wh, wl, &dh, &dl) == 0:
                continue
            xh = 0
            xl = 0
            for j in range(S):
                dw_div(wh[j], wl[j], dh, dl, &ah, &al)
                Ah[j] = ah
                Al[j] = al
                s = 0
                cc = 0
                if ah != 0:
                    for t in range(hd):
                        acc_dw_dw(gh[i * D + h * hd + t], gl[i * D + h * hd + t],
                                  vh[j * D + h * hd + t], vl[j * D + h * hd + t], &s, &cc)
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
            for t in range(hd):
                qa[t] = 0
                qc[t] = 0
            for j in range(S):
                if Ah[j] == 0:
                    continue
                for t in range(hd):
                    acc_dw_dw(Sh[j], Sl[j], kh[j * D + h * hd + t], kl[j * D + h * hd + t],
                              &qa[t], &qc[t])
                    acc_dw_dw(Sh[j], Sl[j], qh[i * D + h * hd + t], ql[i * D + h * hd + t],
                              &dkh[j * D + h * hd + t], &dkl[j * D + h * hd + t])
                    acc_dw_dw(Ah[j], Al[j], gh[i * D + h * hd + t], gl[i * D + h * hd + t],
                              &dvh[j * D + h * hd + t], &dvl[j * D + h * hd + t])
            for t in range(hd):
                s = fast_two_sum(qa[t], qc[t], &cc)
                dqh[i * D + h * hd + t] = s
                dql[i * D + h * hd + t] = cc
    for j in range(S * D):
        s = two_sum(dkh[j], dkl[j], &cc)        # (sum, correction) -> normalised double-word
        dkh[j] = s
        dkl[j] = cc
        s = two_sum(dvh[j], dvl[j], &cc)
        dvh[j] = s
        dvl[j] = cc
    free(buf)


def mha_core_vjp(const floating[::1] qh, const floating[::1] ql,   # IN  (N, L, D) flat
                 const floating[::1] kh, const floating[::1] kl,   # IN  (N, S, D) flat
                 const floating[::1] vh, const floating[::1] vl,   # IN  (N, S, D) flat
                 const unsigned char[::1] mask,                    # IN  (N, H, L, S) flat
                 bint has_mask, floating sch, floating scl,
                 Py_ssize_t N, Py_ssize_t H, Py_ssize_t L, Py_ssize_t S, Py_ssize_t hd,
                 const floating[::1] gh, const floating[::1] gl,   # IN  dO (N, L, D) flat
                 floating[::1] dqh, floating[::1] dql,             # OUT (N, L, D) flat
                 floating[::1] dkh, floating[::1] dkl,             # OUT (N, S, D) flat
                 floating[::1] dvh, floating[::1] dvl,             # OUT (N, S, D) flat
                 int threads=1):
    cdef Py_ssize_t n, D = H * hd
    for n in prange(N, nogil=True, num_threads=threads, schedule="static"):
        vjp_batch(&qh[n * L * D], &ql[n * L * D], &kh[n * S * D], &kl[n * S * D],
                  &vh[n * S * D], &vl[n * S * D],
                  &mask[n * H * L * S] if has_mask else &mask[0], has_mask, sch, scl,
                  H, L, S, hd, &gh[n * L * D], &gl[n * L * D],
                  &dqh[n * L * D], &dql[n * L * D], &dkh[n * S * D], &dkl[n * S * D],
                  &dvh[n * S * D], &dvl[n * S * D])
