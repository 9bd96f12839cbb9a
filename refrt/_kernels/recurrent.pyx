# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Recurrent-cell kernels (RNN, LSTM, GRU): the gate nonlinearities and their VJPs,
float32 and float64.

Design:
a) The gate pre-activations arrive from the binding as one compensated matrix product
   (linalg.matmul_nt, Dot2 with its exact rescue): [x, h, 1, 1] against
   [W_ih | W_hh | b_ih | b_hh], so each pre-activation x W_ih^T + b_ih + h W_hh^T + b_hh
   is one dot product rounded once (PyTorch's CPU kernel rounds the two GEMMs and the
   two bias adds separately).  Gate layouts are PyTorch's: LSTM (i, f, g, o), GRU
   (r, z, n), each a block of H columns.
b) sigmoid(u) uses the branch-stable form of _scalar.pxd; 1 - sigmoid(u) is computed
   as sigmoid(-u) (the same real number), never as a subtraction, so (1 - z) in the GRU
   and sigmoid' = sigmoid(u) sigmoid(-u) keep full relative accuracy when a gate
   saturates (1 - 0.9999999 would keep one significant bit in float32).
c) tanh' = 1 - tanh(u)^2 is computed as sech^2(u) = 4 E^2 / (1 + E^2)^2 with
   E = exp(-|u|) (multiply numerator and denominator of 4 / (e^u + e^-u)^2 by e^-2|u|):
   no cancellation as |tanh| -> 1, no overflow (E <= 1), and multiplied into its
   neighbours as (X E)(Y E) so a huge neighbour does not meet a subnormal E^2
   (_sech2_times; sigmoid' likewise, _dsig_times).  The VJPs recompute the gates from the pre-activations (not from the rounded
   outputs), so every derivative factor is accurate to a few ulp.
d) c' = f c + i g is formed as a length-2 compensated dot (TwoProduct of both terms by
   fma, TwoSum of the products, the two product errors added last): accurate as if
   computed in twice the precision, so the rounding is not amplified when f c and i g
   nearly cancel (the gates' own errors still are: that is the problem's condition).
e) float32 kernels compute in float32 (expf, tanhf).
"""
from cython cimport floating
from libc.math cimport isfinite
from ._scalar cimport f_exp, f_tanh, f_abs, f_fma, sigmoid, two_sum


cdef inline floating _sech2(floating u) noexcept nogil:
    # Design c
    cdef floating e = f_exp(<floating>-2 * f_abs(u))
    cdef floating d = 1 + e
    return (4 * e) / (d * d)


# Products of a derivative factor with two others, scaled so no factor is subnormal.
# sigmoid'(z) = s(a) s(-a) = E^2 s^2 with a = |z|, E = e^(-a/2), s = 1 / (1 + E^2)
# = sigmoid(a); sech^2(u) = 4 E^2 q^2 with E = e^(-|u|), q = 1 / (1 + E^2).  The
# product X Y f is formed as ((X E)(Y E)) (s s): E^2 alone is subnormal once a > ~87
# (float32) / ~708 (float64), where it keeps only a few bits, and a huge c times that
# subnormal then carried its rounding error (15% at z = 103, c = 3.4e38 in float32);
# X E and Y E stay in the normal range while the true product does.
cdef inline floating _dsig_times(floating z, floating x, floating y) noexcept nogil:
    cdef floating e = f_exp(<floating>-0.5 * f_abs(z))
    cdef floating s = 1 / (1 + e * e)
    return ((x * e) * (y * e)) * (s * s)


cdef inline floating _sech2_times(floating u, floating x, floating y) noexcept nogil:
    cdef floating e = f_exp(-f_abs(u))
    cdef floating q = 1 / (1 + e * e)
    return (((4 * x) * e) * (y * e)) * (q * q)


cdef inline floating _dot2(floating a, floating b, floating c, floating d) noexcept nogil:
    # a b + c d, Design d (Ogita-Rump-Oishi Dot2 for two terms)
    cdef floating p = a * b, q = c * d, ep, eq, es, s
    ep = f_fma(a, b, -p)
    eq = f_fma(c, d, -q)
    s = two_sum(p, q, &es)
    if not isfinite(s):
        return s                  # inf/NaN (or an overflowed sum): IEEE's plain result
    return s + (es + (ep + eq))


def rnn_fwd(bint relu,
            const floating[:, ::1] z,      # IN  (N, H) pre-activations
            floating[:, ::1] out):         # OUT (N, H)
    cdef Py_ssize_t n, j
    cdef floating u
    with nogil:
        for n in range(z.shape[0]):
            for j in range(z.shape[1]):
                u = z[n, j]
                if relu:
                    out[n, j] = u if (u > 0 or u != u) else <floating>0
                else:
                    out[n, j] = f_tanh(u)


def rnn_vjp(bint relu,
            const floating[:, ::1] z,      # IN  (N, H)
            const floating[:, ::1] g,      # IN  (N, H) upstream
            floating[:, ::1] dz):          # OUT (N, H) gradient of the pre-activation
    cdef Py_ssize_t n, j
    cdef floating u
    with nogil:
        for n in range(z.shape[0]):
            for j in range(z.shape[1]):
                u = z[n, j]
                if relu:
                    dz[n, j] = g[n, j] if u > 0 else <floating>0
                else:
                    dz[n, j] = _sech2_times(u, g[n, j], 1)


def lstm_fwd(const floating[:, ::1] z,     # IN  (N, 4H) pre-activations (i, f, g, o)
             const floating[:, ::1] c,     # IN  (N, H) cell state
             floating[:, ::1] h_out,       # OUT (N, H)
             floating[:, ::1] c_out):      # OUT (N, H)
    cdef Py_ssize_t n, j, H = c.shape[1]
    cdef floating ig, fg, gg, og, cn
    with nogil:
        for n in range(c.shape[0]):
            for j in range(H):
                ig = sigmoid(z[n, j])
                fg = sigmoid(z[n, H + j])
                gg = f_tanh(z[n, 2 * H + j])
                og = sigmoid(z[n, 3 * H + j])
                cn = _dot2(fg, c[n, j], ig, gg)
                c_out[n, j] = cn
                h_out[n, j] = og * f_tanh(cn)


def lstm_vjp(const floating[:, ::1] z,     # IN  (N, 4H)
             const floating[:, ::1] c,     # IN  (N, H)
             const floating[:, ::1] c_new, # IN  (N, H) the forward's c'
             const floating[:, ::1] gh,    # IN  (N, H) upstream of h'
             const floating[:, ::1] gc,    # IN  (N, H) upstream of c'
             floating[:, ::1] dz,          # OUT (N, 4H)
             floating[:, ::1] dc):         # OUT (N, H)
    # h' = o tanh(c'), c' = f c + i g:
    #   dc' = gc + gh o sech^2(c');  do = gh tanh(c')
    #   di = dc' g, df = dc' c, dg = dc' i, dc = dc' f
    #   dz_i = di s(z_i) s(-z_i), dz_f likewise, dz_g = dg sech^2(z_g), dz_o = do s(z_o) s(-z_o)
    cdef Py_ssize_t n, j, H = c.shape[1]
    cdef floating zi, zf, zg, zo, ig, fg, gg, og, dcn
    with nogil:
        for n in range(c.shape[0]):
            for j in range(H):
                zi = z[n, j]
                zf = z[n, H + j]
                zg = z[n, 2 * H + j]
                zo = z[n, 3 * H + j]
                ig = sigmoid(zi)
                fg = sigmoid(zf)
                gg = f_tanh(zg)
                og = sigmoid(zo)
                dcn = _sech2_times(c_new[n, j], gh[n, j], og) + gc[n, j]
                dz[n, j] = _dsig_times(zi, dcn, gg)
                dz[n, H + j] = _dsig_times(zf, dcn, c[n, j])
                dz[n, 2 * H + j] = _sech2_times(zg, dcn, ig)
                dz[n, 3 * H + j] = _dsig_times(zo, gh[n, j], f_tanh(c_new[n, j]))
                dc[n, j] = dcn * fg


def gru_fwd(const floating[:, ::1] z,      # IN  (N, 4H): r, z pre-activations, n_x, n_h
            const floating[:, ::1] h,      # IN  (N, H)
            floating[:, ::1] out):         # OUT (N, H)
    # PyTorch: n = tanh(n_x + r n_h), n_x = W_in x + b_in, n_h = W_hn h + b_hn;
    # h' = (1 - z) n + z h with 1 - z = sigmoid(-u_z) (Design b), as a Dot2 pair
    cdef Py_ssize_t b, j, H = h.shape[1]
    cdef floating r, uz, nn
    with nogil:
        for b in range(h.shape[0]):
            for j in range(H):
                r = sigmoid(z[b, j])
                uz = z[b, H + j]
                nn = f_tanh(f_fma(r, z[b, 3 * H + j], z[b, 2 * H + j]))
                out[b, j] = _dot2(sigmoid(-uz), nn, sigmoid(uz), h[b, j])


def gru_vjp(const floating[:, ::1] z,      # IN  (N, 4H)
            const floating[:, ::1] h,      # IN  (N, H)
            const floating[:, ::1] g,      # IN  (N, H) upstream of h'
            floating[:, ::1] dz,           # OUT (N, 4H): d r_pre, d z_pre, d n_x, d n_h
            floating[:, ::1] dh):          # OUT (N, H) the direct term g z
    #   dn = g (1 - z); du_z = g (h - n) s(u_z) s(-u_z); dh_direct = g z
    #   d n_pre = dn sech^2(n_pre); d n_x = d n_pre; d n_h = d n_pre r
    #   du_r = d n_pre n_h s(u_r) s(-u_r)
    cdef Py_ssize_t b, j, H = h.shape[1]
    cdef floating r, ur, uz, sz, szc, npre, nn, dnp, gj
    with nogil:
        for b in range(h.shape[0]):
            for j in range(H):
                ur = z[b, j]
                uz = z[b, H + j]
                r = sigmoid(ur)
                sz = sigmoid(uz)
                szc = sigmoid(-uz)
                npre = f_fma(r, z[b, 3 * H + j], z[b, 2 * H + j])
                nn = f_tanh(npre)
                gj = g[b, j]
                dnp = _sech2_times(npre, gj, szc)
                dz[b, H + j] = _dsig_times(uz, gj, h[b, j] - nn)
                dz[b, 2 * H + j] = dnp
                dz[b, 3 * H + j] = dnp * r
                dz[b, j] = _dsig_times(ur, dnp, z[b, 3 * H + j])
                dh[b, j] = gj * sz
