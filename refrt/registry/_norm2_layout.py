"""Where each norm2 op's normalised sets lie: x as rows (R, D), gamma/beta broadcast to
the same rows, and the reduction of per-element products back to gamma's shape.

Shared by the float bindings (``float_norm2``), the mp formulas (``mp_norm2``) and the
VJP condition budget (``norm2.vjp_terms``), so all
see the same sets.  Pure data movement (reshape, transpose, broadcast): it works on float
and object arrays alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Layout:
    rows: Callable          # x-shaped array -> (R, D)
    unrows: Callable        # (R, D) -> x-shaped array
    expand: Callable        # gamma-shaped array -> (R, D)
    reduce_view: Callable   # (R, D) products -> (P, M): sum over axis 1 gives gamma's values
    unreduce: Callable      # (P,) -> gamma's shape
    centred: bool
    mean: bool



def layout(name, x_shape, params):
    shape = tuple(x_shape)
    if name == "batch_norm":
        if params["channel_axis"] == 1:
            N, C = shape[0], shape[1]
        else:
            N, C = 1, shape[0]
        S = int(np.prod(shape[params["channel_axis"] + 1:], dtype=np.int64))

        def rows(a):
            return np.asarray(a).reshape(N, C, S).transpose(1, 0, 2).reshape(C, N * S)

        def unrows(y):
            return np.asarray(y).reshape(C, N, S).transpose(1, 0, 2).reshape(shape)
        per = lambda p: np.broadcast_to(np.asarray(p).reshape(C, 1), (C, N * S))  # noqa: E731
        return Layout(rows, unrows, per, lambda prod: prod, lambda v: v.reshape(C), True, True)
    if name in ("group_norm", "instance_norm"):
        N, C = shape[0], shape[1]
        G = C if name == "instance_norm" else params["num_groups"]
        Cg = C // G
        S = int(np.prod(shape[2:], dtype=np.int64))

        def per(p):
            p4 = np.broadcast_to(np.asarray(p).reshape(1, G, Cg, 1), (N, G, Cg, S))
            return p4.reshape(N * G, Cg * S)

        def red(prod):
            return np.asarray(prod).reshape(N, G, Cg, S).transpose(1, 2, 0, 3).reshape(C, N * S)
        return Layout(lambda a: np.asarray(a).reshape(N * G, Cg * S),
                      lambda y: np.asarray(y).reshape(shape), per, red,
                      lambda v: v.reshape(C), True, True)
    if name == "rms_norm":
        D = shape[-1]
        R = int(np.prod(shape[:-1], dtype=np.int64))
        return Layout(lambda a: np.asarray(a).reshape(R, D), lambda y: np.asarray(y).reshape(shape),
                      lambda p: np.broadcast_to(np.asarray(p).reshape(1, D), (R, D)),
                      lambda prod: np.asarray(prod).T, lambda v: v.reshape(D), False, True)
    if name == "weight_norm":
        O = shape[0]
        M = int(np.prod(shape[1:], dtype=np.int64))
        return Layout(lambda a: np.asarray(a).reshape(O, M), lambda y: np.asarray(y).reshape(shape),
                      lambda p: np.broadcast_to(np.asarray(p).reshape(O, 1), (O, M)),
                      lambda prod: prod, lambda v: v.reshape(O), False, False)
    if name == "normalize_along_dim":
        d = params["dim"]
        moved = tuple(s for i, s in enumerate(shape) if i != d) + (shape[d],)
        D = shape[d]
        R = int(np.prod(moved[:-1], dtype=np.int64))

        def rows(a):
            return np.moveaxis(np.asarray(a), d, -1).reshape(R, D)

        def unrows(y):
            return np.moveaxis(np.asarray(y).reshape(moved), -1, d)
        return Layout(rows, unrows, rows, lambda prod: np.asarray(prod).reshape(-1, 1),
                      lambda v: unrows(v.reshape(R, D)), True, True)
    raise KeyError(name)


OPS = ("batch_norm", "group_norm", "instance_norm", "rms_norm", "weight_norm",
       "normalize_along_dim")
HAS_BETA = {"batch_norm": True, "group_norm": True, "instance_norm": True, "rms_norm": False,
            "weight_norm": False, "normalize_along_dim": True}
