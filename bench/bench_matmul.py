"""refrt matmul vs NumPy/OpenBLAS and torch, one thread each, ratios from one run.

Run as `OPENBLAS_NUM_THREADS=1 python bench/bench_matmul.py` (the script sets the BLAS
thread variables itself before importing NumPy when they are unset).
"""
import os as _os
import sys as _sys

# the checkout's refrt, not one installed in site-packages (bench/README.md)
_sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
import argparse
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

from refrt.backends import float_reductions as FR  # noqa: E402


def _best(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    print(f"{'size':>5} {'dtype':>8} {'refrt ms':>9} {'numpy ms':>9} {'torch ms':>9} "
          f"{'x numpy':>8} {'x torch':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        for dt in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            a = rng.standard_normal((n, n)).astype(dt)
            b = rng.standard_normal((n, n)).astype(dt)
            t_r = _best(lambda: FR.matmul((a, b), {}, 1), args.repeats)
            t_n = _best(lambda: a @ b, args.repeats)
            t_t = float("nan")
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                t_t = _best(lambda: ta @ tb, args.repeats)
            print(f"{n:>5} {np.dtype(dt).name:>8} {t_r * 1e3:9.2f} {t_n * 1e3:9.2f} "
                  f"{t_t * 1e3:9.2f} {t_r / t_n:8.1f} {t_r / t_t:8.1f}")


if __name__ == "__main__":
    main()
