"""Forward + backward: refrt's tape vs PyTorch CPU autograd, one thread each.

Usage: python bench/bench_autograd.py [--dtype float32|float64] [--repeats 15] [--rows 4096]

Each case is timed round-robin (refrt graph, refrt.grad including tracing, torch) so
all contenders see the same machine state; the reported figure is the median, and the
ratio is torch_median / refrt_median from the same run (> 1: refrt is faster).

* "graph": ``graph.run(...)`` + ``tape.backward`` on a graph traced once (record once,
  evaluate many);
* "grad": ``refrt.grad`` / ``refrt.vjp`` from scratch each call (tracing included; the
  trace is the forward pass, so this costs about the same).

PyTorch must be the pinned wheel: ``pip install torch==2.13.0``.
"""
from __future__ import annotations

import os as _os
import sys as _sys

# the checkout's refrt, not one installed in site-packages (bench/README.md)
_sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
import argparse
import statistics
import sys
import time

import numpy as np

from refrt import backends, ops, tape
from refrt.autodiff import vjp
from refrt.graph import trace


def _cases(rows, dtype, rng):
    """name -> (refrt fn, refrt inputs, cotangent or None for 0-d, torch fn, torch inputs
    spec: list of (array, requires_grad))."""
    import torch
    import torch.nn.functional as F
    c = 1000
    x = rng.standard_normal((rows, c)).astype(dtype) * 3
    ids = rng.integers(0, c, rows)
    t01 = rng.random((rows, c)).astype(dtype)
    g = rng.standard_normal((rows, c)).astype(dtype)
    mean, var = rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype) + 0.5
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    hidden = 256
    w1 = (rng.standard_normal((hidden, c)) / np.sqrt(c)).astype(dtype)
    b1 = np.zeros(hidden, dtype)
    w2 = (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(dtype)
    b2 = np.zeros(hidden, dtype)
    w3 = (rng.standard_normal((10, hidden)) / np.sqrt(hidden)).astype(dtype)
    b3 = np.zeros(10, dtype)
    ids10 = rng.integers(0, 10, rows)

    def mlp(x, w1, b1, w2, b2, w3, b3, t):
        h = ops.relu(ops.linear(x, w1, b1))
        h = ops.relu(ops.linear(h, w2, b2))
        return ops.cross_entropy_logits(ops.linear(h, w3, b3), t)

    def torch_mlp(x, w1, b1, w2, b2, w3, b3, t):
        h = torch.relu(F.linear(x, w1, b1))
        h = torch.relu(F.linear(h, w2, b2))
        return F.cross_entropy(F.linear(h, w3, b3), t)

    return {
        "cross_entropy_logits": (lambda x, t: ops.cross_entropy_logits(x, t), [x, ids], None,
                                 lambda x, t: F.cross_entropy(x, t), [(x, True), (ids, False)],
                                 ("cross_entropy_logits",)),
        "log_softmax": (lambda x: ops.log_softmax(x), [x], g,
                        lambda x: F.log_softmax(x, -1), [(x, True)], ("log_softmax",)),
        "bce_with_logits": (lambda x, t: ops.bce_with_logits(x, t), [x, t01], None,
                            lambda x, t: F.binary_cross_entropy_with_logits(x, t),
                            [(x, True), (t01, False)], ("bce_with_logits",)),
        "batch_norm_inference": (
            lambda x, m, v, ga, be: ops.batch_norm_inference(x, m, v, ga, be, channel_axis=1),
            [x, mean, var, gamma, beta], g,
            lambda x, m, v, ga, be: F.batch_norm(x, m, v, ga, be, training=False, eps=1e-6),
            [(x, True), (mean, False), (var, False), (gamma, True), (beta, True)],
            ("batch_norm_inference",)),
        "mlp3_cross_entropy": (mlp, [x, w1, b1, w2, b2, w3, b3, ids10], None, torch_mlp,
                               [(x, True), (w1, True), (b1, True), (w2, True), (b2, True),
                                (w3, True), (b3, True), (ids10, False)],
                               ("linear", "relu", "cross_entropy_logits")),
    }


def _torch_step(fn, spec, g):
    import torch
    tensors = [torch.from_numpy(a).requires_grad_(rg) if rg else torch.from_numpy(a)
               for a, rg in spec]

    def step():
        for tt, (_, rg) in zip(tensors, spec):
            if rg:
                tt.grad = None
        out = fn(*tensors)
        out.backward(torch.from_numpy(g) if g is not None else None)
        return [tt.grad for tt, (_, rg) in zip(tensors, spec) if rg]
    return step


def _refrt_graph_step(fn, inputs, g):
    graph = trace(fn, *inputs)

    def step():
        run = graph.run(*inputs)
        seed = g if g is not None else tape.seed_like(run, run.outputs)
        return tape.backward(run, [seed])
    return step


def _refrt_grad_step(fn, inputs, g):
    def step():
        out, vjp_fn = vjp(fn, *inputs)
        return vjp_fn(g if g is not None else np.ones((), out.dtype))
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--only", default="")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    backends.load()
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}, refrt threads=1, "
          f"dtype={dtype.name}, rows={args.rows}, median of {args.repeats} (round-robin)")
    print(f"{'case':24s} {'refrt graph ms':>15s} {'refrt grad ms':>14s} {'torch ms':>9s} "
          f"{'torch/graph':>12s} {'torch/grad':>11s}")
    for name, (fn, inputs, g, tfn, tspec, needs) in _cases(args.rows, dtype, rng).items():
        if args.only and name not in args.only.split(","):
            continue
        missing = [n for n in needs if n not in backends.FLOAT_VJP or n not in backends.FLOAT]
        if missing:
            print(f"{name:24s} skipped: not bound yet: {', '.join(missing)}")
            continue
        steps = {"graph": _refrt_graph_step(fn, inputs, g),
                 "grad": _refrt_grad_step(fn, inputs, g),
                 "torch": _torch_step(tfn, tspec, g)}
        times = {k: [] for k in steps}
        for k, s in steps.items():  # warm-up
            s()
        for _ in range(args.repeats):
            for k, s in steps.items():
                t0 = time.perf_counter()
                s()
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{name:24s} {med['graph']:15.2f} {med['grad']:14.2f} {med['torch']:9.2f} "
              f"{med['torch'] / med['graph']:11.2f}x {med['torch'] / med['grad']:10.2f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
