"""The README is a test: every Python block of README.md and docs/*.md runs as printed.

The marking convention is documented in docs/contributing.md ("Examples in the docs"):

* A ```python block runs in a fresh interpreter, as the file ``example.py`` in an empty
  temporary directory, and what it prints (stdout and stderr together, a traceback as
  Python prints it) must equal the untagged ``` block right after it (only blank lines
  between).  A Python block with no output block after it must print nothing.
* ``<!-- readme-test: continue -->`` before a Python block: it continues the previous
  Python block of the same page (same interpreter, same namespace; line numbers count as
  if the blocks were pasted into one file).
* ``<!-- readme-test: file=loss.py -->``: the block (and its continuations) runs as
  ``loss.py``, so printed ``file:line`` locations read as the user sees them.
* ``<!-- readme-test: pytest file=test_x.py -->``: the block is written to ``test_x.py``
  and run by ``python -m pytest -q --tb=short test_x.py``; its output block is pytest's.
* ``requires=torch,jax`` (in any marker): skipped where one of those cannot be imported.
* In an expected output, a line ``...`` matches any number of lines, and ``...`` inside a
  line matches any text in that line.
* ``<!-- readme-test: skip (reason) -->`` marks a non-Python block that is not run (shell
  commands).  Python blocks cannot be skipped.  An untagged ``` block that does not follow
  a Python block is an error: printed output in the docs is always checked (use ```text
  for diagrams and layouts).
"""
from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
PAGES = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
_MARK = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")     # indented fences (in lists) too
_KEYS = {"continue", "pytest", "skip", "file", "requires"}
TIMEOUT = 300


@dataclass
class Block:
    page: str
    line: int            # 1-based line of the opening fence
    lang: str
    text: str
    marks: dict = field(default_factory=dict)
    output: "Block | None" = None
    adjacent_next: bool = False     # the next fenced block follows after blank lines only


def parse_marks(text):
    """'continue file=loss.py requires=torch' -> {'continue': '', 'file': 'loss.py', ...};
    'skip (reason)' -> {'skip': '(reason)'}."""
    marks = {}
    if text.startswith("skip"):
        return {"skip": text[4:].strip()}
    for word in text.split():
        key, _, value = word.partition("=")
        if key not in _KEYS:
            raise ValueError(f"unknown readme-test marker {word!r}")
        marks[key] = value
    return marks


def blocks_of(page):
    """The fenced blocks of a page, each with the marker comment above it."""
    lines = open(os.path.join(ROOT, page), encoding="utf-8").read().splitlines()
    out, i, pending = [], 0, None
    while i < len(lines):
        m = _MARK.match(lines[i])
        if m:
            pending = parse_marks(m.group(1))
            i += 1
            continue
        f = _FENCE.match(lines[i])
        if f:
            indent, fence, lang, start = len(f.group(1)), f.group(2), f.group(3), i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != fence:
                body.append(lines[i][indent:] if not lines[i][:indent].strip() else lines[i])
                i += 1
            out.append(Block(page, start + 1, lang, "\n".join(body) + "\n" if body else "",
                             pending or {}))
            pending = None
            # blank lines after a block keep it adjacent to the next one
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            if i < len(lines) and _FENCE.match(lines[i]):
                out[-1].adjacent_next = True
            continue
        if lines[i].strip():
            pending = None
        i += 1
    return out


def groups_of(page):
    """Python blocks grouped into programs (a block and its continuations), each block
    with its expected output; plus the list of problems (unchecked output blocks,
    skipped Python blocks)."""
    blocks, groups, problems = blocks_of(page), [], []
    prev = None
    for b in blocks:
        if b.lang == "python":
            if "skip" in b.marks:
                problems.append(f"{page}:{b.line}: a Python block cannot be skipped; it runs as "
                                "printed or it is not in the docs")
            if "continue" in b.marks:
                if not groups:
                    problems.append(f"{page}:{b.line}: 'continue' with no Python block before")
                    groups.append([b])
                else:
                    groups[-1].append(b)
            else:
                groups.append([b])
        elif b.lang == "" and prev is not None and prev.lang == "python" and \
                prev.adjacent_next and prev.output is None:
            prev.output = b
        elif b.lang == "" and "skip" not in b.marks:
            problems.append(f"{page}:{b.line}: untagged block that is not the output of a Python "
                            "block: make it one, tag it ```text, or mark it "
                            "<!-- readme-test: skip (reason) -->")
        prev = b
    return groups, problems


def _pattern(expected):
    """Regex for an expected output: a line '...' matches any lines, '...' in a line any text."""
    parts = []
    for line in expected.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(p) for p in line.split("...")) + r"\n")
    return re.compile("".join(parts))


def _normal(text):
    return "".join(line.rstrip() + "\n" for line in text.rstrip("\n").splitlines()) if text.strip() else ""


def output_matches(got, expected):
    got, expected = _normal(got), _normal(expected)
    if "..." not in expected:
        return got == expected
    return _pattern(expected).fullmatch(got) is not None


def _env():
    import refrt
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="80", PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("REFRT_NUM_THREADS", None)
    # pytest >= 8 stops truncating its short test summary when CI or BUILD_NUMBER is set;
    # the output blocks are what a user sees at a terminal, so the examples run without them
    for name in ("CI", "BUILD_NUMBER"):
        env.pop(name, None)
    # the refrt under test: an installed package is found as it is; a source tree (built in
    # place) is put on the path
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(refrt.__file__)))
    if os.path.basename(pkg_parent) not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(
            [pkg_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


# The driver runs a program's blocks in one namespace, each compiled with the line offset
# it has in the concatenated file, and prints a separator between their outputs.  A
# traceback is printed as Python prints it, without the driver's own frame.
_DRIVER = textwrap.dedent("""
    import json, sys, traceback
    SEP = sys.argv[2]
    blocks = json.load(open(sys.argv[1]))
    ns = {"__name__": "__main__"}
    for i, (fname, offset, src) in enumerate(blocks):
        if i:
            sys.stderr.flush(); print(SEP, flush=True)
        ns["__file__"] = fname
        try:
            exec(compile("\\n" * offset + src, fname, "exec"), ns)
        except BaseException as e:
            sys.stdout.flush()
            tb = traceback.TracebackException(type(e), e, e.__traceback__.tb_next)
            sys.stderr.write("".join(tb.format()))
            sys.exit(1)
        sys.stdout.flush(); sys.stderr.flush()
""")


def _missing(marks):
    return [m for m in filter(None, marks.get("requires", "").split(","))
            if importlib.util.find_spec(m) is None]


def _pytest_args():
    from importlib.metadata import entry_points
    installed = any(ep.value == "refrt.testing.plugin" for ep in entry_points(group="pytest11"))
    if installed and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    return ["-p", "refrt.testing.plugin"]


def run_group(group, tmp):
    """Run a program (its blocks in order); returns one captured output per block."""
    first = group[0]
    fname = first.marks.get("file") or "example.py"
    if "pytest" in first.marks:
        assert len(group) == 1, "a pytest block has no continuations"
        with open(os.path.join(tmp, fname), "w") as f:
            f.write(first.text)
        open(os.path.join(tmp, "pytest.ini"), "w").write("[pytest]\n")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--tb=short",
                               "-p", "no:cacheprovider", *_pytest_args(), fname],
                              cwd=tmp, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
        return [proc.stdout]
    offsets, n = [], 0
    for b in group:
        offsets.append(n)
        n += b.text.count("\n")
    with open(os.path.join(tmp, fname), "w") as f:
        f.write("".join(b.text for b in group))            # linecache shows the source lines
    with open(os.path.join(tmp, "_blocks.json"), "w") as f:
        json.dump([[fname, o, b.text] for o, b in zip(offsets, group)], f)
    with open(os.path.join(tmp, "_driver.py"), "w") as f:
        f.write(_DRIVER)
    sep = "=====readme-test-block-separator====="
    proc = subprocess.run([sys.executable, "_driver.py", "_blocks.json", sep], cwd=tmp,
                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TIMEOUT)
    outs = proc.stdout.split(sep + "\n")
    return outs + [""] * (len(group) - len(outs))


def _cases():
    cases, problems = [], []
    for page in PAGES:
        groups, probs = groups_of(page)
        problems += probs
        for g in groups:
            cases.append(pytest.param(g, id=f"{page}:{g[0].line}"))
    return cases, problems


CASES, PROBLEMS = _cases()


@pytest.mark.parametrize("group", CASES)
def test_example_runs_as_printed(group, tmp_path):
    """Each program of the docs prints exactly its output blocks."""
    missing = _missing(group[0].marks)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    outs = run_group(group, str(tmp_path))
    for block, got in zip(group, outs):
        expected = block.output.text if block.output else ""
        if not output_matches(got, expected):
            diff = "\n".join(difflib.unified_diff(_normal(expected).splitlines(),
                                                  _normal(got).splitlines(),
                                                  "printed in the docs", "printed now",
                                                  lineterm=""))
            pytest.fail(f"{block.page}:{block.line}: the example's output differs from its "
                        f"output block{' (none: it must print nothing)' if not block.output else ''}"
                        f":\n{diff}", pytrace=False)


def test_every_output_block_is_checked():
    """No untagged block in the docs escapes the check; no Python block is skipped."""
    assert not PROBLEMS, "\n".join(PROBLEMS)


# ---- the checker itself -------------------------------------------------------------
def test_checker_parses_markers_and_outputs(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(textwrap.dedent("""\
        ```python
        x = 1
        print(x)
        ```

        ```
        1
        ```
        text
        <!-- readme-test: continue -->
        ```python
        print(x + 1)
        ```
        <!-- readme-test: skip (shell) -->
        ```
        $ pip install .
        ```
        """))
    rel = os.path.relpath(page, ROOT)
    groups, problems = groups_of(rel)
    assert not problems and len(groups) == 1 and len(groups[0]) == 2
    assert groups[0][0].output.text == "1\n" and groups[0][1].output is None
    outs = run_group(groups[0], str(tmp_path))
    assert outs == ["1\n", "2\n"]


def test_checker_fails_when_output_changes():
    assert output_matches("a\nb\n", "a\nb")
    assert not output_matches("a\nc\n", "a\nb\n")
    assert output_matches("Traceback\n  File x\n    y\nE: m\n", "Traceback\n...\nE: m\n")
    assert output_matches("took 1.25s\n", "took ...s\n")
    assert not output_matches("x\n", "")


def test_checker_reports_tracebacks_and_locations(tmp_path):
    a = Block("p.md", 1, "python", "import sys\n", {"file": "loss.py"})
    b = Block("p.md", 5, "python", "\nraise ValueError(sys.platform[:0] + 'boom')\n",
              {"continue": ""})
    outs = run_group([a, b], str(tmp_path))
    assert outs[0] == ""
    assert outs[1].startswith("Traceback (most recent call last):\n  File \"loss.py\", line 3")
    assert outs[1].rstrip().endswith("ValueError: boom")


def test_a_changed_output_in_the_readme_fails(tmp_path):
    """The check is not vacuous: the README's first program, with one printed digit
    changed in its output block, no longer matches."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    groups, _ = groups_of("README.md")
    first = groups[0]
    out = first[0].output.text
    changed = out.replace("15.000046", "15.000047", 1)
    assert changed != out
    page = tmp_path / "README.md"
    page.write_text(text.replace(out, changed, 1), encoding="utf-8")
    mutated, _ = groups_of(str(page))
    outs = run_group(mutated[0], str(tmp_path))
    assert output_matches(outs[0], first[0].output.text)
    assert not output_matches(outs[0], mutated[0][0].output.text)
