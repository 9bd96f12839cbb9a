"""Tape-node shape and matrix ops (TorchLean §2.3 affine, §2.4 matrix nodes, §2.6
reduction and shape nodes).

The pure re-indexing ops are exact (0 ulp).  The ones that add (reduce_sum, reduce_mean,
row_mean, affine, and every broadcast's VJP) use the compensated kernels of
reductions/linalg.  Where TorchLean fixes a rank (broadcast_row on vectors,
transpose3dLastTwo on 3-d arrays) refrt accepts the natural generalisation and says so;
parameters without a TorchLean default get a small documented one.
"""
from __future__ import annotations

import math

import numpy as np

from . import _shapes
from ._spec import Arg, Case, OpSpec, Param, Tol
from ..errors import bad_value

INF, NAN = math.inf, math.nan
EXACT = Tol(float32=0, float64=0)
SUM_TOL = Tol(float32=2, float64=2)
X = (Arg("x"),)


def _need_ndim(spec, x, ndim, exact=True):
    if (x.ndim != ndim) if exact else (x.ndim < ndim):
        want = f"a {ndim}-d array" if exact else f"an array of at least {ndim} dimensions"
        raise bad_value(spec.name, "x", want, f"shape {x.shape}")


def _count(spec, name, value):
    if value < 0:
        raise bad_value(spec.name, name, "a size >= 0", value)
    return value


def _shape_param(spec, name, value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise bad_value(spec.name, name, "a tuple of integers", repr(value))
    return tuple(int(v) for v in value)


# ---- shape rules: rule(spec, arrays, params) -> output shape --------------------------

def _transpose(spec, arrays, params):
    _need_ndim(spec, arrays[0], 2)
    return arrays[0].shape[::-1]


def _broadcast_row(spec, arrays, params):
    return arrays[0].shape + (_count(spec, "n", params["n"]),)


def _broadcast_col(spec, arrays, params):
    return (_count(spec, "m", params["m"]),) + arrays[0].shape


def _row_mean(spec, arrays, params):
    _need_ndim(spec, arrays[0], 2)
    return arrays[0].shape[:1]


def _broadcast_to(spec, arrays, params):
    x = arrays[0]
    if params["shape"] is None:
        params["shape"] = x.shape
    shape = _shape_param(spec, "shape", params["shape"])
    ok = len(shape) >= x.ndim and all(
        s == t or s == 1 for s, t in zip(x.shape[::-1], shape[::-1])) and min(shape, default=0) >= 0
    if not ok:
        raise bad_value(spec.name, "shape", f"a shape that {x.shape} broadcasts to (trailing "
                        "dimensions equal or 1 in x)", shape)
    params["shape"] = shape
    return shape


def _concat(spec, arrays, params):
    a, b = arrays
    if a.ndim == 0 or a.ndim != b.ndim:
        raise bad_value(spec.name, "b", f"an array of the same rank (>= 1) as a {a.shape}",
                        f"shape {b.shape}")
    axis = _shapes.normalize_axis(spec, "axis", params["axis"], a.ndim)
    params["axis"] = axis
    if a.shape[:axis] + a.shape[axis + 1:] != b.shape[:axis] + b.shape[axis + 1:]:
        raise bad_value(spec.name, "b", f"shape {a.shape} except along axis {axis}",
                        f"shape {b.shape}")
    return a.shape[:axis] + (a.shape[axis] + b.shape[axis],) + a.shape[axis + 1:]


def _reshape(spec, arrays, params):
    x = arrays[0]
    if params["shape"] is None:
        params["shape"] = x.shape
    shape = list(_shape_param(spec, "shape", params["shape"]))
    free = [i for i, s in enumerate(shape) if s == -1]
    known = math.prod(s for s in shape if s != -1)
    if len(free) > 1 or any(s < -1 for s in shape):
        raise bad_value(spec.name, "shape", "sizes >= 0 with at most one -1", tuple(shape))
    if free:
        if known == 0 or x.size % known:
            raise bad_value(spec.name, "shape", f"a shape with {x.size} elements", tuple(shape))
        shape[free[0]] = x.size // known
    if math.prod(shape) != x.size:
        raise bad_value(spec.name, "shape", f"a shape with {x.size} elements (x is {x.shape})",
                        tuple(shape))
    params["shape"] = tuple(shape)
    return tuple(shape)


def _flatten(spec, arrays, params):
    return (arrays[0].size,)


def _swap_first_two(spec, arrays, params):
    x = arrays[0]
    _need_ndim(spec, x, 2, exact=False)
    return (x.shape[1], x.shape[0]) + x.shape[2:]


def _transpose_last_two(spec, arrays, params):
    x = arrays[0]
    _need_ndim(spec, x, 2, exact=False)
    return x.shape[:-2] + (x.shape[-1], x.shape[-2])


def _along_one_axis(spec, arrays, params):
    x = arrays[0]
    if x.ndim == 0:
        raise bad_value(spec.name, "x", "an array of at least 1 dimension", "a 0-d array")
    params["axis"] = _shapes.normalize_axis(spec, "axis", params["axis"], x.ndim)
    return x.shape[:params["axis"]] + x.shape[params["axis"] + 1:]


def _affine(spec, arrays, params):
    x, a, b = arrays
    if a.ndim != 2 or a.shape[1] != x.size:
        raise bad_value(spec.name, "A", f"a 2-d (out, {x.size}) matrix (x has {x.size} "
                        "elements)", f"shape {a.shape}")
    if b.shape != (a.shape[0],):
        raise bad_value(spec.name, "b", f"shape ({a.shape[0]},)", f"shape {b.shape}")
    return (a.shape[0],)


def _op(name, signature, doc, shape, tol=EXACT, args=X, params=(), cases=(), vjp="",
        torchlean="", kind="shape", **kw):
    return OpSpec(name=name, signature=signature, kind=kind, args=args, doc=doc, tol=tol,
                  special_cases=tuple(cases), params=tuple(params), vjp=vjp, shape=shape,
                  torchlean=torchlean, **kw)


M22 = ((1.0, 2.0), (3.0, 4.0))

SPECS = [
    _op("transpose", "transpose(x) -> y", "matrix transpose of a 2-d array (exact)",
        _transpose, cases=[Case((M22,), 1.0), Case((((-0.0, 1.0),),), -0.0),
                           Case((((NAN, 1.0),),), NAN)],
        vjp="x: g^T", torchlean="matrixTransposeSpec / matrixTranspose node"),
    _op("broadcast_row", "broadcast_row(x, n=3) -> y",
        "x (m,) -> (m, n) with row i constant x_i; any shape s -> (s..., n) (a new last "
        "axis; TorchLean takes vectors).  n has no TorchLean default; 3 is refrt's",
        _broadcast_row, params=(Param("n", 3, "int", "length of the new last axis"),),
        cases=[Case(((2.0, 5.0),), 2.0), Case(((-INF,),), -INF)],
        vjp="x: sum(g, -1) (row sums, compensated)", torchlean="broadcastRow node"),
    _op("broadcast_col", "broadcast_col(x, m=3) -> y",
        "x (n,) -> (m, n) with x copied to every row; any shape s -> (m, s...) (a new first "
        "axis).  m has no TorchLean default; 3 is refrt's", _broadcast_col,
        params=(Param("m", 3, "int", "length of the new first axis"),),
        cases=[Case(((2.0, 5.0),), 2.0), Case(((NAN,),), NAN)],
        vjp="x: sum(g, 0) (column sums, compensated)", torchlean="broadcastCol node"),
    _op("row_mean", "row_mean(x) -> y", "(m, n) -> (m,): the mean of each row, compensated "
        "sum / n (n = 0 divides by 1)", _row_mean, tol=SUM_TOL,
        cases=[Case((M22,), 1.5), Case((((INF, 1.0),),), INF)],
        vjp="x: broadcast(g / n)", torchlean="rowMean node"),
    _op("broadcast_to", "broadcast_to(x, shape=None) -> y",
        "NumPy broadcasting (trailing dimensions aligned; a dimension of 1 repeats); "
        "shape=None keeps x's shape", _broadcast_to,
        params=(Param("shape", None, "shape", "target shape"),),
        cases=[Case(((7.0,),), 7.0, params={"shape": (2, 3)}),
               Case(((-0.0, 1.0),), -0.0, params={"shape": (4, 2)})],
        vjp="x: g summed over the broadcast dimensions (compensated)",
        torchlean="broadcastTo / broadcastTo node (reduceFromBroadcastTo)"),
    _op("reduce_sum", "reduce_sum(x, axis=-1) -> y", "sum along one axis (Neumaier-"
        "compensated, as sum)", _along_one_axis, tol=SUM_TOL, kind="reduction",
        params=(Param("axis", -1, "axis", "the reduced axis"),),
        cases=[Case(((1.0, 1e-30, -1.0),), 1e-30), Case(((INF, -INF),), NAN),
               Case(((),), 0.0)],
        vjp="x: broadcast(g) along axis", torchlean="reduceSum axis / reduceSum node"),
    _op("reduce_mean", "reduce_mean(x, axis=-1) -> y", "reduce_sum / size of that axis "
        "(1 if it is 0, TorchLean getDimSize)", _along_one_axis, tol=SUM_TOL,
        kind="reduction", params=(Param("axis", -1, "axis", "the reduced axis"),),
        cases=[Case(((1.0, 2.0),), 1.5), Case(((),), 0.0)],
        vjp="x: broadcast(g) / size(axis)", torchlean="reduceMean axis / reduceMean node"),
    _op("concat", "concat(a, b, axis=0) -> y", "a then b along axis (TorchLean "
        "concatLeadingAxis for axis=0)", _concat, args=(Arg("a"), Arg("b")),
        params=(Param("axis", 0, "axis", "the joined axis"),),
        cases=[Case(((1.0,), (2.0, 3.0)), 1.0), Case(((-0.0,), (NAN,)), -0.0)],
        vjp="a: g[:len(a)] along axis; b: the rest", torchlean="concatLeadingAxis node"),
    _op("reshape", "reshape(x, shape=None) -> y", "row-major reshape (one -1 entry is "
        "inferred); shape=None keeps x's shape", _reshape,
        params=(Param("shape", None, "shape", "new shape with x.size elements"),),
        cases=[Case((M22,), 1.0, params={"shape": (4,)}),
               Case(((NAN, 1.0),), NAN, params={"shape": (2, 1)})],
        vjp="x: reshape(g, x.shape)", torchlean="reshape node"),
    _op("flatten", "flatten(x) -> y", "row-major reshape to 1-d", _flatten,
        cases=[Case((M22,), 1.0), Case((((-0.0,),),), -0.0)],
        vjp="x: reshape(g, x.shape)", torchlean="flatten node"),
    _op("swap_first_two", "swap_first_two(x) -> y", "(m, n, rest...) -> (n, m, rest...)",
        _swap_first_two, cases=[Case((M22,), 1.0), Case((((NAN, 1.0),),), NAN)],
        vjp="x: swap_first_two(g)", torchlean="swapFirstTwo3d node"),
    _op("transpose_last_two", "transpose_last_two(x) -> y",
        "(..., b, c) -> (..., c, b); TorchLean's node is 3-d (a, b, c) -> (a, c, b), refrt "
        "accepts any rank >= 2", _transpose_last_two,
        cases=[Case(((M22, M22),), 1.0), Case(((((INF, 1.0),),),), INF)],
        vjp="x: transpose_last_two(g)", torchlean="transpose3dLastTwo node"),
    _op("affine", "affine(x, A, b) -> y", "A @ x.ravel() + b with a fixed (out, x.size) "
        "matrix A: each output is one Dot2-compensated dot product with b as its start, "
        "rounded once", _affine, tol=SUM_TOL, kind="linalg",
        args=(Arg("x"), Arg("A", differentiable=False), Arg("b", differentiable=False)),
        cases=[Case(((1.0, 1.0), ((1.0, -1.0),), (0.5,)), 0.5),
               Case(((2.0 ** 50, 1.0), ((2.0 ** 50, 1.0),), (-2.0 ** 100,)), 1.0,
                    note="2^100 + 1 - 2^100: a plain dot loses the 1")],
        vjp="x: reshape(A^T g, x.shape); A, b: non_differentiable",
        families=("normal", "wide", "large_mean", "subnormal", "cancel_max"),
        torchlean="affine node",
        example_shapes=((6, 9), (5, 54), (5,))),
]
