"""The coverage table (refrt/coverage.toml -> docs/coverage.md) is machine-checked:

* every entry names registry ops that exist, a valid status, and an op (or a refrt
  mechanism) unless it is out of scope for an allowed reason or declared missing;
* ``full`` entries' ops have float and mp kernels and VJPs bound;
* the entries are exactly the catalog's (when the catalog is available: it lives in
  ../shared/reference, outside the repository; the data file records its sha256);
* docs/coverage.md is the current rendering, and the README states its figures;
* no entry is missing: each has a refrt op or an allowed out-of-scope reason.
"""
import os
import re

import pytest

from refrt import coverage

ENTRIES, SHA = coverage.load()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def test_every_entry_is_consistent():
    assert coverage.problems(ENTRIES) == []


def test_every_entry_has_an_op_or_an_allowed_reason():
    # the rule: an entry has a refrt op (or mechanism), or is out of scope for an
    # allowed reason; "missing" is no longer an accepted status (0 since issue 10)
    bad = []
    for e in ENTRIES:
        if e["status"] == "out-of-scope":
            if e.get("reason") not in coverage.ALLOWED_REASONS:
                bad.append(f"§{e['section']} {e['name']}: reason {e.get('reason')!r}")
        elif e["status"] == "missing" or not (e.get("ops") or e.get("by")):
            bad.append(f"§{e['section']} {e['name']}: {e['status']} without a refrt op")
    assert not bad, "\n".join(bad)


def test_problems_detects_bad_entries():
    bad = [{"section": "1.1", "name": "x", "ops": ["no_such_op"], "status": "full"},
           {"section": "1.1", "name": "y", "ops": [], "status": "partial", "note": "n"},
           {"section": "1.1", "name": "z", "ops": [], "status": "out-of-scope",
            "reason": "too hard"},
           {"section": "1.1", "name": "w", "ops": ["add"], "status": "done"}]
    found = coverage.problems(bad)
    assert any("no_such_op" in p for p in found)
    assert any("without a refrt op" in p for p in found)
    assert any("out-of-scope reason 'too hard'" in p for p in found)
    assert any("status 'done'" in p for p in found)


def test_entries_are_the_catalogs():
    path = coverage.catalog_path()
    if path is None:
        pytest.skip("the TorchLean catalog is not next to this checkout (set REFRT_CATALOG)")
    text = open(path, encoding="utf-8").read()
    want = coverage.catalog_entries(text)
    got = [(e["section"], e["name"]) for e in ENTRIES]
    assert got == want
    assert SHA == coverage.catalog_sha256(text)


def test_catalog_parser_on_a_sample():
    text = "\n".join([
        "### 1.1 Elementwise", "| Op | Arity |", "|---|---|", "| `addSpec` | 2 |",
        "### 1.8 Attention", "* **mask true = allowed.**", "* `causalMask n` (true iff j <= i)",
        "### 2.10 Runtime",
        "Node names (the `name :=` strings): `sigmoid tanh",
        "relu`, plus `broadcastTo`, `conv`/`conv2d`. These nodes call the specs.",
        "## 4. Layers", "* `Spec/Models`: `Mlp.lean` (`mlpSpec`: Linear), `Gnn` (2-layer),",
        "  `Svm`, `Knn`.", "## 5. Float"])
    assert coverage.catalog_entries(text) == [
        ("1.1", "`addSpec`"), ("1.8", "mask true = allowed."), ("1.8", "causalMask n"),
        ("2.10", "sigmoid"), ("2.10", "tanh"), ("2.10", "relu"), ("2.10", "broadcastTo"),
        ("2.10", "conv"), ("2.10", "conv2d"), ("4", "Mlp"), ("4", "Gnn"), ("4", "Svm"),
        ("4", "Knn")]


def test_rendered_doc_is_current():
    # the repository's docs (an installed refrt has no docs/ beside it)
    with open(os.path.join(ROOT, "docs", "coverage.md"), encoding="utf-8") as f:
        assert f.read() == coverage.render(ENTRIES, SHA), \
            "docs/coverage.md is stale: run python -m refrt.coverage"


def test_readme_states_the_tables_figures():
    f = coverage.figures(ENTRIES)
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    claim = (f"{f['full']} of the catalog's {f['total']} entries are fully covered, "
             f"{f['partial']} partly, {f['missing']} are missing and {f['out-of-scope']} "
             "are out of scope")
    assert claim in re.sub(r"\s+", " ", readme), claim
    assert "every TorchLean spec op" not in readme.replace("\n", " ")
