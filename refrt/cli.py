"""Command line: ``refrt check`` (accuracy campaign), ``refrt ops`` (the op table),
``refrt docs`` (regenerate docs/ops.md and docs/accuracy.md from the registry)."""
from __future__ import annotations

import argparse
import sys
import time

from . import backends
from .registry import OPS


def _select(names):
    if not names:
        return list(OPS.values())
    out = []
    for n in names.split(","):
        n = n.strip()
        if n not in OPS:
            raise SystemExit(f"refrt: unknown op {n!r}; `refrt ops` lists them")
        out.append(OPS[n])
    return out


def run_check(specs, dtypes, seeds):
    """Measure every (op, dtype) against the mp reference; returns rows and failures."""
    from .accuracy import measure
    rows, failures = [], []
    for spec in specs:
        row = {"op": spec.name, "kind": spec.kind}
        for dt in dtypes:
            worst, fam_worst, inst = 0.0, "", None
            for family in spec.families:
                for seed in range(seeds):
                    if spec.name not in backends.FLOAT or spec.name not in backends.MP:
                        continue
                    m = measure(spec, dt, family, seed)
                    if m.max_ulp > worst or inst is None:
                        worst, fam_worst, inst = max(worst, m.max_ulp), family, m
            tol = spec.tol[dt]
            row[dt] = (worst, tol, fam_worst)
            if spec.name not in backends.FLOAT or spec.name not in backends.MP:
                row[dt] = (float("nan"), tol, "not bound")
                failures.append((spec.name, dt, "no kernel or mp formula bound"))
            elif worst > tol:
                failures.append((spec.name, dt, f"{worst:g} ulp > {tol:g} on {fam_worst}: inputs "
                                 f"{inst.worst_inputs} got {inst.got!r} want {inst.want!r}"))
        rows.append(row)
    return rows, failures


def print_zoo(console):
    """The BugZoo table: textbook formulations vs refrt's stable ops, against the oracle."""
    from rich.table import Table
    from .bugzoo import run_all, stable_alternative
    table = Table(title="BugZoo: textbook formulations vs refrt (bits of error against the "
                  "certified oracle; Herbie's log2(1 + ulps))")
    for col in ("formulation", "dtype", "textbook", "failure", "refrt", "use instead"):
        table.add_column(col, overflow="fold")
    for r in run_all():
        table.add_row(r.case.name, r.case.dtype, f"{r.naive_bits:.1f}", r.naive_class,
                      f"{r.refrt_bits:.1f}", stable_alternative(r.case.op))
    console.print(table)


def difftest(args):
    """Run another backend against the oracle and print where it departs."""
    from rich.console import Console
    from rich.table import Table
    from .difftest import CLASSES, campaign
    backends.load()
    console = Console(width=max(Console().width, 120))
    ops = [o.strip() for o in args.ops.split(",")] if args.ops else None
    t0 = time.perf_counter()
    findings = campaign(args.backend, ops, tuple(args.dtypes.split(",")),
                        tuple(range(args.seeds)))
    table = Table(title=f"{args.backend} vs the certified oracle (max bits of error over the "
                  "input families; counts of failing elements)")
    table.add_column("op", no_wrap=True)
    for col in ("dtype", "max bits", "worst family") + CLASSES + ("use instead",):
        table.add_column(col, overflow="fold")
    bad = 0
    for f in findings:
        if f.error and not f.classes:
            table.add_row(f.op, f.dtype, "-", "-", *[""] * len(CLASSES), f"error: {f.error}")
            continue
        bad += not f.ok
        colour = "green" if f.ok else "red"
        alt = OPS[f.op].stable_alternative or f"refrt.ops.{f.op}" if not f.ok else ""
        table.add_row(f.op, f.dtype, f"[{colour}]{f.max_bits:.1f}[/]", f.worst_family or "-",
                      *[str(f.classes.get(c, "")) for c in CLASSES], alt)
    console.print(table)
    console.print(f"{bad} of {len(findings)} (op, dtype) pairs depart from the oracle "
                  f"({time.perf_counter() - t0:.1f} s)")
    return 0


def _fmt_ulp(v):
    if v != v:
        return "-"
    return f"{v:.0f}" if v == int(v) and v < 1e6 else f"{v:.3g}"


def check(args):
    from rich.console import Console
    from rich.table import Table
    backends.load()
    console = Console(width=max(Console().width, 110))
    specs = _select(args.ops)
    dtypes = args.dtypes.split(",")
    t0 = time.perf_counter()
    rows, failures = run_check(specs, dtypes, args.seeds)
    table = Table(title="refrt kernels vs the mp reference (max ulp error over the input "
                  "families; tolerance from the registry)")
    table.add_column("op", no_wrap=True)
    table.add_column("kind")
    for dt in dtypes:
        table.add_column(f"{dt} max ulp / tol", justify="right")
    table.add_column("worst family")
    for row in rows:
        cells = []
        for dt in dtypes:
            worst, tol, _ = row[dt]
            ok = worst <= tol
            colour = "green" if ok else "red"
            cells.append(f"[{colour}]{_fmt_ulp(worst)}[/] / {_fmt_ulp(tol)}")
        worst_family = max((row[dt] for dt in dtypes), key=lambda w: w[0])
        table.add_row(row["op"], row["kind"], *cells,
                      worst_family[2] if worst_family[0] > 0 else "-")
    console.print(table)
    if not args.ops and not args.no_zoo:
        print_zoo(console)
    dt_s = time.perf_counter() - t0
    n = len(rows) * len(dtypes)
    if failures:
        console.print(f"[red]{len(failures)} of {n} (op, dtype) pairs exceed their tolerance[/] "
                      f"({dt_s:.1f} s):")
        for name, dt, why in failures:
            console.print(f"  {name} {dt}: {why}")
        return 1
    console.print(f"[green]all {n} (op, dtype) pairs within tolerance[/] "
                  f"({len(specs)} ops, {args.seeds} seed(s) per family, {dt_s:.1f} s)")
    return 0


def list_ops(args):
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"refrt ops ({len(OPS)})")
    for col in ("op", "signature", "domain", "tol f32/f64 (ulp)"):
        table.add_column(col)
    for spec in OPS.values():
        dom = ", ".join(f"{a.name} in {a.domain}" for a in spec.args)
        table.add_row(spec.name, spec.signature, dom,
                      f"{_fmt_ulp(spec.tol.float32)} / {_fmt_ulp(spec.tol.float64)}")
    Console().print(table)
    return 0


def docs(args):
    from .docs import write_docs
    backends.load()
    for path in write_docs(args.out, seeds=args.seeds):
        print(f"wrote {path}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="refrt", description=__doc__)
    sub = parser.add_subparsers(dest="cmd")
    p = sub.add_parser("check", help="measure every kernel against the mp reference (default)")
    p.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--seeds", type=int, default=2, help="draws per input family")
    p.add_argument("--no-zoo", action="store_true", help="skip the BugZoo table")
    p.set_defaults(fn=check)
    p = sub.add_parser("zoo", help="refrt.check on the BugZoo's unsafe/safe program pairs")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per program")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=lambda a: __import__("refrt.tester.zoo").tester.zoo.main(a.budget, a.seed))
    p = sub.add_parser("difftest", help="run another backend's ops against the oracle")
    p.add_argument("--backend", default="numpy",
                   help="numpy | torch | jax | module:<python.module> (default numpy)")
    p.add_argument("--ops", default="")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--seeds", type=int, default=1)
    p.set_defaults(fn=difftest)
    from .analysis.cli import register as register_analyze   # refrt analyze (issue 11)
    register_analyze(sub)
    p = sub.add_parser("ops", help="list the registry")
    p.set_defaults(fn=list_ops)
    p = sub.add_parser("docs", help="regenerate docs/ops.md and docs/accuracy.md")
    p.add_argument("--out", default="docs")
    p.add_argument("--seeds", type=int, default=2)
    p.set_defaults(fn=docs)
    args = parser.parse_args(argv)
    if args.cmd is None:
        args = parser.parse_args(["check"] + list(argv or sys.argv[1:]))
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
