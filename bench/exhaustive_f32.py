"""Check refrt's correctly rounded float32 exp, log, log1p, expm1, tanh and sigmoid
(refrt/_kernels/vecmath.h, "correctly rounded float32") on ALL 2^32 float32 inputs.

    nice python bench/exhaustive_f32.py [--funcs exp,log,...] [--json out.json]
                                        [--start 0 --stop 4294967296]

Design:
a) The loop is C (refrt._kernels.vecmath_check.exhaustive_range, blocks of 2^16 bit
   patterns): refrt's routine (the vector loop with its rounding test and fallback, as
   the ops call it) against glibc's double function rounded once to float.
b) Runs of equal results (monotonic functions: see exhaustive_range) need the
   reference at their two ends only; every other input is compared one by one.
c) The double reference decides the float result unless it lies within WINDOW of a
   float rounding boundary: (float)(r (1 - W)) != (float)(r (1 + W)), W = 2^-50 (4
   double ulps; glibc's exp, log, log1p, expm1 are < 1 ulp, tanh < 2) or 2^-49 for
   sigmoid (exp plus three roundings).  Those 'unsure' inputs (a few dozen per
   function) are decided by the correctly rounded value from mpmath at 200 bits
   (refrt.rounding.round_mpf), the same reference as refrt's oracle.
d) Reported per function: inputs checked, how many took the fallback (the rounding
   test of C1 fired), how many unsure references mpmath decided, and the number of
   inputs whose result is NOT the correctly rounded float (the published figure,
   docs/accuracy.md), with up to 20 of them listed.
e) One core, a few minutes per function on an idle core (the machine is shared: run it
   with nice, one function at a time).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import mpmath
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from refrt._kernels.vecmath_check import CR_NAMES, exhaustive_range  # noqa: E402
from refrt.rounding import round_mpf  # noqa: E402

WINDOW = {"sigmoid": 2.0 ** -49}
DEFAULT_WINDOW = 2.0 ** -50
_ctx = mpmath.MPContext()
_ctx.prec = 200


def exact(name, x):
    """mpmath value of name(x) for a finite float x (None: the result is NaN)."""
    v = _ctx.mpf(float(x))
    if name == "exp":
        return _ctx.exp(v)
    if name == "log":
        return None if v < 0 else (_ctx.ninf if v == 0 else _ctx.log(v))
    if name == "log1p":
        return None if v < -1 else (_ctx.ninf if v == -1 else _ctx.log1p(v))
    if name == "expm1":
        return _ctx.expm1(v)
    if name == "tanh":
        return _ctx.tanh(v)
    return 1 / (1 + _ctx.exp(-v))


def correct(name, xbits):
    """Correctly rounded float32 bit pattern of name(x) (mpmath), x given by its bits."""
    x = np.uint32(xbits).view(np.float32)
    if np.isinf(x):
        ref = {"exp": (np.inf, 0.0), "log": (np.inf, np.nan), "log1p": (np.inf, np.nan),
               "expm1": (np.inf, -1.0), "tanh": (1.0, -1.0),
               "sigmoid": (1.0, 0.0)}[name][0 if x > 0 else 1]
        return np.float32(ref).view(np.uint32)
    e = exact(name, x)
    if e is None:
        return np.float32(np.nan).view(np.uint32)
    if e == 0:                       # signed zero results are exact (x = +-0 cases)
        return np.float32(x if x == 0 else 0.0).view(np.uint32)
    return np.float32(round_mpf(e, np.float32)).view(np.uint32)


def check(name, start, stop):
    t0 = time.perf_counter()
    nchk, nflag, mis, uns, nmis, nuns, nref = exhaustive_range(
        name, start, stop, WINDOW.get(name, DEFAULT_WINDOW))
    assert nmis <= len(mis) and nuns <= len(uns), "too many cases to list"
    bad = [int(u) for u in mis]
    for u, got in uns:
        if correct(name, u) != got:
            bad.append(int(u))
    bad.sort()
    return dict(name=name, checked=int(nchk), fallback=int(nflag), unsure=int(nuns),
                reference_evaluations=int(nref),
                decided_by_reference_disagreement=int(nmis), not_correctly_rounded=len(bad),
                examples=[f"0x{u:08x} ({np.uint32(u).view(np.float32)!r})" for u in bad[:20]],
                seconds=round(time.perf_counter() - t0, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--funcs", default=",".join(CR_NAMES))
    ap.add_argument("--start", type=lambda v: int(v, 0), default=0)
    ap.add_argument("--stop", type=lambda v: int(v, 0), default=1 << 32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print("| function | inputs checked | reference evaluations | fallback taken | "
          "unsure (mpmath) | not correctly rounded | s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.funcs.split(","):
        r = check(name, args.start, args.stop)
        rows.append(r)
        print(f"| {name} | {r['checked']} | {r['reference_evaluations']} | {r['fallback']} | "
              f"{r['unsure']} | "
              f"{r['not_correctly_rounded']} | {r['seconds']} |", flush=True)
        for ex in r["examples"]:
            print(f"#   {name}: {ex}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
