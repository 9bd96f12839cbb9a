"""refrt matmul (Ozaki on BLAS, and the Dot2 kernel) vs NumPy/OpenBLAS and torch, 1 thread.

Run as `python bench/bench_matmul.py` (the script sets the BLAS thread variables to 1
before importing NumPy when they are unset).  One interleaved run (bench/harness.py):
every repeat times each variant once, figures are medians.  Columns: GFLOP/s (2 n^3 per
product), ratios other time / refrt time (> 1: refrt faster), and the share of outputs
the Ozaki pass could not certify (recomputed by Dot2 / the superaccumulator, ozaki.py e).

`--crossover` times both refrt paths at small sizes, the measurement behind
ozaki.OZAKI_MIN_FLOPS.  `--accuracy` prints the max ulp of both paths against the
certified oracle on matmul's and linear's families (at the registry's example shapes and
at 24x64 @ 64x16), and on GenDot rows of condition 1e8..1e40 (float32 1e8..1e30).
"""
import os as _os
import sys as _sys

# the checkout's refrt, not one installed in site-packages (bench/README.md)
_sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
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


def _accuracy():
    import dataclasses

    import refrt
    from refrt.accuracy import measure
    from refrt.families import gen_dot
    from refrt.metrics import ulp_distance
    from refrt.registry import get

    saved = dict(OZ.OZAKI_MIN_FLOPS)
    paths = {"dot2": 1 << 62, "ozaki": 0}
    shapes = {"matmul": [None, ((24, 64), (64, 16))],
              "linear": [None, ((16, 64), (12, 64), (12,))]}
    print("max ulp vs the oracle, 2 seeds per family: dot2 / ozaki")
    for name, shps in shapes.items():
        for shp in shps:
            spec = get(name) if shp is None else dataclasses.replace(get(name),
                                                                      example_shapes=shp)
            for dt in (np.float32, np.float64):
                cells = []
                for fam in spec.families:
                    got = []
                    for thr in paths.values():
                        OZ.OZAKI_MIN_FLOPS = {k: thr for k in saved}
                        got.append(max(measure(spec, np.dtype(dt), fam, s).max_ulp
                                       for s in (0, 1)))
                    cells.append(f"{fam} {got[0]:g}/{got[1]:g}")
                shape = "x".join(str(v) for v in (spec.example_shapes or [()])[0])
                print(f"  {name:7} {shape:6} {np.dtype(dt).name:8} " + "  ".join(cells))
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(5)
        conds = np.geomspace(1e8, 1e40 if dt == np.float64 else 1e30, 16)
        pairs = [gen_dot(40, c, dt, rng) for c in conds]
        a = np.stack([x for x, _ in pairs])[None]
        bt = np.stack([y for _, y in pairs])[None]
        want = refrt.oracle.evaluate("matmul", a[0], bt[0].T, dtype=dt).astype(dt)
        cells = []
        for name, force in (("dot2", False), ("ozaki", True)):
            out = np.empty((1, 16, 16), dt)
            OZ.matmul_nt(a, bt, _NO_BIAS[dt], out, 1, force=force)
            cells.append(f"{ulp_distance(out[0], want, dt).max():g}")
        print(f"  gendot  16x40  {np.dtype(dt).name:8} cond 1e8..1e"
              f"{40 if dt == np.float64 else 30}: dot2 {cells[0]} / ozaki {cells[1]}")
    OZ.OZAKI_MIN_FLOPS = saved


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--crossover", action="store_true",
                    help="both refrt paths at 8..96 (the OZAKI_MIN_FLOPS choice)")
    ap.add_argument("--accuracy", action="store_true",
                    help="max ulp of both paths against the oracle (no timing)")
    args = ap.parse_args()
    if args.accuracy:
        return _accuracy()
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
