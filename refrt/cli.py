"""Command line: ``refrt check`` (the differential campaign, ``refrt.difftest.cli``),
``refrt report`` (its HTML report), ``refrt selfcheck`` (refrt's kernels against the mp
reference), ``refrt ops`` (the op table), ``refrt docs`` (regenerate docs/ops.md and
docs/accuracy.md from the registry)."""
from __future__ import annotations

import argparse
import re
import sys
import time

from . import __version__, backends
from .registry import OPS


class UsageError(ValueError):
    """A selection or option the command cannot run with (printed as a usage error)."""


def _positive_int(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of draws per family, "
                                         f"got {n} (0 would check nothing)")
    return n


def _family_legend(names):
    """One line per input family named in a table, from refrt.families' docstring."""
    from . import families
    doc = {m.group(1): m.group(2) for m in
           re.finditer(r"^  (\w+) +(.+)$", families.__doc__ or "", re.M)}
    width = max((len(n) for n in names), default=0)
    return ["worst family: the input family (refrt.families) of the largest error"] + [
        f"  {n:<{width}}  {doc.get(n, '(undocumented)')}" for n in sorted(names)] if names else []


def _text_columns(table, rows, widths):
    """Columns of prose, wrapped here between words at about ``widths[header]`` (wider
    when a word is longer) and never by rich, so no word is broken.  Returns the rows
    with those cells wrapped."""
    import textwrap
    cols = {h: max([w, len(h)] + [len(word) for r in rows for word in str(r[h]).split()])
            for h, w in widths.items()}
    for header in rows[0] if rows else widths:
        if header in cols:
            table.add_column(header, no_wrap=True, width=cols[header])
        else:
            table.add_column(header, no_wrap=True)
    return [[textwrap.fill(str(v), cols[h], break_long_words=False, break_on_hyphens=False)
             if h in cols else str(v) for h, v in r.items()] for r in rows]


def _names_column(table, header, names, **kw):
    """A column of identifiers (op, family): never wrapped, so never broken mid-word."""
    table.add_column(header, no_wrap=True, min_width=max([len(header)] + [len(n) for n in names]),
                     **kw)


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
    if seeds < 1 or not specs or not dtypes:
        raise UsageError(f"nothing to check: {len(specs)} op(s), {len(dtypes)} dtype(s), "
                         f"{seeds} seed(s) per family")
    rows, failures = [], []
    for spec in specs:
        row = {"op": spec.name, "kind": spec.kind}
        for dt in dtypes:
            worst, fam_worst, inst, measured = 0.0, "", None, 0
            for family in spec.families:
                for seed in range(seeds):
                    if spec.name not in backends.FLOAT or spec.name not in backends.MP:
                        continue
                    m = measure(spec, dt, family, seed)
                    measured += m.n > 0
                    if m.max_ulp > worst or inst is None:
                        worst, fam_worst, inst = max(worst, m.max_ulp), family, m
            tol = spec.tol[dt]
            row[dt] = (worst, tol, fam_worst)
            if spec.name not in backends.FLOAT or spec.name not in backends.MP:
                row[dt] = (float("nan"), tol, "not bound")
                failures.append((spec.name, dt, "no kernel or mp formula bound"))
            elif not measured:
                failures.append((spec.name, dt, "no element measured (no input family "
                                 "produced one)"))
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
    rows = [{"formulation": r.case.name, "dtype": r.case.dtype, "textbook": f"{r.naive_bits:.1f}",
             "failure": r.naive_class, "refrt": f"{r.refrt_bits:.1f}",
             "use instead": stable_alternative(r.case.op)} for r in run_all()]
    for cells in _text_columns(table, rows, {"formulation": 22, "failure": 14, "use instead": 30}):
        table.add_row(*cells)
    console.print(table)


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
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if any(d not in ("float32", "float64") for d in dtypes):
        raise UsageError(f"--dtypes expected float32 and/or float64, got {args.dtypes!r}")
    t0 = time.perf_counter()
    rows, failures = run_check(specs, dtypes, args.seeds)
    table = Table(title="refrt kernels vs the mp reference (max ulp error over the input "
                  "families; tolerance from the registry)")
    worst_families = [max((row[dt] for dt in dtypes), key=lambda w: w[0]) for row in rows]
    shown = {w[2] for w in worst_families if w[0] > 0 and w[2] != "not bound"}
    _names_column(table, "op", [r["op"] for r in rows])
    _names_column(table, "kind", [r["kind"] for r in rows])
    for dt in dtypes:
        table.add_column(f"{dt} max ulp / tol", justify="right", no_wrap=True)
    _names_column(table, "worst family", sorted(shown) or ["-"])
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
    for line in _family_legend(shown):
        console.print(line, highlight=False)
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
    try:
        paths = write_docs(args.out, seeds=args.seeds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for path in paths:
        print(f"wrote {path}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="refrt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="cmd")
    from .difftest.cli import register
    register(sub)
    p = sub.add_parser("selfcheck", help="measure every refrt kernel against the mp reference")
    p.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--seeds", type=_positive_int, default=2, help="draws per input family")
    p.add_argument("--no-zoo", action="store_true", help="skip the BugZoo table")
    p.set_defaults(fn=check)
    p = sub.add_parser("zoo", help="refrt.check on the BugZoo's unsafe/safe program pairs")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per program")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=lambda a: __import__("refrt.tester.zoo").tester.zoo.main(a.budget, a.seed))
    from .analysis.cli import register as register_analyze   # refrt analyze (issue 11)
    register_analyze(sub)
    p = sub.add_parser("ops", help="list the registry")
    p.set_defaults(fn=list_ops)
    p = sub.add_parser("docs", help="regenerate docs/ops.md and docs/accuracy.md")
    p.add_argument("--out", default=None,
                   help="directory (default: docs/ when run in refrt's repository)")
    p.add_argument("--seeds", type=int, default=2)
    p.set_defaults(fn=docs)
    args = parser.parse_args(argv)
    if args.cmd is None:
        args = parser.parse_args(["check"] + list(argv or sys.argv[1:]))
    try:
        return args.fn(args)
    except UsageError as e:
        parser.error(f"{args.cmd}: {e}")


def _version():
    import os
    import mpmath
    import numpy
    here = os.path.dirname(os.path.abspath(__file__))
    return (f"refrt {__version__} ({here}; Python {sys.version.split()[0]}, numpy "
            f"{numpy.__version__}, mpmath {mpmath.__version__})")


if __name__ == "__main__":
    sys.exit(main())
