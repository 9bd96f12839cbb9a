"""refrt op kernels against NumPy and (when installed) PyTorch CPU.

    python bench/bench_kernels.py [--quick] [--ops a,b] [--threads 1,2]
                                  [--dtypes float32,float64] [--sizes large,small]
                                  [--json out.json]

Design:
a) One entry per op in ``CASES``: how to make inputs (by input kind), the refrt params,
   a NumPy reference (fused where NumPy can: one pass less is a fairer baseline, e.g.
   log_softmax = x - m - log(sum(exp(x - m)))), and the PyTorch equivalent.  Ops without
   a NumPy reference are listed as skipped.
b) Shapes: rows x cols = 4096 x 1000 ("large") and 256 x 10 ("small", the per-call
   overhead regime); batch_norm_inference (N, C, H, W) = 64 x 256 x 14 x 14 / 4 x 16 x
   8 x 8 with channel_axis=1; matmul/linear 512 x 512 / 64 x 64.
c) Every timing includes allocating the output (refrt allocates, so NumPy and torch do
   too).  refrt is called through the public API ``refrt.ops.evaluate`` (input
   preparation included), with ``threads=T``, and, as "refrt kernel 1T", through the
   bound table entry on prepared inputs (the kernel without the dispatch); torch with ``torch.set_num_threads(T)``
   set before each batch; NumPy is single-threaded (the matmul uses OpenBLAS threads).
d) Variants of one case run round-robin inside each repeat (bench/harness.py); ratios
   come from the same run.  Ratios are speed-ups: "x np" = t_numpy / t_refrt, "x t1" =
   t_torch(1 thread) / t_refrt(1 thread), so > 1 means refrt is faster.
e) Before timing, refrt's result is compared with NumPy's (loose tolerance, only to catch
   a benchmark measuring the wrong thing); a mismatch is reported in the notes.
f) Ops that are not bound in ``refrt.backends.FLOAT`` yet are skipped with a note, so the
   suite runs at any stage of the project.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the checkout's refrt (with its in-place kernels), never another refrt installed in
# site-packages: `python bench/x.py` puts only bench/ on sys.path
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import bench, fmt_t  # noqa: E402

EPS = 1e-6     # TorchLean epsilon, refrt's default for every eps parameter
LARGE, SMALL = (4096, 1000), (256, 10)
BN_SHAPES = {"large": (64, 256, 14, 14), "small": (4, 16, 8, 8)}
MM_SHAPES = {"large": 512, "small": 64}
# ops the project targets to be at least as fast as PyTorch on one thread
TORCH_TARGETS = ("log_softmax", "softmax", "cross_entropy_logits", "cross_entropy_ids",
                 "bce_with_logits",
                 "kl_div", "mse_loss", "batch_norm_inference")

try:
    import torch
    import torch.nn.functional as F
except ImportError:            # the suite runs without torch
    torch = F = None


# ---------------------------------------------------------------- inputs ----
def _softmax_rows(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_inputs(kind, size, dtype, rng):
    """Input arrays for an input kind at size "large"/"small", in dtype."""
    shape = LARGE if size == "large" else SMALL
    normal = lambda s=shape: rng.standard_normal(s) * 3       # noqa: E731
    if kind == "real":
        arrays = [normal()]
    elif kind == "pos":
        arrays = [rng.uniform(0.1, 10, shape)]
    elif kind == "gt_m1":
        arrays = [rng.uniform(-0.9, 10, shape)]
    elif kind == "real2":
        arrays = [normal(), normal()]
    elif kind == "div":
        arrays = [normal(), rng.uniform(0.5, 4, shape) * rng.choice([-1, 1], shape)]
    elif kind == "pow":
        arrays = [rng.uniform(0.1, 4, shape), rng.uniform(-2, 2, shape)]
    elif kind == "logits_probs":
        arrays = [normal(), _softmax_rows(normal())]
    elif kind == "probs_probs":
        arrays = [_softmax_rows(normal()), _softmax_rows(normal())]
    elif kind == "logprobs_probs":
        z = normal()
        lp = z - z.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        arrays = [lp, _softmax_rows(normal())]
    elif kind == "logits_ids":
        return [np.ascontiguousarray(normal(), dtype=dtype),
                rng.integers(0, shape[1], shape[0])]
    elif kind == "logits_unit":
        arrays = [normal(), rng.uniform(0, 1, shape)]
    elif kind == "unit_unit":
        arrays = [rng.uniform(0.01, 0.99, shape), rng.uniform(0, 1, shape)]
    elif kind == "bn":
        n, c, h, w = BN_SHAPES[size]
        arrays = [normal((n, c, h, w)), rng.standard_normal(c), rng.uniform(0.5, 2, c),
                  rng.uniform(0.5, 1.5, c), rng.standard_normal(c)]
    elif kind == "ln":
        arrays = [normal(), rng.uniform(0.5, 1.5, shape[1]), rng.standard_normal(shape[1])]
    elif kind == "mm":
        m = MM_SHAPES[size]
        arrays = [rng.standard_normal((m, m)), rng.standard_normal((m, m))]
    elif kind == "linear":
        m = MM_SHAPES[size]
        arrays = [rng.standard_normal((m, m)), rng.standard_normal((m, m)),
                  rng.standard_normal(m)]
    else:
        raise ValueError(f"make_inputs: kind {kind!r} unknown")
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays]


# ------------------------------------------------------ NumPy references ----
def _lse_rows(x):
    m = x.max(-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(-1, keepdims=True))


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    e /= e.sum(-1, keepdims=True)
    return e


def np_log_softmax(x):
    return x - _lse_rows(x)


def np_ce_logits(x, t):
    # -sum(t * (x - lse)) / N = (sum_i lse_i * sum_j t_ij - <t, x>) / N
    return (t.sum(-1) @ _lse_rows(x)[:, 0] - np.vdot(t, x)) / x.shape[0]


def np_kl(lp, t):
    tlogt = np.zeros_like(t)
    np.log(t, out=tlogt, where=t > 0)
    return (np.vdot(t, tlogt) - np.vdot(t, lp)) / lp.shape[0]


def np_bce_logits(x, t):
    return np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))


def np_bce(p, t):
    p = np.clip(p, EPS, 1 - EPS)
    return -np.mean(t * np.log(p) + (1 - t) * np.log1p(-p))


def np_mse(a, b):
    d = (a - b).ravel()
    return (d @ d) / max(d.size, 1)


def np_bn(x, mean, var, gamma, beta):
    scale = gamma / np.sqrt(var + x.dtype.type(EPS))   # folded: one pass over x
    shift = beta - mean * scale
    return x * scale[:, None, None] + shift[:, None, None]


def np_layer_norm(x, g, b):
    d = x - x.mean(-1, keepdims=True)
    v = np.mean(d * d, -1, keepdims=True)
    return d / np.sqrt(v + x.dtype.type(EPS)) * g + b


def np_var(x):
    d = x - x.mean()
    return np.vdot(d, d) / max(x.size, 1)


def _t(fn_name):
    """torch.<fn_name> (resolved late, torch may be absent)."""
    return lambda *a: getattr(torch, fn_name)(*a)


# op -> (input kind, refrt params, numpy fn, torch fn or None)
CASES = {
    "exp": ("real", {}, np.exp, _t("exp")),
    "log": ("pos", {}, np.log, _t("log")),
    "log1p": ("gt_m1", {}, np.log1p, _t("log1p")),
    "expm1": ("real", {}, np.expm1, _t("expm1")),
    "sqrt": ("pos", {}, np.sqrt, _t("sqrt")),
    "tanh": ("real", {}, np.tanh, _t("tanh")),
    "sinh": ("real", {}, np.sinh, _t("sinh")),
    "cosh": ("real", {}, np.cosh, _t("cosh")),
    "abs": ("real", {}, np.abs, _t("abs")),
    "neg": ("real", {}, np.negative, _t("neg")),
    "square": ("real", {}, np.square, _t("square")),
    "inv": ("pos", {}, np.reciprocal, _t("reciprocal")),
    "relu": ("real", {}, lambda x: np.maximum(x, 0), _t("relu")),
    "sigmoid": ("real", {}, lambda x: 1 / (1 + np.exp(-x)), _t("sigmoid")),
    "logistic": ("real", {}, lambda x: 1 / (1 + np.exp(-x)), _t("sigmoid")),
    "softplus": ("real", {}, lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
                 lambda x: F.softplus(x)),
    "silu": ("real", {}, lambda x: x / (1 + np.exp(-x)), lambda x: F.silu(x)),
    "elu": ("real", {}, lambda x: np.where(x > 0, x, np.expm1(x)), lambda x: F.elu(x)),
    "clamp": ("real", {}, lambda x: np.clip(x, -1.0, 1.0), lambda x: torch.clamp(x, -1, 1)),
    "add": ("real2", {}, np.add, _t("add")),
    "sub": ("real2", {}, np.subtract, _t("sub")),
    "mul": ("real2", {}, np.multiply, _t("mul")),
    "div": ("div", {}, np.divide, _t("div")),
    "minimum": ("real2", {}, np.minimum, _t("minimum")),
    "maximum": ("real2", {}, np.maximum, _t("maximum")),
    "pow": ("pow", {}, np.power, _t("pow")),
    "sum": ("real", {}, np.sum, lambda x: x.sum()),
    "mean": ("real", {}, np.mean, lambda x: x.mean()),
    "amax": ("real", {}, np.max, lambda x: x.amax()),
    "amin": ("real", {}, np.min, lambda x: x.amin()),
    "var": ("real", {}, np_var, lambda x: torch.var(x, correction=0)),
    "row_mean": ("real", {}, lambda x: x.mean(1), lambda x: x.mean(1)),
    "logsumexp": ("real", {}, lambda x: _lse_rows(x)[:, 0], lambda x: torch.logsumexp(x, -1)),
    "softmax": ("real", {}, np_softmax, lambda x: torch.softmax(x, -1)),
    "log_softmax": ("real", {}, np_log_softmax, lambda x: torch.log_softmax(x, -1)),
    "mse_loss": ("real2", {}, np_mse, lambda a, b: F.mse_loss(a, b)),
    "cross_entropy_logits": ("logits_probs", {}, np_ce_logits,
                             lambda x, t: F.cross_entropy(x, t)),
    "cross_entropy_ids": ("logits_ids", {}, lambda x, t: np.mean(
        _lse_rows(x)[:, 0] - x[np.arange(x.shape[0]), t]),
        lambda x, t: F.cross_entropy(x, t)),
    "cross_entropy_probs": ("probs_probs", {}, lambda p, t: -np.vdot(
        t, np.log(np.clip(p, EPS, 1 - EPS))) / p.shape[0],
        lambda p, t: -(t * torch.log(torch.clamp(p, EPS, 1 - EPS))).sum() / p.shape[0]),
    "nll_loss": ("logprobs_probs", {}, lambda lp, t: -np.vdot(t, lp) / lp.shape[0],
                 lambda lp, t: -(t * lp).sum() / lp.shape[0]),
    "bce_with_logits": ("logits_unit", {}, np_bce_logits,
                        lambda x, t: F.binary_cross_entropy_with_logits(x, t)),
    "binary_cross_entropy": ("unit_unit", {}, np_bce, lambda p, t: F.binary_cross_entropy(
        torch.clamp(p, EPS, 1 - EPS), t)),
    "kl_div": ("logprobs_probs", {}, np_kl,
               lambda lp, t: F.kl_div(lp, t, reduction="batchmean")),
    "batch_norm_inference": ("bn", {"channel_axis": 1}, np_bn,
                             lambda x, m, v, g, b: F.batch_norm(x, m, v, g, b, training=False,
                                                                eps=EPS)),
    "layer_norm": ("ln", {}, np_layer_norm,
                   lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, eps=EPS)),
    "matmul": ("mm", {}, np.matmul, _t("matmul")),
    "linear": ("linear", {}, lambda x, w, b: x @ w.T + b, lambda x, w, b: F.linear(x, w, b)),
}


# bench case -> refrt op, where the case is one variant of an op's inputs
OP_OF = {"cross_entropy_ids": "cross_entropy_logits"}


# ------------------------------------------------------------------ refrt ----
def load_float_table():
    """refrt.backends.FLOAT, importing binding modules one by one so that one broken
    module (another op still being written) does not hide the others.  Returns
    (table, {module: error})."""
    from refrt import backends
    errors = {}
    try:
        backends.load()
    except Exception:                                   # noqa: BLE001
        for mod in pkgutil.iter_modules(backends.__path__):
            if mod.name.startswith("float_"):
                try:
                    importlib.import_module(f"refrt.backends.{mod.name}")
                except Exception as e:                  # noqa: BLE001
                    errors[mod.name] = f"{type(e).__name__}: {e}"
    return backends.FLOAT, errors


def _prepare_for(op, arrays, params):
    from refrt._prepare import prepare
    from refrt.registry import get
    return prepare(get(op), arrays, params, None, False)


def _close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rtol = 1e-3 if dtype == np.float32 else 1e-8
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=rtol)


def run_case(case, size, dtype, threads, repeats, target, table):
    """Time one (case, size, dtype): returns a result row (dict)."""
    from refrt.ops import evaluate
    kind, params, np_fn, torch_fn = CASES[case]
    op = OP_OF.get(case, case)
    arrays = make_inputs(kind, size, dtype, np.random.default_rng(0))
    row = dict(op=case, size=size, dtype=np.dtype(dtype).name,
               shape="x".join(map(str, arrays[0].shape)), notes=[], res={})
    if op not in table:
        row["notes"].append("not bound in refrt.backends.FLOAT: skipped")
        return row
    with np.errstate(all="ignore"):
        want = np_fn(*arrays)
        try:
            got = evaluate(op, *arrays, threads=1, **params)
        except Exception as e:                          # noqa: BLE001
            row["notes"].append(f"refrt raised {type(e).__name__}: {e}"[:120])
            return row
    if not _close(got, want, dtype):
        row["notes"].append("refrt != numpy (check the case or the kernel)")
    variants = {"numpy": (lambda: np_fn(*arrays), None)}
    # the bound kernel alone, on already prepared inputs: separates dispatch cost
    # (input checks, params validation, reshape) from kernel speed
    prep, full_params, _, _ = _prepare_for(op, arrays, params)
    impl = table[op]
    variants["refrt kernel 1T"] = (lambda: impl(prep, full_params, 1), None)
    tens = [torch.from_numpy(np.asarray(a)) for a in arrays] \
        if torch is not None and torch_fn else None
    for t in threads:
        variants[f"refrt {t}T"] = (lambda t=t: evaluate(op, *arrays, threads=t, **params),
                                   None)
        if tens is not None:
            variants[f"torch {t}T"] = (lambda: torch_fn(*tens),
                                       lambda t=t: torch.set_num_threads(t))
    with np.errstate(all="ignore"):
        row["res"] = bench(variants, repeats=repeats, target=target)
    return row


# ------------------------------------------------------------------ table ----
def _ratio(row, a, b):
    r = row["res"]
    if a in r and b in r:
        return r[a]["median"] / r[b]["median"]
    return float("nan")


def format_table(rows, threads):
    head = ["op", "shape", "dt", "numpy", "refrt kernel 1T"]
    for t in threads:
        head += [f"refrt {t}T", f"torch {t}T"]
    head += ["x np (1T)", "x torch (1T)"]
    if len(threads) > 1:
        head += [f"x torch ({threads[-1]}T)"]
    head.append("notes")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    t0, tn = threads[0], threads[-1]
    for row in rows:
        r = row["res"]
        cell = lambda k: fmt_t(r[k]["median"]) if k in r else "-"      # noqa: E731
        cells = [row["op"], row["shape"], row["dtype"].replace("float", "f"), cell("numpy"),
                 cell("refrt kernel 1T")]
        for t in threads:
            cells += [cell(f"refrt {t}T"), cell(f"torch {t}T")]
        xnp = _ratio(row, "numpy", f"refrt {t0}T")
        xt = _ratio(row, f"torch {t0}T", f"refrt {t0}T")
        mark = lambda v, want: "" if v != v or not want else (" ✓" if v >= 1 else " ✗")  # noqa
        cells.append(f"{xnp:.2f}{mark(xnp, True)}" if xnp == xnp else "-")
        cells.append(f"{xt:.2f}{mark(xt, row['op'] in TORCH_TARGETS)}" if xt == xt else "-")
        if len(threads) > 1:
            v = _ratio(row, f"torch {tn}T", f"refrt {tn}T")
            cells.append(f"{v:.2f}" if v == v else "-")
        cells.append("; ".join(row["notes"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_vecmath(repeats, target, n=4096 * 1000):
    """ns/element of vecmath.h's array exp and log against the scalar libm loop,
    numpy and torch (1 thread); exp on x in [-20, 0] (what softmax feeds it), log on
    [1e-3, 1e3]; output preallocated, so only the loop is timed."""
    from refrt._kernels.vecmath_check import libm_exp, libm_log, vexp, vlog
    lines = ["| fn | dtype | vecmath | libm scalar loop | numpy | torch 1T |",
             "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(0)
    for name, ours, libm, npf, lo, hi in (("exp", vexp, libm_exp, np.exp, -20, 0),
                                           ("log", vlog, libm_log, np.log, 1e-3, 1e3)):
        for dt in (np.float32, np.float64):
            x = rng.uniform(lo, hi, n).astype(dt)
            y = np.empty_like(x)
            v = {"vecmath": (lambda: ours(x, y), None), "libm": (lambda: libm(x, y), None),
                 "numpy": (lambda: npf(x, out=y), None)}
            if torch is not None:
                tx, ty, tf = torch.from_numpy(x), torch.from_numpy(y), getattr(torch, name)
                v["torch"] = (lambda: tf(tx, out=ty), lambda: torch.set_num_threads(1))
            r = bench(v, repeats=repeats, target=target)
            ns = {k: f"{r[k]['median'] / n * 1e9:.2f} ns" if k in r else "-"
                  for k in ("vecmath", "libm", "numpy", "torch")}
            lines.append(f"| {name} | {np.dtype(dt).name} | {ns['vecmath']} | {ns['libm']} "
                         f"| {ns['numpy']} | {ns['torch']} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats of >= 10 ms batches")
    ap.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--sizes", default="large,small")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the raw results here")
    ap.add_argument("--vecmath", action="store_true",
                    help="only time vecmath.h's exp/log (ns/element) against libm/numpy/torch")
    args = ap.parse_args(argv)
    if args.vecmath:
        print(bench_vecmath(args.repeats or (3 if args.quick else 7),
                            0.01 if args.quick else 0.05))
        return []
    ops = [o for o in args.ops.split(",") if o] or list(CASES)
    unknown = [o for o in ops if o not in CASES]
    if unknown:
        ap.error(f"--ops: no benchmark case for {unknown}; known: {', '.join(CASES)}")
    threads = [int(t) for t in args.threads.split(",")]
    repeats = args.repeats or (3 if args.quick else 7)
    target = 0.01 if args.quick else 0.05
    table, errors = load_float_table()
    from refrt.registry import OPS
    print(f"# refrt kernels vs numpy {np.__version__}"
          + (f" vs torch {torch.__version__}" if torch is not None else " (torch not installed)")
          + f"; repeats={repeats}, batch >= {target * 1e3:.0f} ms; medians, output allocation "
          "included")
    for mod, err in errors.items():
        print(f"# binding module {mod} failed to import: {err}")
    no_case = sorted(set(OPS) - set(CASES))
    if no_case and not args.ops:
        print(f"# registry ops without a benchmark case: {', '.join(no_case)}")
    rows = []
    for size in args.sizes.split(","):
        for dtype in args.dtypes.split(","):
            for op in ops:
                row = run_case(op, size, np.dtype(dtype).type, threads, repeats, target, table)
                rows.append(row)
                print(f"  {op:22s} {row['shape']:>14s} {dtype}: "
                      + ", ".join(f"{k} {fmt_t(v['median'])}" for k, v in row["res"].items())
                      + (f"  [{'; '.join(row['notes'])}]" if row["notes"] else ""),
                      file=sys.stderr, flush=True)
    print(format_table(rows, threads))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(threads=threads, repeats=repeats, target=target, rows=rows,
                           numpy=np.__version__,
                           torch=None if torch is None else torch.__version__), f, indent=1)
    return rows


if __name__ == "__main__":
    main()
