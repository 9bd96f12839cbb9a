"""Coverage of the TorchLean catalog: the data file ``refrt/coverage.toml`` rendered into
``docs/coverage.md``.

Each ``[[entry]]`` of the data file is one catalog entry (a table row of §1 and §2, a
runtime tape node name of §2.10, a bullet of §1.8/§1.11, a model of §4), keyed by its
section and its text as the catalog writes it, with:

* ``ops``: the refrt registry ops that implement it (checked against ``refrt.OPS``);
* ``by``: for entries that are not an op but a mechanism of refrt (graph inputs and
  constants, composition: ``refrt.trace``; derivatives by the tape: ``refrt.grad``);
* ``status``: ``full`` (the ops implement the entry's semantics: float32/float64
  kernels, the mp formula, and float and mp VJPs where it is differentiable),
  ``partial`` (``note`` says what is not covered), ``missing`` (no refrt op yet), or
  ``out-of-scope`` with ``reason`` one of ``ALLOWED_REASONS``;
* ``note``: one line.

Backends and VJPs are not written in the data file: they are read from the backend
tables (``FLOAT``, ``MP``, ``FLOAT_VJP``, ``MP_VJP``) when the table is rendered, so the
document cannot claim a kernel that is not bound.

``python -m refrt.coverage`` rewrites docs/coverage.md; ``--check`` exits 1 when it is
not current.  The catalog's entries are extracted by ``catalog_entries`` (the test
compares them with the data file when the catalog is available).
"""
from __future__ import annotations

import hashlib
import os
import re
import sys

from . import backends
from .registry import OPS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "coverage.toml")
DOC = os.path.join(os.path.dirname(HERE), "docs", "coverage.md")
STATUSES = ("full", "partial", "missing", "out-of-scope")
ALLOWED_REASONS = ("RL", "classical ML models", "factorizations")

# catalog sections whose table rows are entries, the bullet sections, the §2.10 list
_TABLE_SECTIONS = re.compile(r"^[12]\.\d+$")
_BULLET_SECTIONS = ("1.8", "1.11")
_HEADER_CELLS = {"Op", "OpSpec", "Node", "Graph", "Loss", "OpKind"}
_MODELS_LINE = re.compile(r"`(Mlp|Cnn|Transformer|Vit|Unet)\.lean`|`([A-Z][A-Za-z0-9]+)`")


def catalog_path():
    """The catalog: $REFRT_CATALOG, else ../shared/reference next to the checkout."""
    env = os.environ.get("REFRT_CATALOG")
    if env:
        return env
    root = os.path.dirname(HERE)
    for up in (os.path.join(root, "..", "shared"), os.path.join(root, "..", "..", "shared")):
        p = os.path.join(up, "reference", "torchlean_catalog.md")
        if os.path.exists(p):
            return os.path.abspath(p)
    return None


def catalog_entries(text):
    """``[(section, name)]`` in catalog order: §1/§2 table rows (first cell), the §2.10
    node names, the §1.8 and §1.11 bullets (their bold or first phrase) and the §4
    models."""
    out, sec, pending = [], None, []
    for line in text.splitlines():
        m = re.match(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if m:
            sec = m.group(1)
            continue
        if sec is None:
            continue
        if line.startswith("| ") and _TABLE_SECTIONS.match(sec):
            first = line.strip().strip("|").split("|")[0].strip()
            if first in _HEADER_CELLS or set(first) <= set("-: "):
                continue
            out.append((sec, first))
        elif sec == "2.10" and (line.startswith("Node names") or pending):
            pending.append(line)
            if "`, plus" in line:        # the list ends: "...`, plus `broadcastTo`, ..."
                body = " ".join(pending).split("strings):", 1)[1]
                listed, extra = body.split("`, plus", 1)
                listed += "`"
                names = " ".join(re.findall(r"`([^`]+)`", listed)).split()
                names += re.findall(r"`([^`]+)`", extra.split(".")[0] + ".")
                out.extend(("2.10", n) for n in names)
                pending = []
        elif sec in _BULLET_SECTIONS and line.startswith("* "):
            out.append((sec, _bullet_name(line)))
        elif sec == "4" and line.startswith("* `Spec/Models`"):
            out.extend(("4", n) for n in _models(line))
        elif sec == "4" and out and out[-1][0] == "4" and line.startswith("  "):
            out.extend(("4", n) for n in _models(line))
    return out


def _bullet_name(line):
    m = re.match(r"\* \*\*([^*]+)\*\*", line) or re.match(r"\* `([^`]+)`", line) \
        or re.match(r"\* ([^:(]+)", line)
    return m.group(1).strip().rstrip(":")


def _models(line):
    """The model files named in a §4 line (``Mlp.lean`` or `` `Gan` ``), not the
    definitions inside parentheses."""
    line = re.sub(r"\([^)]*\)", "", line)
    return [m.group(1) for m in re.finditer(r"`([A-Z][A-Za-z0-9]*)(?:\.lean)?`", line)]


def load(path=DATA):
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return data.get("entry", []), data.get("catalog_sha256", "")


def catalog_sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def op_support(name):
    """``(backends, vjp)`` of one registry op from the bound backend tables."""
    backends.load()
    have = [b for b, table in (("f32/f64", backends.FLOAT), ("mp", backends.MP))
            if name in table]
    spec = OPS[name]
    if not spec.vjp:
        vjp = "n/a"
    else:
        vjp = "+".join(b for b, table in (("float", backends.FLOAT_VJP),
                                          ("mp", backends.MP_VJP)) if name in table) or "none"
    return have, vjp


def problems(entries):
    """Every inconsistency of the data file: unknown ops, bad statuses, an entry with
    neither an op nor an allowed out-of-scope reason, ``full`` entries whose ops lack a
    backend or a VJP."""
    out = []
    for e in entries:
        key = f"§{e.get('section')} {e.get('name')!r}"
        status, ops_ = e.get("status"), e.get("ops", [])
        if status not in STATUSES:
            out.append(f"{key}: status {status!r} (expected one of {', '.join(STATUSES)})")
            continue
        unknown = [o for o in ops_ if o not in OPS]
        if unknown:
            out.append(f"{key}: ops {', '.join(unknown)} are not in the registry")
        if status == "out-of-scope":
            if e.get("reason") not in ALLOWED_REASONS:
                out.append(f"{key}: out-of-scope reason {e.get('reason')!r} (allowed: "
                           f"{', '.join(ALLOWED_REASONS)})")
            continue
        if status in ("full", "partial") and not ops_ and not e.get("by"):
            out.append(f"{key}: status {status} without a refrt op (or a 'by' mechanism)")
        if status == "missing" and (ops_ or not e.get("note")):
            out.append(f"{key}: missing entries list no ops and say in a note what is absent")
        if status == "partial" and not e.get("note"):
            out.append(f"{key}: partial without a note saying what is missing")
        if status == "full":
            for o in ops_:
                if o not in OPS:
                    continue
                have, vjp = op_support(o)
                if have != ["f32/f64", "mp"] or vjp in ("none", "float", "mp"):
                    out.append(f"{key}: full, but {o} has backends {have} and VJP {vjp}")
    return out


def figures(entries):
    counts = {s: 0 for s in STATUSES}
    for e in entries:
        counts[e["status"]] += 1
    counts["total"] = len(entries)
    counts["in_scope"] = len(entries) - counts["out-of-scope"]
    return counts


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(entries, sha=""):
    f = figures(entries)
    lines = [
        "# Coverage of the TorchLean catalog",
        "",
        "<!-- generated by `python -m refrt.coverage` from refrt/coverage.toml; do not edit -->",
        "",
        f"{f['total']} catalog entries (every table row of §1 and §2, the §2.10 runtime "
        "node names, the §1.8/§1.11 bullets and the §4 models of "
        "`torchlean_catalog.md`"
        + (f", sha256 `{sha[:12]}`" if sha else "") + "):",
        "",
        "| status | entries |",
        "|---|---|",
        f"| full | {f['full']} |",
        f"| partial | {f['partial']} |",
        f"| missing | {f['missing']} |",
        f"| out of scope (RL, classical ML models, factorizations) | {f['out-of-scope']} |",
        "",
        f"In scope: {f['in_scope']}; full {f['full']} "
        f"({100.0 * f['full'] / max(f['in_scope'], 1):.0f}%), partial {f['partial']}, "
        f"missing {f['missing']}.",
        "",
        "`full`: the refrt ops implement the entry (float32/float64 kernels, mp formula, "
        "float and mp VJPs where differentiable); `partial`: the note says what is not "
        "covered.  Backends and VJPs are read from the bound backend tables.",
        "",
    ]
    section = None
    for e in entries:
        if e["section"] != section:
            section = e["section"]
            lines += ["", f"## §{section}", "", "| entry | refrt ops | backends | VJP | status | note |",
                      "|---|---|---|---|---|---|"]
        bs, vs = [], []
        for o in e.get("ops", []):
            if o in OPS:
                have, vjp = op_support(o)
                bs.append("+".join(have) or "none")
                vs.append(vjp)
        be = ", ".join(sorted(set(bs))) if bs else ""
        vj = ", ".join(sorted(set(vs))) if vs else ""
        ops_ = ", ".join([f"`{o}`" for o in e.get("ops", [])] +
                         ([e["by"]] if e.get("by") else []))
        note = e.get("reason", "") if e["status"] == "out-of-scope" else e.get("note", "")
        lines.append(f"| {_cell(e['name'])} | {ops_} | {be} | {vj} | {e['status']} | "
                     f"{_cell(note)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    entries, sha = load()
    text = render(entries, sha)
    if "--check" in argv:
        current = open(DOC).read() if os.path.exists(DOC) else ""
        if current != text:
            print("docs/coverage.md is not current: run python -m refrt.coverage")
            return 1
        return 0
    with open(DOC, "w") as f:
        f.write(text)
    print(f"wrote {DOC}: {figures(entries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
