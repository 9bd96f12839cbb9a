"""``refrt report RESULTS.jsonl -o report.html``: one self-contained HTML file (every
image embedded as a data: URI, no external asset) with

* Herbie's plot: bits of error against input magnitude (log2 |x|), per op and backend;
* a heat table of max ulp error, op x (backend, dtype), forward and gradient;
* every finding with its verdict, checked fix and reproducer in the backend's API.
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict

from .store import read
from .summary import SHORT, aggregate, verdict

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
th{background:#f4f4f4}pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}
.bad{color:#b00020;font-weight:600}.design{color:#805b00}.ok{color:#1b5e20}
details{margin:6px 0}summary{cursor:pointer}img{max-width:100%}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def herbie_plot(records):
    """Small multiples: one panel per op (those with any error), a colour per backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = defaultdict(lambda: defaultdict(list))
    for r in records:
        for m, b in r.get("points", []):
            pts[r["op"]][r["backend"]].append((m, b))
    ops = [op for op in sorted(pts) if any(b > 0.5 for v in pts[op].values() for _, b in v)] or sorted(pts)[:1]
    ops = ops[:30]
    if not ops:
        return None
    backends = sorted({b for op in ops for b in pts[op]})
    colours = dict(zip(backends, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    cols = 5
    rows = math.ceil(len(ops) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, op in zip(axes.ravel(), ops):
        for b, v in sorted(pts[op].items()):
            xs, ys = zip(*v)
            ax.scatter(xs, ys, s=6, alpha=0.6, color=colours[b], label=b)
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("log2 |input|", fontsize=7)
        ax.set_ylabel("bits of error", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(ops):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[b], label=b) for b in backends]
    fig.legend(handles=handles, loc="upper center", ncol=len(backends), fontsize=8, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout()
    return _png(fig)


def heat_plot(agg, key="max_bits", title="max bits of error (forward)"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    ops = sorted({k[1] for k in agg})
    cols = sorted({(k[0], k[2]) for k in agg})
    if not ops or not cols:
        return None
    m = np.full((len(ops), len(cols)), np.nan)
    for (b, op, dt), v in agg.items():
        m[ops.index(op), cols.index((b, dt))] = v[key]
    fig, ax = plt.subplots(figsize=(1.0 + 0.42 * len(cols), 0.8 + 0.22 * len(ops)))
    im = ax.imshow(m, aspect="auto", cmap="magma_r", vmin=0, vmax=64, interpolation="nearest")
    ax.set_yticks(range(len(ops)), ops, fontsize=7)
    ax.set_xticks(range(len(cols)), [f"{b} {d}" for b, d in cols], rotation=90, fontsize=7)
    for i in range(len(ops)):
        for j in range(len(cols)):
            if m[i, j] == m[i, j] and m[i, j] >= 1:
                ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=5,
                        color="white" if m[i, j] > 30 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, label="bits (log2(1 + ulps))")
    fig.tight_layout()
    return _png(fig)


def _ulp_cell(v):
    if v["findings"]:
        cls = "design" if all(f.get("by_design") for f in v["findings"]) else "bad"
    else:
        cls = "ok"
    return f'<td class="{cls}">{v["max_bits"]:.1f}</td>'


def render(records) -> str:
    agg = aggregate(records)
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>refrt campaign report</title>"
           f"<style>{CSS}</style></head><body>"]
    backends = sorted({r["backend"] for r in records})
    versions = {r["backend"]: r.get("backend_version", "") for r in records}
    refrt_v = next((r.get("refrt_version", "") for r in records), "")
    n_dep = sum(1 for v in agg.values() if v["findings"])
    out.append(f"<h1>refrt campaign report</h1><p>{len(records)} cases, refrt {e(str(refrt_v))}; backends: "
               + ", ".join(f"{e(b)} ({e(versions[b])})" for b in backends)
               + f". {n_dep} of {len(agg)} (backend, op, dtype) triples depart from the exact value "
               "(the certified oracle, correctly rounded). Bits of error are Herbie's log2(1 + ulps).</p>")
    out.append("<h2>Bits of error against input magnitude (Herbie's plot)</h2>")
    img = herbie_plot(records)
    if img:
        out.append(f'<img id="herbie" alt="bits of error vs magnitude" src="{img}">')
    out.append("<h2>Heat table: max bits of error, op × backend × dtype</h2>")
    for key, title, ident in (("max_bits", "forward", "heat"), ("grad_bits", "gradient (VJP)", "heatgrad")):
        img = heat_plot(agg, key, f"max bits of error ({title})")
        if img:
            out.append(f'<img id="{ident}" alt="heat table {title}" src="{img}">')
    ops = sorted({k[1] for k in agg})
    cols = sorted({(k[0], k[2]) for k in agg})
    out.append("<details><summary>the same as a table</summary><table><tr><th>op</th>"
               + "".join(f"<th>{e(b)}<br>{e(d)}</th>" for b, d in cols) + "</tr>")
    for op in ops:
        out.append(f"<tr><td>{e(op)}</td>" + "".join(_ulp_cell(agg[(b, op, d)]) if (b, op, d) in agg
                                                      else "<td></td>" for b, d in cols) + "</tr>")
    out.append("</table></details>")
    out.append("<h2>Findings</h2><table><tr><th>backend</th><th>op</th><th>dtype</th><th>forward</th>"
               "<th>gradient</th><th>max bits</th><th>verdict / fix</th></tr>")
    for (b, op, dt), v in sorted(agg.items()):
        if not v["findings"]:
            continue
        c = lambda d: ", ".join(f"{n} {SHORT[k]}" for k, n in d.items())   # noqa: E731
        out.append(f"<tr><td>{e(b)}</td><td>{e(op)}</td><td>{e(dt)}</td><td>{e(c(v['fwd']))}</td>"
                   f"<td>{e(c(v['grad']))}</td><td>{v['max_bits']:.1f}</td><td>{e(verdict(v['findings']))}</td></tr>")
    out.append("</table>")
    for (b, op, dt), v in sorted(agg.items()):
        for f in v["findings"]:
            tag = "design" if f.get("by_design") else "bad"
            head = (f"{b} {op} {dt}: {f['phase']} {f['kind']}, {f['bits']:.1f} bits, {f['count']} element(s) "
                    f"({f['family']}{' ' + f['variant'] if f.get('variant') else ''}, {f.get('semantics', '')})")
            body = [f"<p>got {e(repr(f['got']))}, exact {e(repr(f['want']))}</p>"]
            if f.get("by_design"):
                body.append(f"<p class='design'>{e(f['by_design'])}</p>")
            fix = f.get("fix")
            if fix and fix.get("verified"):
                body.append(f"<p class='ok'>fix: <code>{e(fix['code'])}</code> ({fix['bits']:.1f} bits on this "
                            "input, checked)</p>")
            body.append(f"<pre>{e(f['reproducer'])}</pre>")
            out.append(f"<details><summary class='{tag}'>{e(head)}</summary>{''.join(body)}</details>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(results, output):
    records = read(results)
    with open(output, "w", encoding="utf-8") as f:
        f.write(render(records))
    return output, len(records)
