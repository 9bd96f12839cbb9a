"""Other layers (issue 10, "Other"): dropout with TorchLean's SplitMix64 RNG,
sinusoidal positional encoding, RoPE and a GCN layer (catalog §1.9, §1.11).

Dropout is deterministic: the mask is a function of (seed, counter, element index)
only (refrt/_kernels/misc.pyx, Design a), the same in every dtype and backend, so a
graph with a dropout node replays identically; counter plays the role of TorchLean's
node index (keyOf seed nodeIndex).  Its bits are checked against the catalog's
SplitMix64 definition and the published SplitMix64 reference values in
tests/test_indexing_rnn.py.
"""
from __future__ import annotations

import math

import numpy as np

from . import _shapes
from ._spec import EPSILON, Arg, Case, OpSpec, Param, Tol
from ..errors import bad_value

INF, NAN = math.inf, math.nan
EXACT = Tol(float32=0, float64=0)


def _u64(spec, name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise bad_value(spec.name, name, "an integer in [0, 2^64)", f"{type(v).__name__} {v!r}")
    if not 0 <= int(v) < 2 ** 64:
        raise bad_value(spec.name, name, "an integer in [0, 2^64)", v)
    return int(v)


def _dropout(spec, arrays, params):
    p = params["p"]
    if not 0.0 <= p <= 1.0:
        raise bad_value(spec.name, "p", "a probability in [0, 1]", p)
    params["seed"] = _u64(spec, "seed", params["seed"])
    params["counter"] = _u64(spec, "counter", params["counter"])
    return arrays[0].shape


def _positions(spec, arrays, params):
    x = arrays[0]
    if x.ndim < 2:
        raise bad_value(spec.name, "x", "an array of at least 2 dimensions (..., positions, "
                        "features)", f"shape {x.shape}")
    if params["start"] < 0:
        raise bad_value(spec.name, "start", "a position >= 0", params["start"])
    return x.shape


def _gcn(spec, arrays, params):
    a, x, w, b = arrays
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise bad_value(spec.name, "adj", "a square 2-d (nodes, nodes) matrix", f"shape {a.shape}")
    if x.ndim != 2 or x.shape[0] != a.shape[0]:
        raise bad_value(spec.name, "x", f"a 2-d ({a.shape[0]}, features) array (one row "
                        "per node)", f"shape {x.shape}")
    if w.ndim != 2 or w.shape[0] != x.shape[1]:
        raise bad_value(spec.name, "weight", f"a 2-d ({x.shape[1]}, out_features) array",
                        f"shape {w.shape}")
    if b.shape != (w.shape[1],):
        raise bad_value(spec.name, "bias", f"shape ({w.shape[1]},)", f"shape {b.shape}")
    return (a.shape[0], w.shape[1])


# The positional tables follow TorchLean's binary64 formula: the angle pos / exp(log(10000)
# (2 i / D)) carries ~10 u of relative error (the rounded log(10000) times an exponent
# up to 9.2, then exp), so sin/cos of it are off by ~10 u * angle: float64 results are
# within POS_TOL64 ulp for the families' positions (< 8) and grow linearly with the
# position; float32 rounds the double table once (1 ulp).
POS_TOL64 = 16


def _rope_terms(arrays, params, g):
    """|g_j| |cos| + |g_partner| |sin| per entry (R^T g is a two-term sum)."""
    g = np.abs(np.asarray(g, dtype=np.float64))
    partner = g.copy()
    d = g.shape[-1]
    partner[..., 0:d - 1:2] = g[..., 1::2]
    partner[..., 1::2] = g[..., 0:d - 1:2]
    return (g + partner,)


def _gcn_terms(arrays, params, g):
    """Magnitudes of the two-stage products.  The intermediates g W^T and A X are stored
    in the dtype: in the subnormal range they are off by up to the smallest subnormal,
    which the second product scales up, so each intermediate entry's budget includes
    that quantum (in units of eps)."""
    fi = np.finfo(arrays[1].dtype)
    q = float(fi.smallest_subnormal) / float(fi.eps)
    a, x, w, b = (np.abs(np.asarray(v, dtype=np.float64)) for v in arrays)
    g = np.abs(np.asarray(g, dtype=np.float64))
    with np.errstate(all="ignore"):
        ax = a @ x + q
        gw = g @ w.T + q
        return (gw @ x.T, a.T @ gw, ax.T @ g, g.sum(0))


SPECS = [
    OpSpec(name="dropout", signature="dropout(x, p=0.5, seed=0, counter=0, training=True) -> y",
           kind="random", args=(Arg("x"),),
           doc="TorchLean's dropoutMaskedSpec with its SplitMix64 mask: element i (row-major) "
               "is kept when 1 - p > u_i / 2^32, u_i = splitmix64(splitmix64(seed + counter) "
               "+ i) mod 2^32; kept elements are x / max(1 - p, eps), the others +0; "
               "training=False is the identity (dropoutInferenceSpec)",
           tol=Tol(float32=1, float64=1),
           params=(Param("p", 0.5, "float", "drop probability (torch's default)"),
                   Param("seed", 0, "int", "RNG seed (uint64)"),
                   Param("counter", 0, "int", "stream counter (TorchLean's node index)"),
                   Param("training", True, "bool", "False: identity")),
           vjp="x: the same map applied to g (mask ? g / max(1 - p, eps) : 0)",
           special_cases=(Case((1.5,), 1.5, params={"p": 0.0}),
                          Case((1.5,), 0.0, params={"p": 1.0}),
                          Case((1.5,), 1.5, params={"training": False}),
                          Case((1.5,), 3.0, params={"seed": 0},
                               note="splitmix64 stream of seed 0: element 0 is kept"),
                          Case((NAN,), NAN, params={"p": 0.0})),
           shape=_dropout, families=("normal", "wide", "extremal", "subnormal"),
           conventions="the mask depends on (seed, counter, index) only; the division "
                       "by max(1 - p, eps) rounds once (the divisor in the dtype)",
           torchlean="dropoutMaskedSpec / dropoutInferenceSpec + Random.lean mask keep"),
    OpSpec(name="positional_encoding", signature="positional_encoding(x, start=0) -> y",
           kind="shape", args=(Arg("x"),),
           doc="x + PE for x (..., L, D): PE[p, j] = sin(angle) for even j, cos(angle) for "
               "odd j, angle = (start + p) / exp(log(10000) (2 (j // 2) / D)); the table in "
               "binary64 (TorchLean's Float formula), x + PE rounded once",
           tol=Tol(float32=1, float64=POS_TOL64),
           params=(Param("start", 0, "int", "position of the first row"),),
           vjp="x: g",
           special_cases=(Case((((0.0, 0.0),),), 0.0), Case((((0.0, 0.0),),), math.sin(1.0),
                                                          params={"start": 1}),
                          Case((((NAN, 0.0),),), NAN)),
           shape=_positions, families=("normal", "wide", "large_mean", "subnormal"),
           example_shapes=((2, 6, 8),),
           torchlean="addSinusoidalPositionalEncodingSpec / sinusoidalPositionalEncodingSpec"),
    OpSpec(name="rope", signature="rope(x, start=0) -> y", kind="shape", args=(Arg("x"),),
           doc="rotary embedding of x (..., L, D): y = x cos + rotate(x) sin, rotate = "
               "(-x1, x0, -x3, x2, ...) (an odd last entry is kept), angle of entry j at row "
               "p = (start + p) / exp(log(10000) (2 (j // 2) / D)) (TorchLean's ropeApplySpec)",
           tol=Tol(float32=1, float64=POS_TOL64), vjp_terms=_rope_terms,
           params=(Param("start", 0, "int", "position of the first row"),),
           vjp="x: R^T g (the rotation by -angle; the odd last entry: g (cos + sin))",
           special_cases=(Case((((1.0, 0.0),),), math.cos(1.0), params={"start": 1}),
                          Case((((0.0, 1.0),),), -math.sin(1.0), params={"start": 1}),
                          Case((((2.0, 3.0),),), 2.0)),
           shape=_positions, families=("normal", "wide", "large_mean", "subnormal"),
           example_shapes=((2, 5, 7),),
           torchlean="ropeApplySpec / ropeRotatePairsLastdimSpec / ropeCos/SinLastdimSpec"),
    OpSpec(name="gcn_layer", signature="gcn_layer(adj, x, weight, bias) -> y", kind="linalg",
           args=(Arg("adj"), Arg("x"), Arg("weight"), Arg("bias")),
           doc="TorchLean's gcnLayerSpec A X W + b (b broadcast over the nodes): A X as a "
               "double word H + R (H = Dot2(A, X), R = Dot2([A | I], [X ; -H]), the residual "
               "to ~u^2), then y = [H | R] [W ; W] + b, one Dot2 per output rounded once",
           tol=Tol(float32=4, float64=4),
           vjp="adj: g W^T X^T; x: A^T g W^T; weight: (A X)^T g; bias: sum(g, 0)",
           vjp_terms=_gcn_terms,
           special_cases=(Case((((1.0,),), ((2.0,),), ((3.0,),), (0.5,)), 6.5),
                          Case((((1.0,),), ((NAN,),), ((3.0,),), (0.5,)), NAN)),
           shape=_gcn, families=("normal", "large_mean", "subnormal"),
           example_shapes=((4, 4), (4, 3), (3, 2), (2,)),
           conventions="the conditioning of A X W: an output that cancels to |y| << |A||X||W| "
                       "carries the rounding of A X (measured on the families, docs/accuracy.md)",
           torchlean="gcnLayerSpec (+ gcnLayerBackwardSpec), messagePassingSpec A X"),
]
