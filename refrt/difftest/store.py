"""The JSON Lines store: one record per case, appended and flushed as each case
finishes, so a campaign killed at any point (SIGKILL included) loses at most the case
in flight.  ``--resume`` reads the keys already present and skips those cases; a last
line cut off mid-write is dropped (truncated away) before appending, so no case is
duplicated and none is lost."""
from __future__ import annotations

import json
import math
import os


def _clean(v):
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def dumps(record) -> str:
    return json.dumps(_clean(record), allow_nan=False, separators=(",", ":"))


def read(path):
    """Every complete record in the file (a cut-off last line is skipped)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _truncate_partial(path):
    """Drop a last line without its newline (a write cut off by a kill)."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        pos, chunk = size, 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            if start + len(data) == size and data.endswith(b"\n"):
                return
            nl = data.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return
            pos = start
        f.truncate(0)


class Store:
    """Append-only JSON Lines writer (``None`` path: keeps records in memory only)."""

    def __init__(self, path=None, resume=False):
        self.path = path
        self.records = []
        self.done = set()
        self._f = None
        if path:
            if resume:
                _truncate_partial(path)
                self.records = read(path)
                self.done = {r["key"] for r in self.records}
            self._f = open(path, "a" if resume else "w", encoding="utf-8")

    def add(self, record):
        self.records.append(record)
        self.done.add(record["key"])
        if self._f is not None:
            self._f.write(dumps(record) + "\n")
            self._f.flush()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
