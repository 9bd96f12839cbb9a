"""Unrolled recurrent layers and n-ary concatenation, written with ``refrt.ops`` (so they
trace, differentiate with ``refrt.grad`` and run on every backend like any user
program): one cell per time step, torch.nn.RNN / GRU / LSTM semantics for one layer,
unidirectional, sequence-first input (T, N, I) (``batch_first=False``, torch's
default) or unbatched (T, I).

``cat(arrays, axis)`` / ``stack(arrays, axis)`` join any number of arrays with the
registry's binary ``concat`` in a balanced tree (log2(n) levels of exact copies).
"""
from __future__ import annotations

from . import ops

__all__ = ["cat", "stack", "rnn", "gru", "lstm"]


def cat(arrays, axis=0):
    """torch.cat / n-ary concatenation: a balanced tree of binary ``concat`` nodes."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("cat: argument 'arrays' expected at least one array, got none")
    while len(arrays) > 1:
        nxt = [ops.concat(arrays[k], arrays[k + 1], axis=axis)
               for k in range(0, len(arrays) - 1, 2)]
        if len(arrays) % 2:
            nxt.append(arrays[-1])
        arrays = nxt
    return arrays[0]


def stack(arrays, axis=0):
    """torch.stack: each array gets a new axis of length 1 (reshape), then ``cat``."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: argument 'arrays' expected at least one array, got none")
    out = []
    for a in arrays:
        shape = tuple(a.shape)
        k = axis % (len(shape) + 1)
        out.append(ops.reshape(a, shape=shape[:k] + (1,) + shape[k:]))
    return cat(out, axis=axis)


def _steps(x):
    return [ops.select(x, axis=0, index=t) for t in range(x.shape[0])]


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """torch.nn.RNN (one layer): ``(outputs (T, N, H), h_T)``."""
    h, outs = h0, []
    for xt in _steps(x):
        h = ops.rnn_cell(xt, h, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity)
        outs.append(h)
    return stack(outs), h


def gru(x, h0, w_ih, w_hh, b_ih, b_hh):
    """torch.nn.GRU (one layer): ``(outputs (T, N, H), h_T)``."""
    h, outs = h0, []
    for xt in _steps(x):
        h = ops.gru_cell(xt, h, w_ih, w_hh, b_ih, b_hh)
        outs.append(h)
    return stack(outs), h


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """torch.nn.LSTM (one layer): ``(outputs (T, N, H), (h_T, c_T))``."""
    h, c, outs = h0, c0, []
    for xt in _steps(x):
        h, c = ops.lstm_cell(xt, h, c, w_ih, w_hh, b_ih, b_hh)
        outs.append(h)
    return stack(outs), (h, c)
