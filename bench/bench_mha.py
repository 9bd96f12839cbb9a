"""refrt multi_head_attention (forward, and forward + VJP) and hard_masked_softmax vs
torch (1 thread), ratios from one interleaved run (bench/harness.py: round-robin medians).

Run as `python bench/bench_mha.py` from the repository root (``--quick`` for small
sizes).  The ratio is torch time / refrt time (1.0 = as fast as torch).  torch runs
nn.MultiheadAttention's forward (F.multi_head_attention_forward: three GEMMs, fused
SDPA, one GEMM) and its autograd backward; refrt runs every projection as two correctly
rounded products (hi and the remainder lo, docs/matmul.md) and the attention core in
double-words (refrt/_kernels/mha.pyx: every score a compensated double-word dot product,
every weight a double-word exp), one thread, no blocking beyond what gcc
auto-vectorises.  hard_masked_softmax is refrt's softmax kernel plus two np.where passes
(torch: masked_fill, softmax, where).
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
from refrt import nn as rnn  # noqa: E402
from refrt.autodiff import vjp_op  # noqa: E402


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    print(f"CPU: {_cpu()}; torch {torch.__version__}, 1 thread; refrt threads=1")
    print(f"{'case':<40} {'dtype':>8} {'refrt':>10} {'torch':>10} {'torch/refrt':>12}")
    N, L, E, H = (2, 16, 32, 4) if args.quick else (8, 64, 128, 8)
    rng = np.random.default_rng(0)
    for dt, tdt in ((np.float32, torch.float32), (np.float64, torch.float64)):
        torch.manual_seed(0)
        m = torch.nn.MultiheadAttention(E, H, batch_first=True).to(tdt).eval()
        w, kw = rnn.mha_params(m)
        x = rng.standard_normal((N, L, E)).astype(dt)
        tx = torch.from_numpy(x)
        arrays = [x, x, x] + list(w) + [kw["b_q"], kw["b_k"], kw["b_v"], kw["b_o"]]
        p = {"num_heads": H, "is_causal": True}
        cm = torch.from_numpy(~np.tri(L, dtype=bool))
        g = rng.standard_normal((N, L, E)).astype(dt)
        tg = torch.from_numpy(g)

        def tfwd():
            with torch.no_grad():
                return m(tx, tx, tx, attn_mask=cm, need_weights=False)[0]

        def tboth():
            xs = tx.clone().requires_grad_(True)
            y = m(xs, xs, xs, attn_mask=cm, need_weights=False)[0]
            return torch.autograd.grad(y, [xs] + list(m.parameters()), grad_outputs=tg)

        def rboth():
            y = ops.evaluate("multi_head_attention", *arrays, **p)
            return vjp_op("multi_head_attention", arrays, dict(p), y, g)

        cases = [(f"mha N={N} L={L} E={E} H={H} causal", lambda: ops.evaluate(
                     "multi_head_attention", *arrays, **p), tfwd),
                 ("  forward + VJP (all inputs)", rboth, tboth)]
        s = rng.standard_normal((N * H * L, L)).astype(dt)
        mk = rng.random((N * H * L, L)) < 0.7
        ts, tm = torch.from_numpy(s), torch.from_numpy(mk)
        cases.append((f"hard_masked_softmax {s.shape[0]}x{L}",
                      lambda: ops.hard_masked_softmax(s, mk),
                      lambda: torch.where(tm, torch.softmax(ts.masked_fill(~tm, -float("inf")),
                                                            -1), 0.0)))
        for label, rfn, tfn in cases:
            r = bench({"refrt": (rfn, None), "torch": (tfn, None)}, repeats=args.repeats,
                      target=0.2)
            tr, tt = r["refrt"]["median"], r["torch"]["median"]
            print(f"{label:<40} {np.dtype(dt).name:>8} {fmt_t(tr):>10} {fmt_t(tt):>10} "
                  f"{tt / tr:>12.3f}")


if __name__ == "__main__":
    main()
