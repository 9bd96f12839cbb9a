"""PyTorch entries for issue 10's indexing, recurrent and "other" ops, merged into
torch.py's table.  The cells call torch.nn.functional's fused kernels through
``torch._VF`` as nn.LSTMCell / GRUCell / RNNCell do (same weights, PyTorch's gate
layout); lstm_cell's two results are stacked as refrt's registry op stacks them.
Dropout has no torch counterpart with the same mask (torch's RNG is not SplitMix64),
so its entry applies refrt's mask through torch (mask * x / (1 - p)): it checks the
arithmetic, not the RNG."""
from __future__ import annotations

import numpy as np

from ._base import Entry


def entries(torch):
    F = torch.nn.functional
    u = lambda f, code, **kw: Entry(f, code, **kw)                                  # noqa: E731

    def cmp(fn, sym):
        return u(lambda x, y: fn(x, y).to(x.dtype), f"(x {sym} y).to(x.dtype)")

    def lstm(x, h, c, w_ih, w_hh, b_ih, b_hh):
        hn, cn = torch._VF.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
        return torch.stack([hn, cn])

    def rnn(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity):
        f = torch._VF.rnn_tanh_cell if nonlinearity == "tanh" else torch._VF.rnn_relu_cell
        return f(x, h, w_ih, w_hh, b_ih, b_hh)

    def dropout(x, p, seed, counter, training):
        if not training:
            return x
        from ...backends.float_misc import dropout_mask
        m = torch.from_numpy(dropout_mask(x.numel(), {"p": p, "seed": seed, "counter": counter})
                             .astype(bool)).reshape(x.shape).to(x.device)
        return torch.where(m, x / max(1.0 - p, 1e-6), torch.zeros_like(x))

    def angles(x, start):
        L, D = x.shape[-2], x.shape[-1]
        pos = torch.arange(L, dtype=torch.float64)[:, None] + start
        j = torch.arange(D)[None, :]
        ang = pos / torch.exp(torch.log(torch.tensor(10000.0, dtype=torch.float64))
                              * ((2 * (j // 2)).to(torch.float64) / D))
        return ang.to(x.dtype), j

    def pe(x, start):
        ang, j = angles(x, start)
        return x + torch.where(j % 2 == 0, torch.sin(ang), torch.cos(ang))

    def rope(x, start):
        ang, _ = angles(x, start)
        d = x.shape[-1]
        rot = x.clone()
        rot[..., 0:d - 1:2] = -x[..., 1::2]
        rot[..., 1::2] = x[..., 0:d - 1:2]
        return x * torch.cos(ang) + rot * torch.sin(ang)

    def gcn(adj, x, weight, bias):
        return adj @ x @ weight + bias

    return {
        "embedding": u(lambda ids, weight: F.embedding(ids, weight), "F.embedding(ids, weight)"),
        "gather": u(lambda x, index, axis: torch.gather(x, axis, index),
                    "torch.gather(x, {axis}, index)", params=("axis",)),
        "scatter_add": u(lambda x, index, src, axis: torch.scatter_add(x, axis, index, src),
                         "torch.scatter_add(x, {axis}, index, src)", params=("axis",)),
        "select": u(lambda x, axis, index: torch.select(x, axis, index),
                    "torch.select(x, {axis}, {index})", params=("axis", "index")),
        "slice": u(lambda x, axis, start, end, step: torch.narrow(x, axis, 0, x.shape[axis])[
            (slice(None),) * axis + (slice(start, end, step),)],
            "x[(slice(None),) * {axis} + (slice({start}, {end}, {step}),)]",
            params=("axis", "start", "end", "step")),
        "permute": u(lambda x, dims: torch.permute(x, tuple(range(x.dim()))[::-1] if dims is None
                                                   else dims),
                     "torch.permute(x, {dims})", params=("dims",),
                     conventions="dims=None: the axes reversed"),
        "pad": u(lambda x, pad, mode, value: F.pad(x, pad, mode=mode, value=value),
                 "F.pad(x, {pad}, mode={mode!r}, value={value})", params=("pad", "mode", "value")),
        "eq": cmp(torch.eq, "=="), "ne": cmp(torch.ne, "!="), "lt": cmp(torch.lt, "<"),
        "le": cmp(torch.le, "<="), "gt": cmp(torch.gt, ">"), "ge": cmp(torch.ge, ">="),
        "rnn_cell": u(rnn, "torch._VF.rnn_{nonlinearity}_cell(x, h, w_ih, w_hh, b_ih, b_hh)",
                      params=("nonlinearity",)),
        "lstm_cell": u(lstm, "torch.stack(torch._VF.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh))",
                       conventions="nn.LSTMCell's kernel; (h', c') stacked"),
        "gru_cell": u(lambda x, h, w_ih, w_hh, b_ih, b_hh: torch._VF.gru_cell(x, h, w_ih, w_hh,
                                                                             b_ih, b_hh),
                      "torch._VF.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)"),
        "dropout": u(dropout, "torch.where(mask, x / max(1 - {p}, 1e-6), 0)",
                     params=("p", "seed", "counter", "training"),
                     conventions="refrt's SplitMix64 mask applied through torch"),
        "gcn_layer": u(gcn, "adj @ x @ weight + bias"),
        "positional_encoding": u(pe, "x + PE(start={start}) (sin even, cos odd columns)",
                                 params=("start",), conventions="the table in the input dtype"),
        "rope": u(rope, "x * cos + rotate(x) * sin (start={start})", params=("start",),
                  conventions="TorchLean's pairs; an odd last entry kept by rotate"),
    }
