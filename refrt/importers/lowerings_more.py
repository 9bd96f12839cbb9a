"""Lowerings of recurrent layers, indexing, padding, comparison masks and dropout
(see ``lowerings`` for the conventions)."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..registry import OPS
from ._values import _is_traced, _shape


def _lstm(row, b, node):
    """nn.LSTM (batch_first or not) unrolled: per layer and step one lstm_cell in
    PyTorch's gate layout; returns (output, h_n, c_n) as aten.lstm does."""
    x = b["input"]
    h0, c0 = b["hx"]
    params = list(b["params"])
    layers = int(b["num_layers"])
    batch_first = bool(b["batch_first"])
    xs = _shape(x)
    steps = xs[1] if batch_first else xs[0]
    hs, cs = [], []
    seq = [ops.select(x, axis=1 if batch_first else 0, index=t) for t in range(steps)]
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = params[4 * layer: 4 * layer + 4]
        h = ops.select(h0, axis=0, index=layer) if _is_traced(h0) else np.ascontiguousarray(h0[layer])
        c = ops.select(c0, axis=0, index=layer) if _is_traced(c0) else np.ascontiguousarray(c0[layer])
        out = []
        for t in range(steps):
            h, c = ops.lstm_cell(seq[t], h, c, w_ih, w_hh, b_ih, b_hh)
            out.append(h)
        seq = out
        hs.append(h)
        cs.append(c)
    stack_axis = 1 if batch_first else 0
    output = _stack(seq, stack_axis)
    return output, _stack(hs, 0), _stack(cs, 0)


def _stack(values, axis):
    ex = [ops.reshape(v, shape=_shape(v)[:axis] + (1,) + _shape(v)[axis:]) for v in values]
    y = ex[0]
    for v in ex[1:]:
        y = ops.concat(y, v, axis=axis)
    return y


def _lstm_support(row, b):
    missing = [op for op in ("select", "lstm_cell", "concat") if op not in OPS]
    return f"refrt has no op {', '.join(map(repr, missing))}" if missing else None


LOWERINGS = {"lstm": _lstm}
SUPPORT = {"lstm": _lstm_support}
