"""refrt conv2d / max_pool2d vs torch (1 thread each), ratios from one interleaved run.

Run as `python bench/bench_conv.py` (add `--quick` for a smaller batch).  Each case times
refrt's float kernel (refrt.ops, threads=1) and torch.nn.functional with
torch.set_num_threads(1) round-robin (bench/harness.py) and prints the medians and the
throughput ratio torch_time / refrt_time (1.0 = as fast as torch, 0.5 = half as fast).
The ulp columns are the max distance of each result to torch's float64 result rounded to
the dtype, on the same inputs, for information (the certified figures are in
docs/accuracy.md).  `--old` adds conv2d's previous path (im2col + _mm_nt: Dot2 /
ozaki.matmul_nt) as a third variant of the same interleaved run; `--clock thread` times
CPU time of the calling thread (less distorted on a shared machine; 1-thread variants
only); `--cases 32x32,stem` picks cases by substring.
"""
import argparse
import os
import platform
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
# the checkout's refrt (an installed copy elsewhere would shadow it when run as a script)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import bench, fmt_t, set_clock  # noqa: E402

from refrt import ops  # noqa: E402
from refrt.autodiff import vjp_op  # noqa: E402
from refrt.backends import float_conv  # noqa: E402
from refrt.metrics import ulp_distance  # noqa: E402

# name: (op, x shape, weight shape or None, params)
CASES = {
    "conv 3x3 64->64 32x32": ("conv2d", (8, 64, 32, 32), (64, 64, 3, 3), {"padding": 1}),
    "conv 3x3 64->64 56x56": ("conv2d", (8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    "conv 3x3 128->128 28x28": ("conv2d", (8, 128, 28, 28), (128, 128, 3, 3),
                                {"padding": 1}),
    "conv 1x1 256->64 28x28": ("conv2d", (8, 256, 28, 28), (64, 256, 1, 1), {}),
    "conv 3x3/2 g4 64->64 32x32": ("conv2d", (8, 64, 32, 32), (64, 16, 3, 3),
                                   {"padding": 1, "stride": 2, "groups": 4}),
    "conv 7x7/2 3->64 224x224 (ResNet stem)": ("conv2d", (8, 3, 224, 224), (64, 3, 7, 7),
                                               {"stride": 2, "padding": 3}),
    "conv VJP 3x3 64->64 32x32 (x, w, b grads)": ("conv2d_vjp", (8, 64, 32, 32),
                                                  (64, 64, 3, 3), {"padding": 1}),
    "convT 4x4/2 64->32 16x16 (DCGAN-like)": ("conv_transpose2d", (8, 64, 16, 16),
                                              (64, 32, 4, 4), {"stride": 2, "padding": 1}),
    "maxpool 3x3/2 64ch 112x112 (ResNet)": ("max_pool2d", (8, 64, 112, 112), None,
                                             {"kernel_size": 3, "stride": 2, "padding": 1}),
}


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def accuracy():
    """Max ulp against the certified oracle over each op's registry families (seeds 0, 1),
    with conv2d's Ozaki path forced (float_conv.FORCE_OZAKI) and with the small-size path."""
    from refrt.accuracy import measure
    from refrt.registry import get
    print(f"{'op':18} {'dtype':8} {'path':7} " + " ".join(f"{f:>11}" for f in
                                                         get("conv2d").families))
    for name in ("conv2d", "conv_transpose2d"):
        spec = get(name)
        for dt in ("float32", "float64"):
            for label, force in (("ozaki", True), ("small", False)):
                float_conv.FORCE_OZAKI = force
                worst = [max(measure(spec, dt, f, seed).max_ulp for seed in (0, 1))
                         for f in spec.families]
                print(f"{name:18} {dt:8} {label:7} " + " ".join(f"{u:11.3g}" for u in worst),
                      flush=True)
    float_conv.FORCE_OZAKI = None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="batch 2 instead of 8")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--cases", default="", help="comma-separated substrings of case names")
    ap.add_argument("--old", action="store_true",
                    help="also time conv2d's previous path (im2col + _mm_nt) in the same run")
    ap.add_argument("--clock", default="wall", choices=("wall", "thread"))
    ap.add_argument("--accuracy", action="store_true",
                    help="max ulp vs the certified oracle per family (2 seeds), the Ozaki "
                         "path forced and the small-size path, instead of timing")
    args = ap.parse_args()
    set_clock(args.clock)
    if args.accuracy:
        return accuracy()
    import torch
    torch.set_num_threads(1)
    F = torch.nn.functional
    print(f"CPU: {_cpu()}; torch {torch.__version__} (1 thread), refrt threads=1")
    print(f"{'case':40} {'dtype':8} {'refrt':>10} {'torch':>10} {'torch/refrt':>11} "
          f"{'ulp refrt':>9} {'ulp torch':>9}" + ("  old path  torch/old" if args.old else ""))
    picked = [c for c in args.cases.split(",") if c]
    for label, (op, xs, ws, params) in CASES.items():
        if picked and not any(c in label for c in picked):
            continue
        for dt in args.dtypes.split(","):
            dt = np.dtype(dt)
            rng = np.random.default_rng(0)
            shape = (2,) + xs[1:] if args.quick else xs
            x = rng.standard_normal(shape).astype(dt)
            arrays = [x]
            if ws is not None:
                nb = ws[1] if op == "conv_transpose2d" else ws[0]
                arrays += [(rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(dt),
                           rng.standard_normal(nb).astype(dt)]
            t_in = [torch.from_numpy(a) for a in arrays]
            if op == "conv2d":
                tfn = lambda: F.conv2d(t_in[0], t_in[1], t_in[2], **params)  # noqa: E731
                rfn = lambda: ops.conv2d(arrays[0], arrays[1], bias=arrays[2], threads=1,  # noqa: E731
                                         **params)
            elif op == "conv_transpose2d":
                tfn = lambda: F.conv_transpose2d(t_in[0], t_in[1], t_in[2], **params)  # noqa: E731
                rfn = lambda: ops.conv_transpose2d(arrays[0], arrays[1], bias=arrays[2],  # noqa: E731
                                                   threads=1, **params)
            elif op == "conv2d_vjp":
                out = ops.conv2d(arrays[0], arrays[1], bias=arrays[2], **params)
                gy = rng.standard_normal(out.shape).astype(dt)
                full = dict(stride=1, dilation=1, groups=1, **params)
                tg = [t.clone().requires_grad_() for t in t_in]
                ty = F.conv2d(tg[0], tg[1], tg[2], **params)
                tgy = torch.from_numpy(gy)
                tfn = lambda: torch.autograd.grad(ty, tg, tgy, retain_graph=True)[0]  # noqa: E731
                rfn = lambda: vjp_op("conv2d", arrays, full, out, gy, threads=1)[0]  # noqa: E731
            else:
                tfn = lambda: F.max_pool2d(t_in[0], **params)  # noqa: E731
                rfn = lambda: ops.max_pool2d(arrays[0], threads=1, **params)  # noqa: E731
            auto = lambda: setattr(float_conv, "FORCE_OZAKI", None)  # noqa: E731
            variants = {"refrt": (rfn, auto), "torch": (tfn, None)}
            if args.old and op != "max_pool2d":
                variants["old"] = (rfn, lambda: setattr(float_conv, "FORCE_OZAKI", False))
            r = bench(variants, repeats=args.repeats, target=0.2)
            auto()
            got, tgot = rfn(), tfn().detach().numpy()
            t64 = [a.double() for a in t_in]
            if op == "conv2d_vjp":
                t64 = [a.requires_grad_() for a in t64]
                ref = torch.autograd.grad(F.conv2d(t64[0], t64[1], t64[2], **params), t64,
                                          tgy.double())[0].numpy().astype(dt)
            else:
                ref = {"conv2d": F.conv2d, "conv_transpose2d": F.conv_transpose2d,
                       "max_pool2d": lambda a, *r, **k: F.max_pool2d(a, **k)}[op](
                           *t64, **params).numpy().astype(dt)
            if dt == np.float32:
                u_r = f"{float(ulp_distance(got, ref, dt).max()):.3g}"
                u_t = f"{float(ulp_distance(tgot, ref, dt).max()):.3g}"
            else:
                u_r = u_t = "-"          # no wider reference here (docs/accuracy.md has it)
            ratio = r["torch"]["median"] / r["refrt"]["median"]
            print(f"{label:40} {dt.name:8} {fmt_t(r['refrt']['median']):>10} "
                  f"{fmt_t(r['torch']['median']):>10} {ratio:11.3f} {u_r:>9} {u_t:>9}"
                  + (f"  {fmt_t(r['old']['median']):>8} "
                     f"{r['torch']['median'] / r['old']['median']:9.3f}" if "old" in r else ""),
                  flush=True)
    print("ulp columns (float32 rows): max distance to torch's float64 result rounded to "
          "float32; large values are outputs near 0 after cancellation.")


if __name__ == "__main__":
    main()
