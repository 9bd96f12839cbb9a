"""Long rows (reductions.pyx Design e): blocked sums, parallel with threads=2, give the
same bits for every thread count, and the sum stays the correctly rounded exact sum (also
where the blocked fast path cannot certify and the row falls back)."""
import math
from fractions import Fraction

import numpy as np
import pytest

from refrt._kernels import reductions as R

N = 70_000          # above PAR_MIN = 65536: the blocked path


def _rows(dtype):
    rng = np.random.default_rng(7)
    big = np.finfo(dtype).max
    cancel = rng.standard_normal(N)
    cancel[:20000:2] = big / 4
    cancel[1:20000:2] = -big / 4     # +-max/4 pairs cancel exactly; the rest is O(1)
    return {"normal": rng.standard_normal(N) * 3,
            "large_mean": 1e5 + rng.standard_normal(N) * 1e-2,
            "cancel": cancel,
            "subnormal": rng.standard_normal(N) * float(np.finfo(dtype).smallest_subnormal) * 8}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_thread_count_independent_and_exact(dtype):
    for name, row in _rows(dtype).items():
        x = np.ascontiguousarray(row, dtype=dtype)[None, :]
        # fsum: the exact sum rounded once to float64 (exact enough: the checks below
        # allow half an ulp of the result's dtype plus one float64 rounding)
        exact = Fraction(math.fsum(x[0].tolist()))
        for fn, want in ((R.sum_rows, exact), (R.mean_rows, exact / N), (R.var_rows, None)):
            o1, o2 = np.empty(1, dtype), np.empty(1, dtype)
            fn(x, o1, 1)
            fn(x, o2, 2)
            assert o1.tobytes() == o2.tobytes(), (fn.__name__, name, o1, o2)
            if fn is R.sum_rows:      # correctly rounded: within half an ulp of the exact sum
                half = Fraction(float(np.spacing(abs(o1[0])))) / 2
                slack = Fraction(float(np.spacing(abs(float(want))))) if dtype == np.float32 else 0
                assert abs(Fraction(float(o1[0])) - want) <= half + slack, (name, o1[0])
            if fn is R.mean_rows and np.isfinite(o1[0]):
                err = abs(Fraction(float(o1[0])) - want)
                assert err <= Fraction(float(np.spacing(dtype(abs(float(want)))))), (name, o1[0])
