# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Indexing kernels: exact segment sums (scatter-add) and comparison masks, float32 and
float64.

Design:
a) Data movement stays in the bindings (NumPy fancy indexing copies bits: gather,
   embedding, select, slice, permute, pad); what adds is here.
b) A scatter-add (scatter_add itself, and the VJPs of embedding and gather) is turned by
   the binding into segments: the contributions to one output slot are contiguous in
   ``values`` (a stable sort by target, a pure permutation), segment s being
   values[starts[s]:starts[s + 1]].  Each segment is summed by the superaccumulator of
   superacc.h (Neal's small xsum): the exact sum of every term, rounded once.  So a slot
   that receives x + 1 - x (or +-max terms that cancel) gets the correctly rounded
   value, independent of the order or number of repeats, and no partial sum overflows.
   IEEE rules for non-finite terms (any NaN gives NaN, +inf and -inf give NaN); an exact
   zero is -0 only when every term is -0 (IEEE addition), and an empty segment is +0.
   A sequential ``out[t] += src`` loop (PyTorch's CPU kernel) rounds after every add and
   depends on the order.
c) Comparisons write 1 or 0 of the input type; C's relational operators are IEEE
   (false with a NaN operand, != true), and -0 == +0.
"""
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "superacc.h" nogil:
    void refrt_sa_sum_f64(const double *x, int64_t n, int k, double *hi, double *lo)
    void refrt_sa_sum_f32(const float *x, int64_t n, int k, float *hi, float *lo)


cdef inline floating _exact_sum(const floating *x, int64_t n) noexcept nogil:
    cdef floating hi, lo
    if floating is float:
        refrt_sa_sum_f32(x, n, 0, &hi, &lo)
    else:
        refrt_sa_sum_f64(x, n, 0, &hi, &lo)
    return hi


def segment_sums(const floating[::1] values,    # IN  contributions, grouped by slot
                 const int64_t[::1] starts,      # IN  (nslots + 1,) segment offsets
                 floating[::1] out):             # OUT (nslots,)
    cdef Py_ssize_t s, n = out.shape[0]
    cdef floating zero = 0
    with nogil:
        for s in range(n):
            if starts[s + 1] == starts[s]:
                out[s] = zero
            else:
                out[s] = _exact_sum(&values[starts[s]], starts[s + 1] - starts[s])


# comparison codes (the binding's table)
CODES = {"eq": 0, "ne": 1, "lt": 2, "le": 3, "gt": 4, "ge": 5}


cdef inline bint _cmp(int code, floating a, floating b) noexcept nogil:
    if code == 0:
        return a == b
    if code == 1:
        return a != b
    if code == 2:
        return a < b
    if code == 3:
        return a <= b
    if code == 4:
        return a > b
    return a >= b


def compare(int code,
            const floating[::1] x,     # IN
            const floating[::1] y,     # IN  same length
            floating[::1] out):        # OUT 1 / 0
    cdef Py_ssize_t i, n = out.shape[0]
    cdef floating one = 1, zero = 0
    with nogil:
        for i in range(n):
            out[i] = one if _cmp(code, x[i], y[i]) else zero
