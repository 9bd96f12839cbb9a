"""Affine-form transformers: the ops that are linear in their abstract arguments.

``forms_linear(node, ins, F, p, symbols)`` gives the output's forms from the inputs'
(``F``), or None when the op is not linear there (the driver then gives the output a
fresh form: its interval, or a new symbol when the value is used twice).  Linear: add,
sub, neg, scale, mul/div by a constant, the dropout and mask scales with a fixed mask,
where with a constant condition, and (after non-singleton symbols are turned into
intervals, since they mix positions) sum, mean, the reduce ops, matmul with one constant
operand, linear with a constant weight, affine with a constant matrix.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .domain import Forms, combine


def _scaled(F, w):
    zero = Forms(np.zeros(F.n), sp.csr_matrix(F.C.shape), np.zeros(F.n))
    return combine(F, zero, w, 0.0, _NoSym(F.C.shape[1]))


class _NoSym:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def _pt(t):
    """A finite float point array (flat), or None."""
    if t.is_point and t.point.dtype.kind == "f" and np.all(np.isfinite(t.point)):
        return t.point.astype(np.float64).ravel()
    return None


def _reduce_matrix(shape, axis, scale=1.0):
    n = int(np.prod(shape)) if len(shape) else 1
    if axis is None:
        rows = np.zeros(n, np.int64)
        m = 1
    else:
        out_shape = shape[:axis] + shape[axis + 1:]
        m = int(np.prod(out_shape)) if out_shape else 1
        oid = np.arange(m).reshape(out_shape)
        rows = np.broadcast_to(np.expand_dims(oid, axis), shape).ravel()
    return sp.csr_matrix((np.full(n, scale), (rows, np.arange(n))), shape=(m, n))


def _matmul_matrix(a_pt, b_pt, a_shape, b_shape):
    """M with out.flat = M @ (abstract operand).flat, for a batched matmul where one
    operand is a point."""
    if b_pt is not None:                  # a abstract: out[..., i, j] = sum_k a[i,k] b[k,j]
        B = b_pt.reshape(b_shape)
        batch = B.reshape((-1,) + B.shape[-2:])
        m = a_shape[-2]
        blocks = [sp.kron(sp.identity(m), sp.csr_matrix(Bk.T)) for Bk in batch]
    else:                                 # b abstract: out = A @ b
        A = a_pt.reshape(a_shape)
        batch = A.reshape((-1,) + A.shape[-2:])
        p = b_shape[-1]
        blocks = [sp.kron(sp.csr_matrix(Ak), sp.identity(p)) for Ak in batch]
    return sp.block_diag(blocks).tocsr() if len(blocks) > 1 else blocks[0].tocsr()


def forms_linear(node, ins, F, p, sym):
    """The output's forms when the op is linear in its abstract arguments, else None."""
    op = node.op
    if op in ("add", "sub"):
        return combine(F[0], F[1], 1.0, 1.0 if op == "add" else -1.0, sym)
    if op == "neg":
        return _scaled(F[0], -1.0)
    if op == "scale":
        return _scaled(F[0], float(p["c"]))
    if op in ("mul", "fixed_mask_scale"):
        a, b = _pt(ins[0]), _pt(ins[1])
        if b is not None:
            return _scaled(F[0], b)
        if a is not None:
            return _scaled(F[1], a)
        return None
    if op == "div":
        b = _pt(ins[1])
        if b is not None and np.all(b != 0):
            return _scaled(F[0], 1.0 / b)
        return None
    if op == "fixed_inverted_dropout":
        m = ins[1].point
        if m is None:
            return None
        return _scaled(F[0], np.where(np.ravel(m) != 0, 1.0 / p["keep"], 0.0))
    if op == "where":
        if not ins[0].is_point:
            return None
        c = np.ravel(ins[0].point).astype(bool).astype(np.float64)
        return combine(F[1], F[2], c, 1.0 - c, sym)
    if op in ("sum", "mean", "reduce_sum", "reduce_mean", "row_mean"):
        shape = ins[0].shape
        axis = 1 if op == "row_mean" else p.get("axis")
        k = (int(np.prod(shape)) if axis is None else shape[axis]) if shape else 1
        scale = 1.0 / max(k, 1) if op in ("mean", "reduce_mean", "row_mean") else 1.0
        M = _reduce_matrix(shape, axis, scale)
        return F[0].concretize(sym).linear(M, sym)
    if op == "matmul":
        a, b = _pt(ins[0]), _pt(ins[1])
        if (a is None) == (b is None):
            return None
        M = _matmul_matrix(a, b, ins[0].shape, ins[1].shape)
        src = F[0] if b is not None else F[1]
        return src.concretize(sym).linear(M, sym)
    if op == "linear":
        w = _pt(ins[1])
        if w is None or len(ins[0].shape) > 2:
            return None
        W = w.reshape(ins[1].shape)
        m = ins[0].shape[0] if len(ins[0].shape) == 2 else 1
        M = sp.kron(sp.identity(m), sp.csr_matrix(W)).tocsr()
        out = F[0].concretize(sym).linear(M, sym)
        Bm = sp.kron(np.ones((m, 1)), sp.identity(W.shape[0])).tocsr()
        return combine(out, F[2].concretize(sym).linear(Bm, sym), 1.0, 1.0, sym)
    if op == "affine":
        A = _pt(ins[1])
        if A is None:
            return None
        M = sp.csr_matrix(A.reshape(ins[1].shape))
        return combine(F[0].concretize(sym).linear(M, sym), F[2], 1.0, 1.0, sym)
    return None
