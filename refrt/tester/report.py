"""What ``refrt.check`` returns: findings, worst first, as a table and as JSON."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

KINDS = ("overflow", "underflow", "nan", "inf", "domain", "cancellation", "accuracy")


@dataclass
class Finding:
    kind: str
    phase: str                # "forward" | "gradient"
    op: str                   # registry op of the origin node
    location: str             # the user's file:line of the origin node
    bits_error: float         # of the program's output (or gradient)
    input: tuple              # the whole witnessing input of fn
    got: float
    want: float
    path: tuple               # "%slot = op @ file:line" from the origin to the output
    suggestion: str = ""
    explanation: str = ""
    verified: bool = False
    rewritten_bits: float | None = None
    bits_cancelled: float | None = None
    domain: str = ""          # for kind "domain": the argument and the domain left
    reproducer: str = ""
    element: tuple = ()       # the failing output (or gradient) element

    def __str__(self):
        where = f"{self.location}: {self.op}"
        extra = ""
        if self.bits_cancelled is not None:
            extra = f", {self.bits_cancelled:.0f} bits cancelled"
        if self.domain:
            extra = f", {self.domain}"
        head = (f"{self.phase} {self.kind} at {where}{extra}: output {self.got!r}, exact "
                f"{self.want!r} ({self.bits_error:.1f} bits of error)")
        if self.suggestion:
            head += (f"\n  use instead: {self.suggestion}  [verified: "
                     f"{self.rewritten_bits:.1f} bits on this input]")
        return head

    def to_dict(self):
        d = dict(self.__dict__)
        d["input"] = [np.asarray(a).tolist() for a in self.input]
        d["path"] = list(self.path)
        d["element"] = [int(i) for i in self.element]
        for k in ("got", "want", "bits_error", "rewritten_bits", "bits_cancelled"):
            if d[k] is not None:
                d[k] = float(d[k])
        return d


@dataclass
class Report:
    function: str
    findings: list = field(default_factory=list)
    evaluations: int = 0          # float screens
    exact_evaluations: int = 0
    seconds: float = 0.0
    bits: float = 4.0
    nodes: int = 0
    truncated: bool = False       # the time budget cut the search short
    skipped: list = field(default_factory=list)   # candidates the exact run could not take

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self):
        return {"function": self.function, "ok": self.ok, "bits": self.bits,
                "nodes": self.nodes, "evaluations": self.evaluations,
                "exact_evaluations": self.exact_evaluations, "seconds": self.seconds,
                "truncated": self.truncated, "skipped": list(self.skipped),
                "findings": [f.to_dict() for f in self.findings]}

    def __str__(self):
        head = (f"refrt.check({self.function}): {len(self.findings)} finding(s) "
                f"({self.nodes} nodes; {self.evaluations} float and {self.exact_evaluations} "
                f"exact evaluations)")
        if not self.findings:
            return head + f"\nno departure of more than {self.bits:g} bits found"
        rows = [("kind", "phase", "where", "op", "bits", "got", "exact", "use instead")]
        for f in self.findings:
            sugg = f.suggestion + (f" ({f.rewritten_bits:.1f} bits, verified)"
                                   if f.suggestion else "")
            kind = f.kind + (f" ({f.bits_cancelled:.0f} bits)" if f.bits_cancelled is not None else "")
            rows.append((kind, f.phase, short_location(f.location), f.op,
                         f"{f.bits_error:.1f}", _num(f.got), _num(f.want), sugg or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [head]
        for k, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _num(v):
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def short_location(loc):
    path, _, line = loc.rpartition(":")
    return f"{os.path.basename(path)}:{line}" if path else loc


def reproducer(fn, inputs, phase):
    """A runnable snippet: the witness as literal arrays and the check call."""
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", "fn"))
    lines = ["import numpy as np", "import refrt"]
    if mod and mod != "__main__" and "<locals>" not in name:
        lines.append(f"from {mod} import {name}")
    else:
        lines.append(f"# {name}: the function you checked (define or import it here)")
    args = []
    for i, a in enumerate(inputs):
        a = np.asarray(a)
        dt = f"np.{a.dtype.name}"
        flat = a.reshape(-1)
        vals, counts = np.unique(flat, return_counts=True) if a.size else ((), ())
        base = vals[int(np.argmax(counts))] if a.size else 0.0
        if a.size <= 16 or np.count_nonzero(flat != base) > 64:
            lines.append(f"x{i} = np.array({a.tolist()!r}, dtype={dt})")
        else:
            lines.append(f"x{i} = np.full({a.shape!r}, {float(base)!r}, dtype={dt})")
            for j in np.flatnonzero(flat != base):
                idx = tuple(int(t) for t in np.unravel_index(j, a.shape))
                lines.append(f"x{i}[{idx}] = {float(flat[j])!r}")
        args.append(f"x{i}")
    grad = ", grad=True" if phase == "gradient" else ""
    lines.append(f"print(refrt.check({name.split('.')[-1]}, {', '.join(args)}{grad}))")
    return "\n".join(lines)
