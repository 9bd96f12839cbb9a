"""The small commands and the traps a new user meets first (issue 13)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import refrt
from refrt import cli, families
from refrt.registry import OPS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def test_version(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")                    # one line, never wrapped
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"refrt {refrt.__version__} (") and "mpmath" in out
    assert out.count("\n") == 1


def test_version_matches_pyproject():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert re.search(r'^version = "(.*)"$', text, re.M).group(1) == refrt.__version__


@pytest.mark.parametrize("argv", [["selfcheck", "--seeds", "0"], ["selfcheck", "--seeds", "-1"],
                                  ["selfcheck", "--dtypes", ""], ["selfcheck", "--dtypes", "int8"],
                                  ["selfcheck", "--ops", ","]])
def test_empty_selection_is_an_error(argv, capsys):
    """Checking nothing is not a pass."""
    with pytest.raises(SystemExit) as e:
        cli.main(argv + ["--no-zoo"])
    assert e.value.code != 0
    assert "within tolerance" not in capsys.readouterr().out


def test_run_check_refuses_an_empty_selection():
    with pytest.raises(cli.UsageError, match="nothing to check"):
        cli.run_check([OPS["exp"]], ["float32"], 0)
    with pytest.raises(cli.UsageError):
        cli.run_check([], ["float32"], 1)


def test_every_family_has_a_legend_line():
    lines = cli._family_legend(set(families.FAMILIES))
    assert len(lines) == len(families.FAMILIES) + 1
    assert not [line for line in lines if "(undocumented)" in line]


def test_check_table_has_a_legend_and_unbroken_names(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    assert cli.main(["selfcheck", "--ops", "cross_entropy_probs,batch_norm_inference",
                     "--seeds", "1", "--no-zoo"]) == 0
    out = capsys.readouterr().out
    assert "worst family: the input family" in out
    table = out.split("worst family: the input family")[0]
    for name in ("cross_entropy_probs", "batch_norm_inference"):
        assert re.search(rf"│ {name} +│", table), table
    for fam in re.findall(r"│ (\w+) +│\n", table):
        assert fam == "-" or f"  {fam}  " in out            # every shown family explained


def test_zoo_never_breaks_a_word():
    from rich.console import Console
    from refrt.bugzoo import run_all, stable_alternative
    console = Console(width=110, record=True, file=open(os.devnull, "w"))   # as in `check`
    cli.print_zoo(console)
    text = console.export_text()
    cells = [c.strip() for line in text.splitlines() for c in line.split("│")[1:-1]]
    words = set(" ".join(cells).split())
    for r in run_all():
        for w in (r.case.name + " " + stable_alternative(r.case.op)).split():
            assert w in words, (w, text)
    assert max(len(line) for line in text.splitlines()) <= 110
    assert "…" not in text                                    # nothing cut off either


def test_docs_write_into_the_repository_only_when_run_there(tmp_path, monkeypatch, capsys):
    from refrt.docs import repository_docs_dir
    assert repository_docs_dir(ROOT) == os.path.join(ROOT, "docs")
    assert repository_docs_dir(str(tmp_path)) is None
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(["docs", "--seeds", "1"])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_source_tree_without_kernels_says_so(tmp_path):
    """Importing refrt from a clone that is not built in place gives one clear message."""
    shutil.copytree(os.path.join(ROOT, "refrt"), tmp_path / "refrt",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    proc = subprocess.run([sys.executable, "-c", "import refrt"], cwd=tmp_path,
                          capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: refrt is imported from its source tree (")
    assert ("which has no compiled kernels" in last and
            "run from another directory or `pip install -e .`" in last)


def test_ci_installs_what_the_tests_need():
    """.ci/run installs the test and torch extras (the pinned CPU wheel) in one step."""
    run = open(os.path.join(ROOT, ".ci", "run")).read()
    assert re.search(r'pip install [^\n]*"\.\[test,torch\]"', run)
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert 'torch = ["torch==2.13.0"' in text
