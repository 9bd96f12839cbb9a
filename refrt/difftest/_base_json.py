"""JSON forms of arrays: exact float values (repr round-trips), inf/NaN as strings."""
from __future__ import annotations

import math

import numpy as np


def _num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return v


def array_json(a):
    a = np.asarray(a)
    vals = a.astype(np.float64).ravel().tolist() if a.dtype.kind == "f" else a.ravel().tolist()
    return {"shape": list(a.shape), "dtype": "int64" if a.dtype.kind in "iu" else "float",
            "values": [_num(v) for v in vals]}


def array_from_json(d, dtype=np.float64):
    vals = [float(v) if isinstance(v, str) else v for v in d["values"]]
    return np.array(vals, dtype=np.int64 if d["dtype"] == "int64" else dtype).reshape(d["shape"])
