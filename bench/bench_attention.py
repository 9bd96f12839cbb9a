"""refrt scaled_dot_product_attention and group_norm vs torch (1 thread), ratios from one
interleaved run (bench/harness.py: round-robin medians).

Run as `python bench/bench_attention.py` from the repository root (``--quick`` for small
sizes).  The ratio is torch time / refrt time (1.0 = as fast as torch; 0.1 = ten times
slower).  What limits refrt: SDPA computes every score as a compensated (Dot2) dot product,
each weight by a double-word exp (~20 double-word operations) and the weighted sum as
TwoProd/TwoSum double-words, with no blocking or SIMD beyond what gcc auto-vectorises;
torch runs one float GEMM, a float softmax and another GEMM.  group_norm makes three
passes per group (the exact superaccumulator mean, the double-word variance, the
double-word affine output) plus the (R, D) broadcast copies of gamma and beta.
"""
import argparse
import os
import platform

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the tree
from harness import bench, fmt_t  # noqa: E402

from refrt import ops  # noqa: E402


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cases(quick):
    rng = np.random.default_rng(0)
    B, H, L, E = (2, 2, 32, 16) if quick else (8, 8, 128, 64)
    N, C, HW, G = (2, 16, 14, 8) if quick else (8, 64, 56, 32)
    for dt in (np.float32, np.float64):
        q, k, v = (rng.standard_normal((B, H, L, E)).astype(dt) for _ in range(3))
        yield (f"sdpa B={B} H={H} L={L} E={E} causal", dt, "scaled_dot_product_attention",
               (q, k, v), {"is_causal": True})
        x = rng.standard_normal((N, C, HW, HW)).astype(dt)
        g, b = rng.standard_normal(C).astype(dt), rng.standard_normal(C).astype(dt)
        yield (f"group_norm {N}x{C}x{HW}x{HW} G={G}", dt, "group_norm", (x, g, b),
               {"num_groups": G})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    F = torch.nn.functional
    print(f"CPU: {_cpu()}; torch {torch.__version__}, 1 thread; refrt threads=1")
    print(f"{'case':<34} {'dtype':>8} {'refrt':>10} {'torch':>10} {'torch/refrt':>12}")
    for label, dt, name, arrays, params in cases(args.quick):
        t = [torch.from_numpy(a) for a in arrays]
        if name == "group_norm":
            tfn = lambda: F.group_norm(t[0], params["num_groups"], t[1], t[2], 1e-6)  # noqa: E731
        else:
            tfn = lambda: F.scaled_dot_product_attention(*t, is_causal=True)  # noqa: E731
        rfn = lambda: ops.evaluate(name, *arrays, **params)  # noqa: E731
        r = bench({"refrt": (rfn, None), "torch": (tfn, None)}, repeats=args.repeats,
                  target=0.2)
        tr, tt = r["refrt"]["median"], r["torch"]["median"]
        print(f"{label:<34} {np.dtype(dt).name:>8} {fmt_t(tr):>10} {fmt_t(tt):>10} "
              f"{tt / tr:>12.3f}")


if __name__ == "__main__":
    main()
