"""Summarise a `bench_kernels.py --json` file as speed-up ratios (other time / refrt time;
> 1 means refrt is faster), one row per op, size and dtype.

    python bench/ratios.py results.json [--ops a,b] [--markdown]
"""
import argparse
import json

TARGETS = ("log_softmax", "softmax", "cross_entropy_logits", "bce_with_logits", "kl_div",
           "mse_loss", "batch_norm_inference")


def ratios(row):
    r = {k: v["median"] for k, v in row["res"].items()}
    out = {}
    if "refrt 1T" in r:
        if "numpy" in r:
            out["x numpy"] = r["numpy"] / r["refrt 1T"]
        if "torch 1T" in r:
            out["x torch 1T"] = r["torch 1T"] / r["refrt 1T"]
    if "refrt 2T" in r and "torch 2T" in r:
        out["x torch 2T (refrt 2T)"] = r["torch 2T"] / r["refrt 2T"]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("json")
    p.add_argument("--ops", default="")
    p.add_argument("--size", default="")
    args = p.parse_args()
    data = json.load(open(args.json))
    ops = set(args.ops.split(",")) if args.ops else None
    cols = ("x numpy", "x torch 1T", "x torch 2T (refrt 2T)")
    print("| op | size | dtype | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for row in data["rows"]:
        if ops and row["op"] not in ops or args.size and row["size"] != args.size:
            continue
        rr = ratios(row)
        cells = [f"{rr[c]:.2f}" if c in rr else "-" for c in cols]
        mark = " *" if row["op"] in TARGETS else ""
        print(f"| {row['op']}{mark} | {row['shape']} | {row['dtype']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
