"""Per-call cost of refrt.ops: the lean path, the general path and their layers.

    python bench/bench_dispatch.py [--repeats 7] [--no-profile] [--ops a,b]

Three tables, every figure from one run (bench/harness.py: round-robin repeats, medians):

1. ``refrt.ops.add`` on a 1-element float32 array: the lean path (the generated
   function, and ``evaluate``), the general path (``backend="f32"`` forces it: the same
   kernel behind ``prepare``), each layer alone (``prepare``, the bound table entry, the
   typed buffer entry, the memoryview entry), NumPy and torch eager (1 thread).
2. cProfile of the general and the lean path: own time per call of every function
   (cProfile's own overhead inflates each row by ~0.1-0.3 us per profiled call; the
   ranking and the shares are what it shows).
3. Elementwise ops at 256x10 (dispatch-bound), float32 and float64: refrt.ops.<op>
   against NumPy and torch (1 thread); ratios are other time / refrt time (> 1: refrt
   faster).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import bench, fmt_t  # noqa: E402

import refrt.ops as ops  # noqa: E402
from refrt import backends  # noqa: E402
from refrt._kernels import elementwise as K  # noqa: E402
from refrt._prepare import prepare  # noqa: E402
from refrt.registry import get  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
except ImportError:              # torch is an extra
    torch = None

UNARY = ("neg", "abs", "square", "relu", "exp", "log", "tanh", "sigmoid", "sqrt")
BINARY = ("add", "sub", "mul", "div", "maximum")
NUMPY = {"neg": np.negative, "abs": np.abs, "square": np.square,
         "relu": lambda x: np.maximum(x, 0), "exp": np.exp, "log": np.log, "tanh": np.tanh,
         "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "sqrt": np.sqrt, "add": np.add,
         "sub": np.subtract, "mul": np.multiply, "div": np.divide, "maximum": np.maximum}


def per_call(repeats):
    x = np.ones(1, np.float32)
    backends.load()
    spec = get("add")
    prep, full, _, _ = prepare(spec, (x, x), {})
    impl = backends.FLOAT["add"]
    out = np.empty(1, np.float32)
    code = K.BINARY_CODES["add"]
    v = {
        "refrt.ops.add (lean)": lambda: ops.add(x, x),
        "ops.evaluate('add', threads=1) (lean)": lambda: ops.evaluate("add", x, x, threads=1),
        "general path (backend='f32')": lambda: ops.add(x, x, backend="f32"),
        "  layer: prepare": lambda: prepare(spec, (x, x), {}),
        "  layer: bound table entry": lambda: impl(prep, full, 1),
        "  layer: memoryview kernel entry": lambda: K.binary_fwd(code, x, x, out, threads=1),
        "  layer: typed buffer entry (lean)": lambda: K.binary_1t(code, x, x, out, 0.0),
        "  layer: np.empty(shape, dtype)": lambda: np.empty(x.shape, x.dtype),
        "numpy np.add": lambda: np.add(x, x),
    }
    if torch is not None:
        tx = torch.from_numpy(x)
        v["torch.add (eager, 1T)"] = lambda: torch.add(tx, tx)
    res = bench({k: (f, None) for k, f in v.items()}, repeats=repeats)
    np_t = res["numpy np.add"]["median"]
    print(f"## 1. per-call cost, add of two 1-element float32 arrays "
          f"(median of {repeats} interleaved repeats)\n")
    print("| variant | median | x numpy time |")
    print("|---|---|---|")
    for k, r in res.items():
        print(f"| {k} | {fmt_t(r['median'])} | {r['median'] / np_t:.2f} |")
    print()


def profile(calls=20000):
    x = np.ones(1, np.float32)
    print(f"## 2. cProfile, {calls} calls (own time per call; cProfile adds its own cost "
          "to every profiled call)\n")
    for label, fn in (("general path: ops.add(x, x, backend='f32')",
                       lambda: ops.add(x, x, backend="f32")),
                      ("lean path: ops.add(x, x)", lambda: ops.add(x, x))):
        fn()
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(calls):
            fn()
        pr.disable()
        st = pstats.Stats(pr)
        rows = []
        for (file, line, func), (cc, nc, tt, ct, _) in st.stats.items():
            if func == "<lambda>" and file == __file__:
                continue
            where = os.path.basename(file) if file != "~" else ""
            rows.append((tt / calls, ct / calls, nc / calls, f"{where}:{func}" if where else func))
        rows.sort(reverse=True)
        total = sum(r[0] for r in rows)
        print(f"{label}: {total * 1e6:.2f} us per call under cProfile\n")
        print("| function | own us/call | cumulative us/call | calls per op call |")
        print("|---|---|---|---|")
        for tt, ct, nc, name in rows[:14]:
            print(f"| {name} | {tt * 1e6:.3f} | {ct * 1e6:.3f} | {nc:.0f} |")
        print()


def elementwise(repeats, names):
    print("## 3. elementwise ops at 256x10, refrt.ops.<op> (dispatch included), 1 thread\n")
    print("| op | dtype | refrt | numpy | torch | x numpy | x torch |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    ratios_t, ratios_n = [], []
    for dtype in (np.float32, np.float64):
        for name in names:
            x = (rng.random((256, 10)) + 0.5).astype(dtype)
            arrays = (x,) if name in UNARY else (x, (rng.random((256, 10)) + 0.5).astype(dtype))
            f = getattr(ops, name)
            v = {"refrt": (lambda f=f, a=arrays: f(*a), None),
                 "numpy": (lambda g=NUMPY[name], a=arrays: g(*a), None)}
            if torch is not None:
                tf = {"relu": torch.relu, "sigmoid": torch.sigmoid}.get(name) or getattr(torch, name)
                ta = tuple(torch.from_numpy(a) for a in arrays)
                v["torch"] = (lambda tf=tf, a=ta: tf(*a), None)
            with np.errstate(all="ignore"):
                r = {k: d["median"] for k, d in bench(v, repeats=repeats).items()}
            xn = r["numpy"] / r["refrt"]
            xt = r["torch"] / r["refrt"] if "torch" in r else float("nan")
            ratios_n.append(xn)
            ratios_t.append(xt)
            print(f"| {name} | {np.dtype(dtype).name} | {fmt_t(r['refrt'])} | "
                  f"{fmt_t(r['numpy'])} | {fmt_t(r.get('torch', float('nan')))} | "
                  f"{xn:.2f} | {xt:.2f} |")
    print(f"\nrange: {min(ratios_n):.2f}-{max(ratios_n):.2f}x numpy, "
          f"{min(ratios_t):.2f}-{max(ratios_t):.2f}x torch "
          f"(median {np.median(ratios_n):.2f}x numpy, {np.median(ratios_t):.2f}x torch)\n")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--ops", default="")
    ap.add_argument("--only", default="", help="1, 2 or 3: one table")
    args = ap.parse_args(argv)
    names = tuple(args.ops.split(",")) if args.ops else UNARY + BINARY
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else "")
          + f", {os.cpu_count()} CPUs\n")
    if args.only in ("", "1"):
        per_call(args.repeats)
    if args.only in ("", "2") and not args.no_profile:
        profile()
    if args.only in ("", "3"):
        elementwise(args.repeats, names)


if __name__ == "__main__":
    main()
