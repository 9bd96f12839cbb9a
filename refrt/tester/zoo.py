"""``refrt zoo``: ``refrt.check`` on every BugZoo pair (``refrt.bugzoo.PAIRS``), shown as
a table; exit status 1 when an unsafe program is not flagged with its kind at its
``# origin`` line, or a safe one is flagged."""
from __future__ import annotations

import time

from .report import short_location


def verdicts(results):
    """[(pair, unsafe finding or None, unsafe ok, safe ok)]."""
    from ..bugzoo import origin_line
    out = []
    for pair, bad, good in results:
        line = origin_line(pair.unsafe)
        hit = next((f for f in bad.findings if f.kind == pair.kind
                    and f.location.endswith(f":{line}")), None)
        out.append((pair, hit, bad, good, hit is not None, good.ok))
    return out


def main(budget=1.0, seed=0, console=None):
    from rich.console import Console
    from rich.table import Table
    from ..bugzoo import run_pairs
    console = console or Console(width=140)
    t0 = time.perf_counter()
    rows = verdicts(run_pairs(budget=budget, seed=seed))
    table = Table(title="BugZoo: refrt.check on TorchLean's unsafe/safe program pairs")
    for col, kw in (("bug class", {}), ("unsafe: found", {}), ("at", {"no_wrap": True}),
                    ("use instead (verified)", {}), ("safe", {})):
        table.add_column(col, overflow="fold", **kw)
    bad_rows = 0
    for pair, hit, bad, good, ok_bad, ok_good in rows:
        f = hit or (bad.findings[0] if bad.findings else None)
        found = (f"{f.phase} {f.kind}" if f else "nothing")
        colour = "green" if ok_bad else "red"
        safe = "[green]clean[/]" if ok_good else \
            f"[red]{good.findings[0].kind} at {short_location(good.findings[0].location)}[/]"
        table.add_row(pair.bug_class, f"[{colour}]{found}[/]",
                      f"{short_location(f.location)} {f.op}" if f else "-",
                      (f.suggestion or "-") if f else "-", safe)
        bad_rows += not (ok_bad and ok_good)
    console.print(table)
    n = len(rows)
    msg = (f"{n - bad_rows} of {n} pairs as expected: every unsafe program flagged at its "
           f"line, every safe one clean" if not bad_rows else
           f"{bad_rows} of {n} pairs NOT as expected")
    console.print(f"{msg} ({time.perf_counter() - t0:.1f} s, budget {budget:g} s per program)")
    return 0 if not bad_rows else 1
