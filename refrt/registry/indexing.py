"""Indexing and shape ops that real models use (issue 10, "Indexing and shape"):
embedding, gather, scatter_add, select, slice, permute, pad and the comparison masks.

Semantics follow ``torch`` (the importer maps ATen ops onto these names):
* integer positions (embedding ids, gather/scatter indices) are arguments of role
  ``"index"``: int32/int64 arrays (any integer dtype, converted to int64), never
  differentiable, every value checked against the indexed extent (no negative
  wrap-around: torch raises on -1 in gather/embedding, and so does refrt);
* the pure re-indexing ops copy bits (0 ulp, NaN payloads and signed zeros kept);
* the adding ones (scatter_add, and the VJPs of embedding and gather, which are
  scatter-adds) sum every contribution to a slot exactly and round once
  (superaccumulator, refrt/_kernels/indexing.pyx), so they are correctly rounded (0 ulp)
  whatever the order, the number of repeats or the cancellation.

Comparisons return 1.0 / 0.0 in the input dtype (TorchLean's ``gtMaskSpec`` /
``ltMaskSpec`` numeric masks), with IEEE rules: every comparison with NaN is false,
``ne`` is true.  TorchLean's Bool ``lessEqualSpec`` / ``greaterEqualSpec`` are defined
as not(x > y) and are **true on NaN**; refrt's ``le`` / ``ge`` follow IEEE and PyTorch
(false on NaN).  torch returns bool tensors; refrt's masks are floats (multiply by them,
or compare against 0.5 upstream of ``where``).
"""
from __future__ import annotations

import math

import numpy as np

from . import _shapes
from ._spec import Arg, Case, OpSpec, Param, Tol
from ..errors import bad_value

INF, NAN = math.inf, math.nan
EXACT = Tol(float32=0, float64=0)
IDX_FAMILIES = ("normal", "wide", "extremal", "subnormal", "cancel_max")


def _need_rank(spec, name, a, at_least=1):
    if a.ndim < at_least:
        raise bad_value(spec.name, name, f"an array of at least {at_least} dimension(s)",
                        f"a {a.ndim}-d array")


def check_indices(spec, name, index, n, where=""):
    """Every index in [0, n); the error names the first bad one and its position."""
    if index.size and (index.min() < 0 or index.max() >= n):
        pos = np.argwhere((index < 0) | (index >= n))[0]
        bad = int(index[tuple(pos)])
        raise bad_value(spec.name, name, f"indices in [0, {n}){where}",
                        f"index {bad} at position {tuple(int(p) for p in pos)}")


def _embedding(spec, arrays, params):
    ids, w = arrays
    if w.ndim != 2:
        raise bad_value(spec.name, "weight", "a 2-d (num_embeddings, embedding_dim) array",
                        f"shape {w.shape}")
    check_indices(spec, "ids", ids, w.shape[0], f" (weight has {w.shape[0]} rows)")
    return ids.shape + (w.shape[1],)


def _gather_like(spec, x, index, axis_param, params, src=None):
    _need_rank(spec, "x", x)
    axis = _shapes.normalize_axis(spec, "axis", params[axis_param], x.ndim)
    params[axis_param] = axis
    if index.ndim != x.ndim:
        raise bad_value(spec.name, "index", f"an index array of the same rank as x "
                        f"({x.ndim})", f"shape {index.shape}")
    for d in range(x.ndim):
        if d != axis and index.shape[d] > x.shape[d]:
            raise bad_value(spec.name, "index", f"index.shape[{d}] <= x.shape[{d}] = "
                            f"{x.shape[d]} (every axis but {axis})", f"shape {index.shape}")
        if src is not None and index.shape[d] > src.shape[d]:
            raise bad_value(spec.name, "index", f"index.shape[{d}] <= src.shape[{d}] = "
                            f"{src.shape[d]}", f"shape {index.shape}")
    check_indices(spec, "index", index, x.shape[axis], f" (x has {x.shape[axis]} along "
                  f"axis {axis})")
    return axis


def _gather(spec, arrays, params):
    x, index = arrays
    _gather_like(spec, x, index, "axis", params)
    return index.shape


def _scatter_add(spec, arrays, params):
    x, index, src = arrays
    if src.ndim != x.ndim:
        raise bad_value(spec.name, "src", f"an array of the same rank as x ({x.ndim})",
                        f"shape {src.shape}")
    _gather_like(spec, x, index, "axis", params, src=src)
    return x.shape


def _int(spec, name, value, lo=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise bad_value(spec.name, name, "an integer", f"{type(value).__name__} {value!r}")
    if lo is not None and value < lo:
        raise bad_value(spec.name, name, f"an integer >= {lo}", value)
    return int(value)


def _select(spec, arrays, params):
    x = arrays[0]
    _need_rank(spec, "x", x)
    axis = params["axis"] = _shapes.normalize_axis(spec, "axis", params["axis"], x.ndim)
    n = x.shape[axis]
    i = _int(spec, "index", params["index"])
    if not -n <= i < n:
        raise bad_value(spec.name, "index", f"an index in [-{n}, {n}) (x has {n} along "
                        f"axis {axis})", i)
    params["index"] = i % n
    return x.shape[:axis] + x.shape[axis + 1:]


def _slice(spec, arrays, params):
    x = arrays[0]
    _need_rank(spec, "x", x)
    axis = params["axis"] = _shapes.normalize_axis(spec, "axis", params["axis"], x.ndim)
    start = _int(spec, "start", params["start"])
    end = params["end"]
    if end is not None:
        end = _int(spec, "end", end)
    step = _int(spec, "step", params["step"], lo=1)
    # Python / torch slicing: negative bounds count from the end, both are clamped
    start, end, step = slice(start, end, step).indices(x.shape[axis])
    params.update(start=start, end=end, step=step)
    n = len(range(start, end, step))
    return x.shape[:axis] + (n,) + x.shape[axis + 1:]


def _permute(spec, arrays, params):
    x = arrays[0]
    dims = params["dims"]
    if dims is None:
        dims = tuple(range(x.ndim))[::-1]
    if isinstance(dims, (int, np.integer)):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)) or any(
            isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) for d in dims):
        raise bad_value(spec.name, "dims", "a tuple of integer axes", repr(dims))
    norm = tuple(int(d) + x.ndim if -x.ndim <= d < 0 else int(d) for d in dims)
    if sorted(norm) != list(range(x.ndim)):
        raise bad_value(spec.name, "dims", f"a permutation of the {x.ndim} axes "
                        f"(0..{x.ndim - 1}, each once)", tuple(dims))
    params["dims"] = norm
    return tuple(x.shape[d] for d in norm)


def _pad(spec, arrays, params):
    x = arrays[0]
    pad = params["pad"]
    if isinstance(pad, (int, np.integer)) and not isinstance(pad, bool):
        pad = (pad, pad)
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or any(
            isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)) for p in pad):
        raise bad_value(spec.name, "pad", "an even-length tuple of integers (before, after) "
                        "pairs from the last axis backwards, as torch.nn.functional.pad",
                        repr(pad))
    if len(pad) // 2 > x.ndim:
        raise bad_value(spec.name, "pad", f"at most {x.ndim} (before, after) pairs for a "
                        f"{x.ndim}-d input", repr(tuple(pad)))
    if any(p < 0 for p in pad):
        raise bad_value(spec.name, "pad", "non-negative pad widths (cropping: use slice)",
                        repr(tuple(pad)))
    if params["mode"] != "constant":
        raise bad_value(spec.name, "mode", "'constant' (the catalog's padMultiChannel / "
                        "padLeft are zero/constant padding; reflect, replicate and circular "
                        "are not TorchLean ops)", repr(params["mode"]))
    pad = tuple(int(p) for p in pad)
    params["pad"] = pad
    shape = list(x.shape)
    for k in range(len(pad) // 2):
        shape[x.ndim - 1 - k] += pad[2 * k] + pad[2 * k + 1]
    return tuple(shape)


def _cmp(name, symbol, doc, cases, torchlean):
    return OpSpec(name=name, signature=f"{name}(x, y) -> mask", kind="binary",
                  args=(Arg("x"), Arg("y")), doc=doc + " as 1.0 / 0.0 in the input dtype "
                  "(elementwise, same shapes)", tol=EXACT, special_cases=tuple(cases),
                  vjp="x: 0; y: 0 (piecewise constant: the derivative is 0 wherever it "
                      "exists)", shape=_shapes.elementwise,
                  families=("normal", "extremal", "subnormal"), torchlean=torchlean,
                  conventions=f"IEEE: x {symbol} y with a NaN operand is "
                              f"{'true' if name == 'ne' else 'false'}; -0 == +0")


M = ((1.0, 2.0), (3.0, 4.0))

SPECS = [
    OpSpec(name="embedding", signature="embedding(ids, weight) -> y", kind="shape",
           args=(Arg("ids", differentiable=False, role="index"), Arg("weight")),
           doc="row lookup y[..., :] = weight[ids[...], :] (torch.nn.functional.embedding: "
               "ids any shape, weight (num_embeddings, embedding_dim)); the gather form of "
               "TorchLean's oneHot(ids) @ W, bit for bit the same rows",
           tol=EXACT, vjp="ids: non_differentiable; weight: scatter-add of the rows of g "
                          "into zeros at ids (each row of the gradient one exact sum, "
                          "rounded once)",
           vjp_tol=Tol(float32=1, float64=1),
           special_cases=(Case(((1,), M), 3.0), Case(((0,), ((NAN, 1.0),)), NAN),
                          Case(((0,), ((-0.0, 1.0),)), -0.0)),
           shape=_embedding, families=IDX_FAMILIES, example_shapes=((7,), (5, 4)),
           conventions="an id outside [0, num_embeddings) is an error (torch: IndexError); "
                       "no padding_idx / max_norm (torch's defaults None)",
           torchlean="EmbeddingSpec / embeddingOnehotSpec (+ embeddingOnehotBackwardSpec)"),
    OpSpec(name="gather", signature="gather(x, index, axis=-1) -> y", kind="shape",
           args=(Arg("x"), Arg("index", differentiable=False, role="index")),
           doc="torch.gather: y[i][j] = x[i][index[i][j]] along axis (index has x's rank, "
               "index.shape[d] <= x.shape[d] off the axis; y has index's shape)",
           tol=EXACT, params=(Param("axis", -1, "axis", "the indexed axis (torch's dim; "
                                                         "no default there, -1 is refrt's)"),),
           vjp="x: scatter_add(zeros_like(x), index, g, axis) (exact sums, rounded once); "
               "index: non_differentiable", vjp_tol=Tol(float32=1, float64=1),
           special_cases=(Case((M, ((1,), (0,))), 2.0), Case((((NAN, 1.0),), ((0,),)), NAN),
                          Case((((-0.0, 1.0),), ((0, 0),)), -0.0)),
           shape=_gather, families=IDX_FAMILIES, example_shapes=((4, 5), (4, 3)),
           torchlean="collectAtIndexSpec / getSpec (upstream indexSelectSpec)"),
    OpSpec(name="scatter_add", signature="scatter_add(x, index, src, axis=-1) -> y",
           kind="shape",
           args=(Arg("x"), Arg("index", differentiable=False, role="index"), Arg("src")),
           doc="torch.scatter_add: y = x, then y[i][index[i][j]] += src[i][j] along axis for "
               "every position of index; each slot is x's value plus all its contributions "
               "summed exactly and rounded once (independent of order and repeats)",
           tol=EXACT, params=(Param("axis", -1, "axis", "the scattered axis (torch's dim)"),),
           vjp="x: g; index: non_differentiable; src: gather(g, index, axis) on index's "
               "positions, 0 elsewhere", vjp_tol=Tol(float32=1, float64=1),
           special_cases=(Case((((1.0, 2.0),), ((1, 1),), ((1e30, -1e30),)), 1.0),
                          Case((((2.0 ** 60, 0.0),), ((0, 0),), ((1.0, -2.0 ** 60),)), 1.0,
                               note="x + 1 - x: a sequential add loses the 1"),
                          Case((((INF, 0.0),), ((0,),), ((-INF,),)), NAN),
                          Case((((-0.0, 1.0),), ((0,),), ((-0.0,),)), -0.0)),
           shape=_scatter_add, families=IDX_FAMILIES,
           example_shapes=((4, 5), (4, 3), (4, 3)),
           torchlean="addValueAtPosition (upstream scatterAddSpec)"),
    OpSpec(name="select", signature="select(x, axis=0, index=0) -> y", kind="shape",
           args=(Arg("x"),), doc="torch.select: the slice at position index along axis, "
                                 "that axis removed (negative index counts from the end)",
           tol=EXACT, params=(Param("axis", 0, "axis", "the selected axis (torch's dim)"),
                              Param("index", 0, "int", "the position along axis")),
           vjp="x: zeros with g at index along axis",
           special_cases=(Case((M,), 1.0), Case((M,), 3.0, params={"index": 1}),
                          Case((M,), 2.0, params={"axis": 1, "index": -1}),
                          Case((((NAN, 1.0),),), NAN)),
           shape=_select, families=IDX_FAMILIES,
           torchlean="selectSpec / selectBackwardSpec (upstream); getHead"),
    OpSpec(name="slice", signature="slice(x, axis=0, start=0, end=None, step=1) -> y",
           kind="shape", args=(Arg("x"),),
           doc="x[start:end:step] along axis (aten.slice: bounds clamped, negative ones "
               "counted from the end, step >= 1)", tol=EXACT,
           params=(Param("axis", 0, "axis", "the sliced axis (torch's dim)"),
                   Param("start", 0, "int", "first position"),
                   Param("end", None, "int_or_none", "one past the last (None: the end)"),
                   Param("step", 1, "int", "stride >= 1")),
           vjp="x: zeros with g at the sliced positions (zero-fill)",
           special_cases=(Case(((1.0, 2.0, 3.0),), 2.0, params={"start": 1}),
                          Case(((1.0, 2.0, 3.0),), 3.0, params={"start": -1}),
                          Case(((-0.0, 2.0, NAN),), -0.0, params={"step": 2})),
           shape=_slice, families=IDX_FAMILIES,
           torchlean="sliceSpec / sliceLeadingAxisRangeSpec (+ zero-fill backward)"),
    OpSpec(name="permute", signature="permute(x, dims=None) -> y", kind="shape",
           args=(Arg("x"),), doc="torch.permute: y has axes x.shape[dims[0]], ...; "
                                 "dims=None reverses the axes", tol=EXACT,
           params=(Param("dims", None, "shape", "a permutation of the axes"),),
           vjp="x: permute(g, argsort(dims))",
           special_cases=(Case((M,), 1.0, params={"dims": (1, 0)}),
                          Case(((((NAN, 1.0),),),), NAN, params={"dims": (2, 0, 1)})),
           shape=_permute, families=IDX_FAMILIES, example_shapes=((3, 4, 5),),
           torchlean="IR permute perm; channelFirstToLastSpec, transpose3D*Spec"),
    OpSpec(name="pad", signature="pad(x, pad=(1, 1), mode='constant', value=0.0) -> y",
           kind="shape", args=(Arg("x"),),
           doc="torch.nn.functional.pad, constant mode: pad holds (before, after) widths "
               "from the last axis backwards; new cells are value (rounded to the dtype)",
           tol=EXACT, params=(Param("pad", (1, 1), "shape", "(before, after) pairs, last "
                                                          "axis first (torch's order)"),
                              Param("mode", "constant", "str", "only 'constant'"),
                              Param("value", 0.0, "float", "the fill value")),
           vjp="x: g with the padded cells cut off; value: not an array",
           special_cases=(Case(((5.0,),), 0.0), Case(((5.0,),), -1.5, params={"value": -1.5}),
                          Case(((5.0,),), 5.0, params={"pad": (0, 2)}),
                          Case(((NAN,),), NAN, params={"pad": (0, 0)})),
           shape=_pad, families=IDX_FAMILIES,
           torchlean="padMultiChannel / padChannelsZero / padLeft (zero padding)"),
    _cmp("eq", "==", "x == y", [Case((1.0, 1.0), 1.0), Case((0.0, -0.0), 1.0),
                                Case((NAN, NAN), 0.0)], "BEq (IEEE: NaN != NaN)"),
    _cmp("ne", "!=", "x != y", [Case((1.0, 2.0), 1.0), Case((NAN, NAN), 1.0),
                                Case((0.0, -0.0), 0.0)], "not BEq"),
    _cmp("lt", "<", "x < y", [Case((1.0, 2.0), 1.0), Case((2.0, 2.0), 0.0),
                              Case((NAN, 1.0), 0.0)], "ltMaskSpec / lessThanSpec"),
    _cmp("le", "<=", "x <= y", [Case((2.0, 2.0), 1.0), Case((3.0, 2.0), 0.0),
                                Case((NAN, 1.0), 0.0, note="TorchLean's lessEqualSpec = "
                                     "not(x > y) is true here")],
         "lessEqualSpec (differs on NaN)"),
    _cmp("gt", ">", "x > y", [Case((3.0, 2.0), 1.0), Case((2.0, 2.0), 0.0),
                              Case((1.0, NAN), 0.0)], "gtMaskSpec / greaterThanSpec"),
    _cmp("ge", ">=", "x >= y", [Case((2.0, 2.0), 1.0), Case((1.0, 2.0), 0.0),
                                Case((1.0, NAN), 0.0, note="TorchLean's greaterEqualSpec = "
                                     "not(y > x) is true here")],
         "greaterEqualSpec (differs on NaN)"),
]
