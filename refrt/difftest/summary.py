"""Aggregate a campaign's records and print them: a summary per backend, the departing
(backend, op, dtype) triples with their classes and verdicts, XLA-style max ulp per
input class, and the worst reproducers."""
from __future__ import annotations

from collections import defaultdict

from .classes import KINDS, XLA_CLASSES

SHORT = {"nan": "NaN", "wrong_sign_inf": "±inf sign", "overflow": "overflow", "underflow": "underflow",
         "bits": "bits"}
ELEMENTWISE = ("unary", "binary")


def aggregate(records):
    """{(backend, op, dtype): dict} over every family/seed/variant/semantics."""
    out = {}
    for r in records:
        k = (r["backend"], r["op"], r["dtype"])
        a = out.setdefault(k, {"cases": 0, "fwd": defaultdict(int), "grad": defaultdict(int), "max_bits": 0.0,
                               "grad_bits": 0.0, "worst": "", "findings": [], "errors": [], "xla": {},
                               "grad_cases": 0})
        a["cases"] += 1
        if r.get("error"):
            a["errors"].append(f"{r['family']}: {r['error']}")
        for f in r.get("findings", []):
            f = dict(f, family=r["family"], variant=r.get("variant", ""), semantics=r.get("semantics", ""),
                     backend=r["backend"], op=r["op"], dtype=r["dtype"])
            a["findings"].append(f)
            (a["fwd"] if f["phase"] == "forward" else a["grad"])[f["kind"]] += f["count"]
        if r.get("max_bits", 0) > a["max_bits"]:
            a["max_bits"] = r["max_bits"]
            a["worst"] = r["family"] + (f" {r['variant']}" if r.get("variant") else "")
        if r.get("grad"):
            a["grad_cases"] += 1
            a["grad_bits"] = max(a["grad_bits"], r["grad"]["max_bits"])
        for c, v in (r.get("xla") or {}).items():
            a["xla"][c] = max(a["xla"].get(c, 0.0), v)
    return out


def short_note(note):
    """The first clause of a by-design note (the record keeps it whole)."""
    for sep in (" (", ", so", "; "):
        if sep in note:
            note = note.split(sep, 1)[0]
    return note


def verdict(findings, short=False):
    """'by design: ...' when every finding is annotated so, else the checked fix, else ''."""
    notes = {short_note(f["by_design"]) if short else f["by_design"] for f in findings if f.get("by_design")}
    if findings and all(f.get("by_design") for f in findings):
        return "; ".join(sorted(notes))
    fixes = {f["fix"]["code"] for f in findings if f.get("fix") and f["fix"].get("verified")}
    text = ("use " + " / ".join(sorted(fixes)) + " (checked)") if fixes else ""
    if notes:
        text = (text + "; " if text else "") + "partly " + "; ".join(sorted(notes))
    return text


def _counts(d):
    return ", ".join(f"{d[k]} {SHORT[k]}" for k in KINDS if d.get(k))


def print_summary(console, records, backends, seconds, left, notes, show=5, resumed=0, path=""):
    from rich.table import Table
    agg = aggregate(records)
    ops_of = defaultdict(set)
    t = Table(title=f"refrt check: {len(records)} cases against the certified oracle "
              f"({seconds:.1f} s{f', {resumed} resumed' if resumed else ''})")
    for col in ("backend", "version", "ops", "(op, dtype) pairs", "departing", "by design", "forward findings",
                "gradient findings"):
        t.add_column(col, overflow="fold")
    versions = {}
    for r in records:
        versions[r["backend"]] = r.get("backend_version", "")
        ops_of[r["backend"]].add(r["op"])
    for b in backends:
        rows = {k: v for k, v in agg.items() if k[0] == b}
        dep = [v for v in rows.values() if v["findings"]]
        bd = [v for v in dep if all(f.get("by_design") for f in v["findings"])]
        fwd, grad = defaultdict(int), defaultdict(int)
        for v in rows.values():
            for k, c in v["fwd"].items():
                fwd[k] += c
            for k, c in v["grad"].items():
                grad[k] += c
        t.add_row(b, versions.get(b, ""), str(len(ops_of[b])), str(len(rows)),
                  f"[red]{len(dep)}[/]" if dep else "[green]0[/]", str(len(bd)),
                  _counts(fwd) or "-", _counts(grad) or "-")
    console.print(t)

    d = Table(title="Departures from the exact value (elements per class over all families; max bits of "
              "error, Herbie's log2(1 + ulps))")
    for col in ("backend", "op", "dtype", "forward", "max bits", "gradient", "grad bits", "worst family",
                "verdict / fix"):
        d.add_column(col, overflow="fold")
    for (b, op, dt), v in sorted(agg.items()):
        if not v["findings"] and not v["errors"]:
            continue
        fv = verdict(v["findings"], short=True)
        d.add_row(b, op, dt, _counts(v["fwd"]) or "-", f"{v['max_bits']:.1f}", _counts(v["grad"]) or "-",
                  f"{v['grad_bits']:.1f}" if v["grad_cases"] else "", v["worst"],
                  fv or ("[red]error: " + v["errors"][0][:80] + "[/]" if v["errors"] else ""))
    if d.row_count:
        console.print(d)

    x = Table(title="Max ulp by XLA input class (elementwise ops; compare with XLA's/JAX's published budgets)")
    x.add_column("backend")
    x.add_column("dtype")
    for c in XLA_CLASSES:
        x.add_column(c, justify="right")
    from ..registry import OPS
    by = defaultdict(dict)
    for (b, op, dt), v in agg.items():
        if OPS[op].kind in ELEMENTWISE:
            for c, u in v["xla"].items():
                by[(b, dt)][c] = max(by[(b, dt)].get(c, 0.0), u)
    for (b, dt), m in sorted(by.items()):
        x.add_row(b, dt, *[_ulp(m.get(c)) for c in XLA_CLASSES])
    if x.row_count:
        console.print(x)

    acted = sorted((f for v in agg.values() for f in v["findings"] if not f.get("by_design")),
                   key=lambda f: (-_rank(f), f["backend"], f["op"]))
    seen, shown = set(), 0
    for f in acted:
        if shown >= show:
            break
        k = (f["backend"], f["op"], f["kind"], f["phase"])
        if k in seen:
            continue
        seen.add(k)
        shown += 1
        fix = f.get("fix")
        console.print(f"\n[bold]{f['backend']} {f['op']} {f['dtype']}[/] ({f['family']}"
                      f"{' ' + f['variant'] if f.get('variant') else ''}, {f['phase']}): "
                      f"{f['kind']}, {f['bits']:.1f} bits; got {f['got']!r}, exact {f['want']!r}"
                      + (f"\n  fix: {fix['code']} ({fix['bits']:.1f} bits, checked on this input)"
                         if fix and fix.get("verified") else ""))
        console.print(f["reproducer"], markup=False, highlight=False, soft_wrap=True)
    n_dep = sum(1 for v in agg.values() if v["findings"])
    n_bd = sum(1 for v in agg.values() if v["findings"] and all(f.get("by_design") for f in v["findings"]))
    console.print(f"\n{n_dep} of {len(agg)} (backend, op, dtype) triples depart from the exact value "
                  f"({n_bd} only by documented design); {len(records)} cases in {seconds:.1f} s.")
    for n in notes:                       # plain text: "refrt[torch]" is not rich markup
        console.print(f"note: {n}", markup=False, highlight=False)
    if left:
        console.print(f"[yellow]{left} cases not run (budget spent)[/]; continue with "
                      f"--json {path or 'PATH'} --resume")
    if path:
        console.print(f"records: {path} (refrt report {path} -o report.html)")


def _rank(f):
    order = {"nan": 5, "wrong_sign_inf": 4, "overflow": 3, "underflow": 2, "bits": 1}
    return order.get(f["kind"], 0) * 100 + f["bits"]


def _ulp(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v < 1e6 else f"{v:.2g}"


def exit_status(records, fail_on):
    if not fail_on:
        return 0
    kinds = set(KINDS) if "any" in fail_on else set(fail_on)
    for r in records:
        if "error" in fail_on and r.get("error"):
            return 1
        for f in r.get("findings", []):
            if f["kind"] in kinds and not f.get("by_design"):
                return 1
    return 0
