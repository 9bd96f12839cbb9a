"""LSTM / GRU / RNN cells: refrt vs torch (nn.LSTMCell's kernel) with one thread,
interleaved medians (harness.py) and ratios from the same run.

Run as `python bench/bench_recurrent.py` from the repository root (the BLAS thread
variables are set to 1 before NumPy is imported, torch.set_num_threads(1)).  Default
size: batch 64, input 256, hidden 512 (a realistic single layer), forward and
forward + backward, float32 and float64.

What is timed: refrt through `refrt.ops.evaluate` (input checks included) and the VJP
through `refrt.autodiff.vjp_op`; torch through `torch._VF.lstm_cell` etc. (what
nn.LSTMCell calls) and `torch.autograd.grad` for the backward.  refrt's pre-activations
are one Dot2-compensated product per gate entry (linalg.pyx), which costs ~10 vector
flops per term where torch's sgemm/dgemm spends one fma: the ratio is dominated by that.
"""
import argparse
import json
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.harness import bench, fmt_t  # noqa: E402
from refrt import ops  # noqa: E402
from refrt.autodiff import vjp_op  # noqa: E402

GATES = {"lstm_cell": 4, "gru_cell": 3, "rnn_cell": 1}


def cases(torch, cell, n, i, h, dt):
    rng = np.random.default_rng(0)
    g = GATES[cell]
    x, hh, c = (rng.standard_normal(s).astype(dt) for s in ((n, i), (n, h), (n, h)))
    k = 1 / np.sqrt(h)
    w = [rng.uniform(-k, k, s).astype(dt) for s in ((g * h, i), (g * h, h), (g * h,), (g * h,))]
    arrays = [x, hh] + ([c] if cell == "lstm_cell" else []) + w
    out = ops.evaluate(cell, *arrays)
    gout = rng.standard_normal(np.shape(out)).astype(dt)
    tt = [torch.from_numpy(a) for a in arrays]
    tf = {"lstm_cell": lambda x, h, c, *w: torch.stack(torch._VF.lstm_cell(x, (h, c), *w)),
          "gru_cell": lambda *a: torch._VF.gru_cell(*a),
          "rnn_cell": lambda *a: torch._VF.rnn_tanh_cell(*a)}[cell]
    tg = [t.clone().requires_grad_(True) for t in tt]
    tgo = torch.from_numpy(gout)

    def torch_bwd():
        o = tf(*tg)
        return torch.autograd.grad(o, tg, grad_outputs=tgo)

    return {
        "refrt fwd": (lambda: ops.evaluate(cell, *arrays), None),
        "torch fwd": (lambda: tf(*tt), None),
        "refrt fwd+vjp": (lambda: vjp_op(cell, arrays, {}, ops.evaluate(cell, *arrays), gout),
                          None),
        "torch fwd+bwd": (torch_bwd, None),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="64,256,512", help="batch,input,hidden")
    ap.add_argument("--cells", default="lstm_cell")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.2)
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    n, i, h = (int(v) for v in args.size.split(","))
    rows = []
    print(f"cells at batch {n}, input {i}, hidden {h}; 1 thread; medians of {args.repeats} "
          "interleaved repeats")
    print(f"{'cell':>10} {'dtype':>8} {'refrt fwd':>10} {'torch fwd':>10} {'ratio':>6} "
          f"{'refrt f+b':>10} {'torch f+b':>10} {'ratio':>6}")
    for cell in args.cells.split(","):
        for dt in args.dtypes.split(","):
            r = bench(cases(torch, cell, n, i, h, np.dtype(dt)), args.repeats, args.target)
            f = r["refrt fwd"]["median"] / r["torch fwd"]["median"]
            b = r["refrt fwd+vjp"]["median"] / r["torch fwd+bwd"]["median"]
            print(f"{cell:>10} {dt:>8} {fmt_t(r['refrt fwd']['median']):>10} "
                  f"{fmt_t(r['torch fwd']['median']):>10} {f:6.1f} "
                  f"{fmt_t(r['refrt fwd+vjp']['median']):>10} "
                  f"{fmt_t(r['torch fwd+bwd']['median']):>10} {b:6.1f}")
            rows.append(dict(cell=cell, dtype=dt, size=[n, i, h], ratio_fwd=f, ratio_fwd_bwd=b,
                             **{k: v["median"] for k, v in r.items()}))
    print("ratio = refrt time / torch-1T time (lower is better; 1.0 = as fast)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
