# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Selection kernels: ``where(cond, x, y)`` and its VJP, float32 and float64.

Design:
  (a) ``cond`` arrives as a C-contiguous uint8 view of a bool array (0 is false, any other
      byte is true), ``x``, ``y``, ``g`` and the outputs as flat contiguous buffers of one
      float type (the fused type ``real``).
  (b) The forward copies the selected element bit for bit: NaN payloads, signed zeros and
      infinities of the selected branch come through unchanged, and the unselected
      branch is never read into the result (a NaN there cannot leak).
  (c) The VJP routes the cotangent to the selected branch and gives the unselected one an
      exact +0.  An upstream rule then multiplies that 0 by its own local derivative, as
      IEEE float does: where(y != 0, x / y, 0) at y = 0 gets 0 / 0 = NaN from the
      division's VJP (PyTorch's documented NaN-gradient footgun), which is why the
      guard belongs on the denominator.
"""

ctypedef fused real:
    float
    double


cdef inline real _select(unsigned char c, real a, real b) noexcept nogil:
    return a if c else b


def where_fwd(const unsigned char[::1] cond, const real[::1] x, const real[::1] y,
              real[::1] out):
    cdef Py_ssize_t i, n = out.shape[0]
    with nogil:
        for i in range(n):
            out[i] = _select(cond[i], x[i], y[i])


def where_vjp(const unsigned char[::1] cond, const real[::1] g, real[::1] gx,
              real[::1] gy):
    cdef Py_ssize_t i, n = g.shape[0]
    cdef real zero = 0
    with nogil:
        for i in range(n):
            gx[i] = _select(cond[i], g[i], zero)
            gy[i] = _select(cond[i], zero, g[i])
