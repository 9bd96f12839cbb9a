"""Certified oracle vs the plain (uncertified) mp backend on 256x10 inputs.

Run: python bench/bench_oracle.py [--repeat N] [--dtype float64|float32]
                                  [--engine arb,interval]

For each op: certified elements/s (input elements) on each oracle engine (``arb``:
python-flint's Arb balls first, ``interval``: mpmath intervals only; refrt/oracle.py
design note g), plain mp at target precision + GUARD bits (formula + rounding of every
result to the target), and the ratio certified (first engine) / plain.  The variants of
one op run round-robin, best of ``--repeat``.  Inputs are ordinary: N(0, 3^2) logits,
uniform probabilities, positive variances.
"""
import os as _os
import sys as _sys

# the checkout's refrt, not one installed in site-packages (bench/README.md)
_sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
import argparse
import time

import numpy as np

from refrt import backends, oracle
from refrt._prepare import prepare
from refrt.ops import evaluate_mp
from refrt.registry import get
from refrt.rounding import format_of, round_array


def inputs(name, rng, dtype):
    n, c = 256, 10
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    if name == "log_softmax":
        return [logits], {"axis": -1}
    if name == "cross_entropy_logits":
        return [logits, rng.integers(0, c, n)], {}
    if name == "bce_with_logits":
        return [logits, rng.random((n, c)).astype(dtype)], {}
    if name == "kl_div":
        z = logits - logits.max(axis=1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        t = rng.random((n, c))
        return [np.minimum(lp, 0).astype(dtype), (t / t.sum(1, keepdims=True)).astype(dtype)], {}
    if name == "batch_norm_inference":
        return [logits, rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype) + 0.5,
                rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)], \
            {"channel_axis": 1}
    raise KeyError(name)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--engine", default=",".join(oracle.ENGINES if oracle.ARB_AVAILABLE
                                                  else ("interval",)))
    args = ap.parse_args()
    engines = args.engine.split(",")
    backends.load()
    import mpmath.libmp
    dt = np.dtype(args.dtype)
    prec = format_of(dt).prec + oracle.GUARD
    print(f"mpmath backend: {mpmath.libmp.BACKEND}; target {dt.name}; plain mp at {prec} bits")
    print(f"{'op':22s} " + " ".join(f"{e + ' el/s':>15s}" for e in engines)
          + f" {'plain el/s':>12s} {'ratio':>6s} {'undecided':>9s} {'max prec':>8s}")
    rng = np.random.default_rng(0)
    for name in ("log_softmax", "cross_entropy_logits", "bce_with_logits", "kl_div",
                 "batch_norm_inference"):
        arrays, params = inputs(name, rng, dt)
        spec = get(name)
        n_in = arrays[0].size

        def certified(engine):
            oracle.ENGINE = engine
            return oracle.evaluate(name, *arrays, dtype=dt, return_enclosure=True,
                                   on_undecided="nan", **params)

        def plain():
            prepared, full, _, shape = prepare(spec, arrays, dict(params))
            return round_array(evaluate_mp(spec, prepared, full, prec), dt).reshape(shape)

        best = {e: float("inf") for e in engines}
        best["plain"] = float("inf")
        encs = {}
        for _ in range(args.repeat):            # round-robin: drift lands on all variants
            for e in engines:
                t, encs[e] = best_of(lambda: certified(e), 1)
                best[e] = min(best[e], t)
            best["plain"] = min(best["plain"], best_of(plain, 1)[0])
        enc = encs[engines[0]]
        if len(engines) > 1:
            ref = encs[engines[-1]].value
            assert np.array_equal(enc.value, ref, equal_nan=True), f"{name}: engines differ"
        print(f"{name:22s} " + " ".join(f"{n_in / best[e]:15.0f}" for e in engines)
              + f" {n_in / best['plain']:12.0f} {best[engines[0]] / best['plain']:6.2f} "
              f"{int(enc.undecided.sum()):9d} {enc.prec:8d}")


if __name__ == "__main__":
    main()
