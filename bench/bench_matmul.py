"""refrt matmul (Ozaki on BLAS, and the Dot2 kernel) vs NumPy/OpenBLAS and torch, 1 thread.

Run as `python bench/bench_matmul.py` (the script sets the BLAS thread variables to 1
before importing NumPy when they are unset).  One interleaved run (bench/harness.py):
every repeat times each variant once, figures are medians.  Columns: GFLOP/s (2 n^3 per
product), ratios other time / refrt time (> 1: refrt faster), and the share of outputs
the Ozaki pass could not certify (recomputed by Dot2 / the superaccumulator, ozaki.py e).

`--crossover` times both refrt paths at small sizes, the measurement behind
ozaki.OZAKI_MIN_FLOPS.
"""
import argparse
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]   # harness, and this checkout's refrt

import numpy as np  # noqa: E402

from harness import bench  # noqa: E402
from refrt._kernels import ozaki as OZ  # noqa: E402

_NO_BIAS = {np.float32: np.empty(0, np.float32), np.float64: np.empty(0, np.float64)}


def _refrt(a3, bt3, dt, force):
    out = np.empty((1, a3.shape[1], bt3.shape[1]), dt)
    return lambda: OZ.matmul_nt(a3, bt3, _NO_BIAS[dt], out, 1, force=force)


def _variants(n, dt, torch):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dt)
    b = rng.standard_normal((n, n)).astype(dt)
    a3, bt3 = a[None], np.ascontiguousarray(b.T)[None]
    v = {"ozaki": (_refrt(a3, bt3, dt, True), None),
         "dot2": (_refrt(a3, bt3, dt, False), None),
         "numpy": (lambda: a @ b, None)}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        v["torch"] = (lambda: ta @ tb, None)
    out = np.empty((1, n, n), dt)
    bad = OZ.matmul_nt(a3, bt3, _NO_BIAS[dt], out, 1, force=True)
    return v, bad


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--crossover", action="store_true",
                    help="both refrt paths at 8..96 (the OZAKI_MIN_FLOPS choice)")
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    if args.crossover:
        torch = None
        args.sizes = "8,16,24,32,48,64,96"
    print(f"{'size':>5} {'dtype':>8} {'ozaki':>8} {'dot2':>8} {'numpy':>8} {'torch':>8}  "
          f"{'oz/np':>6} {'dot2/np':>7} {'oz/dot2':>7} {'uncert.':>8}   (GFLOP/s; ratios of "
          f"speed)")
    for n in (int(s) for s in args.sizes.split(",")):
        for dt in (np.float32, np.float64):
            v, bad = _variants(n, dt, torch)
            r = bench(v, repeats=args.repeats, target=0.02)
            gf = {k: 2 * n ** 3 / r[k]["median"] / 1e9 for k in r}
            t = gf.get("torch", float("nan"))
            print(f"{n:>5} {np.dtype(dt).name:>8} {gf['ozaki']:8.1f} {gf['dot2']:8.1f} "
                  f"{gf['numpy']:8.1f} {t:8.1f}  {gf['ozaki'] / gf['numpy']:6.2f} "
                  f"{gf['dot2'] / gf['numpy']:7.2f} {gf['ozaki'] / gf['dot2']:7.2f} "
                  f"{bad[0] / n ** 2:8.2%}")


if __name__ == "__main__":
    main()
