"""Every row of issue 12's speed table, as ratios from ONE run.

    python bench/issue_table.py [--quick] [--json out.json] [--rows a,b]

Design:
a) One command, one process, one interleaved timing per case (bench/harness.py: every
   variant of a case runs once per repeat, round-robin; medians).  Ratios are
   other time / refrt time, so > 1 means refrt is faster; "2T/1T" is refrt's own
   speed-up from threads=2.  The machine is named (/proc/cpuinfo) and its load printed:
   on a shared machine the 2-thread columns mean little.
b) Rows owned by other work (per-call dispatch cost, exp/log/tanh, matmul, the certified
   oracle) are measured through the functions the tree has today (refrt.ops.evaluate,
   refrt.backends.FLOAT, refrt.oracle.evaluate), so the table reports whatever the tree
   holds when it runs; a row whose function is missing prints the error, the rest run.
c) Sizes: 4096x1000 ("large") and 256x10 ("small"), both dtypes; 1 and 2 threads for
   refrt and torch (NumPy is single-threaded; OpenBLAS is pinned to 1 thread for the
   matmul row, before NumPy is imported).  batch_norm_inference uses 64x256x14x14 /
   4x16x8x8 NCHW, matmul 512^2 / 64^2 (bench_kernels.py, which defines the cases).
d) Each row has the issue's target; "met" compares the median ratio with it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import bench_kernels as BK  # noqa: E402
from harness import bench, fmt_t  # noqa: E402

ELEMENTWISE = ("add", "sub", "mul", "div", "neg", "abs", "relu", "square", "maximum")
VECMATH = ("exp", "log", "log1p", "expm1", "tanh", "sinh", "cosh", "sigmoid", "pow")
# row name -> (cases, sizes, what the ratio is against, target, note)
ROWS = {
    "per-call add": (("add",), ("one",), "torch", 1.0, "1-element float32, µs per call"),
    "elementwise 256x10": (ELEMENTWISE, ("small",), "torch", 1.0, ">= 1.0x torch, >= 0.7x numpy"),
    "vecmath 4096x1000": (VECMATH, ("large",), "numpy", 1.0, ">= 1.0x numpy"),
    "softmax family": (("softmax", "log_softmax"), ("large", "small"), "torch", 1.0,
                       ">= 1.0x torch-1T"),
    "cross_entropy ids": (("cross_entropy_ids",), ("large", "small"), "torch", 1.0,
                          ">= 1.0x torch-1T"),
    "layer_norm": (("layer_norm",), ("large", "small"), "torch", 1.0, ">= 1.0x torch-1T"),
    "batch_norm_inference": (("batch_norm_inference",), ("small", "large"), "torch", 1.0,
                             ">= 1.0x torch-1T (4x16x8x8)"),
    "kl_div": (("kl_div",), ("large", "small"), "numpy+torch", 1.0, "f64 >= 1.0x numpy and torch"),
    "full reductions": (("sum", "var", "mean"), ("large",), "2T/1T", 1.8,
                        "axis=None, ~2x from threads=2"),
    "matmul": (("matmul",), ("large",), "numpy", 0.5, ">= 0.5x OpenBLAS 1T (512^2)"),
    "oracle": ((), (), "el/s", 500e3, "certified 256x10 losses, >= 500k elements/s"),
}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _median(row, key):
    r = row["res"].get(key)
    return r["median"] if r else float("nan")


def case_ratios(row):
    """{column: ratio} of one bench_kernels row."""
    r1, r2 = _median(row, "refrt 1T"), _median(row, "refrt 2T")
    return {"x numpy": _median(row, "numpy") / r1, "x torch 1T": _median(row, "torch 1T") / r1,
            "x torch 2T": _median(row, "torch 2T") / r2, "2T/1T": r1 / r2,
            "refrt 1T": r1}


def per_call(repeats, target):
    """µs per call of refrt.ops.add on a 1-element float32 array, NumPy and torch."""
    from refrt.ops import evaluate
    a = np.ones(1, np.float32)
    v = {"refrt 1T": (lambda: evaluate("add", a, a), None), "numpy": (lambda: np.add(a, a), None)}
    if BK.torch is not None:
        ta = BK.torch.from_numpy(a)
        v["torch 1T"] = (lambda: BK.torch.add(ta, ta), lambda: BK.torch.set_num_threads(1))
    return dict(op="add", size="one", dtype="float32", shape="1", notes=[],
                res=bench(v, repeats=repeats, target=target))


def oracle_rate(dtype):
    """Certified elements/s on bench_oracle.py's 256x10 inputs (best of 2 calls)."""
    import bench_oracle as BO
    from refrt import oracle
    out = {}
    rng = np.random.default_rng(0)
    for name in ("log_softmax", "cross_entropy_logits", "bce_with_logits", "kl_div",
                 "batch_norm_inference"):
        arrays, params = BO.inputs(name, rng, np.dtype(dtype))
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            oracle.evaluate(name, *arrays, dtype=np.dtype(dtype), on_undecided="nan", **params)
            best = min(best, time.perf_counter() - t0)
        out[name] = arrays[0].size / best
    return out


TABLE = None


def main(argv=None):
    global TABLE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats of >= 10 ms batches")
    ap.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--clock", default="wall", choices=("wall", "thread"),
                    help="thread: CPU time of the calling thread (a saturated machine; "
                         "the 2-thread columns are then meaningless)")
    args = ap.parse_args(argv)
    import harness
    harness.set_clock(args.clock)
    repeats, target = (3, 0.01) if args.quick else (7, 0.05)
    TABLE, errors = BK.load_float_table()
    rows = [r for r in args.rows.split(",") if r] or list(ROWS)
    print(f"# issue 12 table on {cpu_name()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}; numpy {np.__version__}, torch "
          f"{BK.torch.__version__ if BK.torch is not None else 'absent'}; repeats={repeats}, "
          f"batches >= {target * 1e3:.0f} ms; {args.clock} clock; medians of one interleaved run; ratios = other "
          "time / refrt time (> 1: refrt faster)")
    for mod, err in errors.items():
        print(f"# binding module {mod} failed to import: {err}")
    lines = ["| row | case | shape | dtype | refrt 1T | x numpy | x torch 1T | x torch 2T "
             "| refrt 2T/1T | target | met |", "|" + "---|" * 11]
    raw = []

    def emit(name, row, want):
        rr = case_ratios(row)
        kind, tval = ROWS[name][2], ROWS[name][3]
        if kind == "numpy+torch":
            got = min(rr["x numpy"], rr["x torch 1T"])
        elif kind == "torch":
            got = rr["x torch 1T"]
        else:
            got = rr.get({"numpy": "x numpy"}.get(kind, kind), float("nan"))
        met = "-" if got != got or not want else ("yes" if got >= tval else "no")
        cell = lambda v: f"{v:.2f}" if v == v else "-"                   # noqa: E731
        lines.append(f"| {name} | {row['op']} | {row['shape']} | {row['dtype']} | "
                     f"{fmt_t(rr['refrt 1T'])} | {cell(rr['x numpy'])} | "
                     f"{cell(rr['x torch 1T'])} | {cell(rr['x torch 2T'])} | "
                     f"{cell(rr['2T/1T'])} | {ROWS[name][4] if want else ''} | {met} |"
                     + (f" {'; '.join(row['notes'])}" if row["notes"] else ""))
        raw.append(dict(row=name, **row))
        print(lines[-1], file=sys.stderr, flush=True)

    for name in rows:
        cases, sizes, kind, tval, note = ROWS[name]
        try:
            if name == "per-call add":
                emit(name, per_call(repeats, target), True)
                continue
            if name == "oracle":
                for dt in ("float64", "float32"):
                    rates = oracle_rate(dt)
                    worst = min(rates.values())
                    lines.append(f"| oracle | {', '.join(rates)} | 256x10 | {dt} | "
                                 f"{worst / 1e3:.0f}k-{max(rates.values()) / 1e3:.0f}k el/s | - "
                                 f"| - | - | - | {note} | {'yes' if worst >= tval else 'no'} |")
                    raw.append(dict(row=name, dtype=dt, rates=rates))
                continue
            for size in sizes:
                for dt in (np.float32, np.float64):
                    for case in cases:
                        row = BK.run_case(case, size, dt, [1, 2], repeats, target, TABLE)
                        want = not (name == "kl_div" and dt == np.float32) and not (
                            name == "batch_norm_inference" and size == "large")
                        emit(name, row, want)
        except Exception as e:                               # noqa: BLE001
            lines.append(f"| {name} | error: {type(e).__name__}: {str(e)[:100]} |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu_name(), rows=raw), f, indent=1, default=str)


if __name__ == "__main__":
    main()
