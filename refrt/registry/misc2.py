"""The rest of the catalog's tensor ops (issue 10, "missing" rows of docs/coverage.md):
masks (logical_not, any, all), detach, rand_uniform (the IR's randUniform), gradient
clipping (clipGradientsSpec, clipByPercentileSpec), the diagonal selective scan
(SelectiveScan.lean), the affine quantizer (NN/Floats/Quantization.lean) and
argmin/argmax (VqVae's nearest codebook entry).

Masks and positions are floats, as refrt's comparisons are: ``logical_not``, ``any``
and ``all`` read a float mask (nonzero = true, NaN is nonzero as in torch) and return
1.0 / 0.0 in the input dtype (TorchLean's boolToAlphaSpec of notSpec / anySpec /
allSpec with the predicate ``x != 0``; any predicate p is a refrt comparison upstream:
``any(gt(x, y))``).  ``where`` still takes a bool ``condition`` (``mask > 0.5``).
argmin/argmax return the position as an exact float in the input dtype (convert with
``.astype(int)`` for ``gather``/``embedding``), and quantize returns the integer codes
as exact floats.  None of these outputs is differentiable (VJP 0: the derivative of a
piecewise-constant map wherever it exists); detach's is 0 by definition.
"""
from __future__ import annotations

import math

import numpy as np

from . import _shapes
from ._spec import Arg, Case, OpSpec, Param, Tol
from .misc import _u64
from ..errors import bad_value

INF, NAN = math.inf, math.nan
EXACT = Tol(float32=0, float64=0)
MASK_FAMILIES = ("normal", "extremal", "subnormal")
AXIS_NONE = Param("axis", None, "axis_or_none", "None reduces over all elements")
ZERO_VJP = "x: 0 (piecewise constant: the derivative is 0 wherever it exists)"


def splitmix64(x: int) -> int:
    """The catalog's SplitMix64 (§1.11) in Python integers, independent of the kernel
    (tests compare the two)."""
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def uniform_value(seed: int, counter: int, i: int) -> float:
    """randUniform's element i: splitmix64(keyOf(seed, counter) + i) mod 2^32 / 2^32,
    keyOf seed ctr = splitmix64(seed + ctr) (all uint64; exact in binary64)."""
    m = (1 << 64) - 1
    key = splitmix64((seed + counter) & m)
    return (splitmix64((key + i) & m) & 0xFFFFFFFF) / 4294967296.0


def _reduction_mask(spec, arrays, params):
    return _shapes.reduction(spec, arrays, params)


def _argext(spec, arrays, params):
    shape = _shapes.reduction(spec, arrays, params)
    x = arrays[0]
    n = x.size if params["axis"] is None else x.shape[params["axis"]]
    if n == 0:
        raise bad_value(spec.name, "x", "a non-empty reduced axis (torch: argmax of an "
                        "empty tensor is an error)", f"shape {x.shape}")
    if n > 2 ** 24 and x.dtype == np.float32:
        raise bad_value(spec.name, "x", "at most 2^24 positions along the axis for a "
                        "float32 input (positions are exact floats)", f"{n} positions")
    return shape


def _rand(spec, arrays, params):
    params["seed"] = _u64(spec, "seed", params["seed"])
    params["counter"] = _u64(spec, "counter", params["counter"])
    return arrays[0].shape


def _clip_norm(spec, arrays, params):
    return arrays[0].shape


def _clip_pct(spec, arrays, params):
    pct = params["pct"]
    if pct < 0:
        raise bad_value(spec.name, "pct", "a percentile >= 0 (a natural number; values "
                        "above 100 mean 100)", pct)
    return arrays[0].shape


def _scan(spec, arrays, params):
    a, b, h0 = arrays
    if a.ndim < 1:
        raise bad_value(spec.name, "a", "an array (T, ...) with a leading time axis",
                        f"a {a.ndim}-d array")
    if b.shape != a.shape:
        raise bad_value(spec.name, "b", f"shape {a.shape} (the shape of 'a')", f"shape {b.shape}")
    if h0.shape != a.shape[1:]:
        raise bad_value(spec.name, "h0", f"shape {a.shape[1:]} (a's shape without the time "
                        "axis)", f"shape {h0.shape}")
    return a.shape


# codes, zero points and the code range are exact integers in the dtype's significand,
# with room for k + zero_point and k +- 1/2 (Design d of _kernels/misc2.pyx)
CODE_BOUND = {"float32": 2 ** 20, "float64": 2 ** 50}


def _quant_common(spec, arrays, params):
    dt = arrays[0].dtype.name
    bound = CODE_BOUND.get(dt, 2 ** 20)
    if not params["scale"] > 0:
        raise bad_value(spec.name, "scale", "a scale > 0 (AffineQuantizer.scale_pos)",
                        params["scale"])
    names = ("zero_point", "qmin", "qmax") if "qmin" in params else ("zero_point",)
    for name in names:
        v = params[name]
        if not -bound <= v <= bound:
            raise bad_value(spec.name, name, f"an integer in [-2^{bound.bit_length() - 1}, "
                            f"2^{bound.bit_length() - 1}] for {dt} (exact codes)", v)
    if "qmin" in params and params["qmin"] > params["qmax"]:
        raise bad_value(spec.name, "qmax", f"qmax >= qmin = {params['qmin']} "
                        "(AffineQuantizer.codeRange)", params["qmax"])
    return arrays[0].shape


def _scan_terms(arrays, params, g):
    """|.| of the reverse scan's terms: lam_t = g_t + a_(t+1) lam_(t+1) summed in absolute
    values (the condition of each cotangent), with |h| likewise for da = lam h_prev."""
    a, b, h0 = (np.abs(np.asarray(v, dtype=np.float64)) for v in arrays)
    g = np.abs(np.asarray(g, dtype=np.float64))
    with np.errstate(all="ignore"):
        T = a.shape[0]
        h = np.empty_like(a)
        prev = h0
        for t in range(T):
            prev = a[t] * prev + b[t]
            h[t] = prev
        lam = np.empty_like(g)
        acc = np.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            acc = g[t] + (a[t + 1] * acc if t + 1 < T else 0.0)
            lam[t] = acc
        hprev = np.concatenate([h0[None], h[:-1]], axis=0) if T else h
        return (lam * hprev, lam, a[0] * lam[0] if T else np.zeros_like(h0))


def _clip_terms(arrays, params, g):
    """c (|g_bar| + |x| <|x|, |g_bar|> / N^2): the magnitudes of the clipped VJP's terms
    (N scaled by max|x|, so that the squares neither overflow nor underflow)."""
    x = np.asarray(arrays[0], dtype=np.float64)
    gb = np.abs(np.asarray(g, dtype=np.float64))
    with np.errstate(all="ignore"):
        s = float(np.max(np.abs(x))) if x.size else 0.0
        m = abs(float(params["max_norm"]))
        if not (s > 0 and math.isfinite(s)):
            return (gb,)
        xs = np.abs(x) / s
        n = s * math.sqrt(float(np.sum(xs * xs)))
        if not n > m:
            return (gb,)
        return ((m / n) * (gb + xs * float(np.sum(xs * gb)) / float(np.sum(xs * xs))),)


SPECS = [
    OpSpec(name="logical_not", signature="logical_not(x) -> mask", kind="unary",
           args=(Arg("x"),),
           doc="1.0 where x == 0 (either sign), else 0.0, in the input dtype (torch."
               "logical_not on a float mask; TorchLean notSpec of the mask's bool)",
           tol=EXACT, vjp=ZERO_VJP,
           special_cases=(Case((0.0,), 1.0), Case((-0.0,), 1.0), Case((1.0,), 0.0),
                          Case((NAN,), 0.0, note="NaN is nonzero: true, so not gives 0 "
                                                  "(torch)"),
                          Case((5e-324,), 0.0, dtypes=("float64",))),
           shape=_shapes.elementwise, families=MASK_FAMILIES,
           conventions="masks are floats (refrt's comparisons); nonzero and NaN are true",
           torchlean="notSpec (with boolToAlphaSpec)"),
    OpSpec(name="any", signature="any(x, axis=None) -> mask", kind="reduction",
           args=(Arg("x"),),
           doc="1.0 if some element along axis is nonzero (NaN counts), else 0.0 (torch.any; "
               "TorchLean anySpec (x != 0), a fold seeded with false: an empty axis gives 0)",
           tol=EXACT, params=(AXIS_NONE,), vjp=ZERO_VJP,
           special_cases=(Case(((0.0, -0.0),), 0.0), Case(((0.0, 2.0),), 1.0),
                          Case(((0.0, NAN),), 1.0), Case(((),), 0.0)),
           shape=_reduction_mask, families=MASK_FAMILIES,
           conventions="predicates other than != 0 are comparisons upstream: any(gt(x, y))",
           torchlean="anySpec p"),
    OpSpec(name="all", signature="all(x, axis=None) -> mask", kind="reduction",
           args=(Arg("x"),),
           doc="1.0 if every element along axis is nonzero (NaN counts), else 0.0 "
               "(torch.all; TorchLean allSpec (x != 0), seeded with true: an empty axis "
               "gives 1)",
           tol=EXACT, params=(AXIS_NONE,), vjp=ZERO_VJP,
           special_cases=(Case(((1.0, -0.0),), 0.0), Case(((3.0, NAN),), 1.0),
                          Case(((),), 1.0)),
           shape=_reduction_mask, families=MASK_FAMILIES,
           conventions="countSpec is the element count x.size (a shape property, no op)",
           torchlean="allSpec p"),
    OpSpec(name="detach", signature="detach(x) -> y", kind="unary",
           args=(Arg("x", differentiable=False),),
           doc="identity forward (the bits of x, NaN payloads and signed zeros kept); the "
               "gradient stops here (IR detach / upstream detachSpec, torch.Tensor.detach)",
           tol=EXACT, vjp="x: 0 (stop-gradient: nothing flows to x, by definition, not "
                          "the derivative of the forward)",
           special_cases=(Case((1.5,), 1.5), Case((-0.0,), -0.0), Case((NAN,), NAN),
                          Case((-INF,), -INF)),
           shape=_shapes.elementwise, families=("normal", "extremal"),
           torchlean="IR detach / detachSpec"),
    OpSpec(name="rand_uniform", signature="rand_uniform(x, seed=0, counter=0) -> u",
           kind="random", args=(Arg("x", differentiable=False),),
           doc="the IR's randUniform: u_i = splitmix64(key + i) mod 2^32 / 2^32 at the "
               "row-major index i, key = keyOf(seed, counter) = splitmix64(seed + counter) "
               "(counter: TorchLean's node index); x gives only the shape and dtype "
               "(torch.rand_like), its values are never read",
           tol=EXACT,
           params=(Param("seed", 0, "int", "RNG seed (uint64)"),
                   Param("counter", 0, "int", "stream counter (TorchLean's node index)")),
           vjp="x: 0 (the samples do not depend on x)",
           special_cases=(Case((0.0,), uniform_value(0, 0, 0), dtypes=("float64",),
                               note="binary64 holds u / 2^32 exactly"),
                          Case((NAN,), uniform_value(7, 3, 0), params={"seed": 7, "counter": 3},
                               dtypes=("float64",)),
                          Case((0.0,), float(np.float32(uniform_value(0, 0, 0))),
                               dtypes=("float32",))),
           shape=_rand, families=("normal",), example_shapes=((4, 6),),
           conventions="float64 holds the catalog's binary64 value exactly; float32 rounds "
                       "it to nearest once, so u can be 1.0 there (u >= 1 - 2^-25, "
                       "probability ~2^-25) where binary64 gives 1 - 2^-32 at most",
           torchlean="IR randUniform seed (Random.lean uniform, keyOf seed nodeIndex)"),
    OpSpec(name="clip_gradients", signature="clip_gradients(g, max_norm=1.0) -> y",
           kind="norm", args=(Arg("g"),),
           doc="TorchLean clipGradientsSpec: if sum(g^2) > |max_norm|^2 then g * (|max_norm| "
               "/ sqrt(sum(g^2))) else g, over all elements (global-norm clipping); the sum "
               "of squares of g scaled by a power of two as a compensated double word (no "
               "overflow or underflow of the squares), the factor as a double word, each "
               "output rounded once",
           tol=Tol(float32=1, float64=1), vjp_tol=Tol(float32=8, float64=8),
           params=(Param("max_norm", 1.0, "float", "the norm bound (its absolute value)"),),
           vjp="g: g_bar if not clipped; else c (g_bar - g <g, g_bar> / N^2), c = |max_norm| "
               "/ N, N = sqrt(sum(g^2)) (the kink at N = |max_norm| is not differentiable)",
           vjp_terms=_clip_terms,
           special_cases=(Case(((3.0, 4.0),), 0.6), Case(((3.0, 4.0),), 3.0,
                                                        params={"max_norm": 5.0}),
                          Case(((3.0, 4.0),), 0.6, params={"max_norm": -1.0}),
                          Case(((1e300, 1e300),), 1.0 / math.sqrt(2.0), dtypes=("float64",),
                               note="sum(g^2) overflows if formed directly"),
                          Case(((3.0, NAN),), 3.0, note="NaN > m^2 is false: g unchanged"),
                          Case(((3.0, INF),), 0.0, note="g * (m / inf) = 0 (inf * 0: NaN)")),
           shape=_clip_norm, families=("normal", "wide", "extremal", "large_mean", "subnormal"),
           example_shapes=((5, 6),),
           conventions="the branch is decided on the compensated sum of squares (exact "
                       "unless sum(g^2) and max_norm^2 agree to ~n u^2); NaN in g: no "
                       "clipping (the catalog's comparison is false); inf: every finite "
                       "element becomes +-0 and inf * 0 = NaN (Float semantics)",
           torchlean="clipGradientsSpec g maxNorm"),
    OpSpec(name="clip_by_percentile", signature="clip_by_percentile(g, pct=90) -> y",
           kind="norm", args=(Arg("g"),),
           doc="TorchLean clipByPercentileSpec: b = sorted(|g|)[(min(pct, 100) (n - 1)) // "
               "100] (integer division, row-major over all elements), y = clamp(g, -b, b) "
               "= min(b, max(-b, g)) (refrt's clamp: NaN gives -b)",
           tol=EXACT, params=(Param("pct", 90, "int", "percentile, a natural number "
                                                      "(refrt's default; TorchLean has "
                                                      "none)"),),
           vjp="g: g_bar on -b < g < b; plus, at the element k that b is |g_k| of, "
               "sign(g_k) * (sum of g_bar over g >= b minus over g <= -b) (b depends on g)",
           special_cases=(Case(((1.0, -5.0, 3.0),), 1.0, params={"pct": 50}),
                          Case(((-5.0, 1.0, 3.0),), -3.0, params={"pct": 50}),
                          Case(((-5.0, 1.0, 3.0),), -1.0, params={"pct": 0}),
                          Case(((-5.0, 1.0, 3.0),), -5.0, params={"pct": 250}),
                          Case(((NAN, 1.0, 3.0),), -3.0, params={"pct": 50},
                               note="NaN sorts last; clamp(NaN) = -b")),
           shape=_clip_pct, families=("normal", "wide", "extremal", "subnormal"),
           example_shapes=((4, 5),),
           conventions="|g| is sorted with NaN last (IEEE totalOrder of |NaN|; the catalog's "
                       "Lean sort order on NaN is not documented); ties in |g| at the "
                       "selected rank make the VJP one-sided",
           torchlean="clipByPercentileSpec g pct"),
    OpSpec(name="diagonal_scan", signature="diagonal_scan(a, b, h0) -> h", kind="linalg",
           args=(Arg("a"), Arg("b"), Arg("h0")),
           doc="diagonalSelectiveScan: h_t = a_t * h_(t-1) + b_t along the leading (time) "
               "axis from h_(-1) = h0, every state returned (T, ...); the state is carried "
               "as a double word (TwoProduct by fma, TwoSum), each output rounded once",
           tol=Tol(float32=1, float64=1), vjp_tol=Tol(float32=2, float64=2),
           vjp="reverse scan lam_t = g_t + a_(t+1) lam_(t+1); a: lam_t h_(t-1); b: lam_t; "
               "h0: a_0 lam_0 (each carried as a double word)",
           vjp_terms=_scan_terms,
           special_cases=(Case((((2.0,),), ((1.0,),), (3.0,)), 7.0),
                          Case((((2.0, 0.5),), ((1.0, 1.0),), (3.0, 4.0)), 7.0),
                          Case((((1e308,), (0.5,)), ((1.0,), (1.0,)), (10.0,)), INF,
                               dtypes=("float64",)),
                          Case((((0.0,),), ((1.0,),), (INF,)), NAN, note="0 * inf"),
                          Case((((1.0 + 2.0 ** -30,),), ((-1.0,),), (1.0,)), 2.0 ** -30,
                               dtypes=("float64",), note="a h + b cancels: one rounding")),
           shape=_scan, families=("normal", "large_mean", "subnormal"),
           example_shapes=((5, 3), (5, 3), (3,)),
           conventions="the real recurrence rounded once per output (TorchLean's Float "
                       "rounds a * h and + b at every step); a state that cancels below "
                       "~u^2 of its terms carries that absolute error",
           torchlean="diagonalSelectiveScan / scalarAffineScan / runDiagonalTransitions "
                     "(SelectiveScan.lean)"),
    OpSpec(name="quantize", signature="quantize(x, scale=1.0, zero_point=0, qmin=-128, "
                                      "qmax=127) -> codes", kind="unary", args=(Arg("x"),),
           doc="AffineQuantizer.quantize over the reals: clamp(rnd(x / scale) + zero_point, "
               "qmin, qmax), rnd = round half to even of the real quotient (torch's "
               "nearbyint; the catalog leaves rnd a parameter), codes as exact floats",
           tol=EXACT,
           params=(Param("scale", 1.0, "float", "the step (> 0), rounded to the dtype"),
                   Param("zero_point", 0, "int", "the code of real 0"),
                   Param("qmin", -128, "int", "smallest code (torch.qint8's)"),
                   Param("qmax", 127, "int", "largest code")),
           vjp="x: 0 (piecewise constant; a straight-through estimator is not the "
               "derivative: compose dequantize(quantize(x)) with detach for one)",
           special_cases=(Case((2.5,), 2.0), Case((3.5,), 4.0), Case((-2.5,), -2.0),
                          Case((1000.0,), 127.0), Case((-INF,), -128.0),
                          Case((0.75,), 3.0, params={"scale": 0.25}),
                          Case((0.3,), 5.0, params={"scale": 0.1, "zero_point": 2},
                               note="binary64 0.3 / 0.1 is just below 3"),
                          Case((NAN,), NAN)),
           shape=_quant_common, families=("normal", "wide", "extremal", "subnormal"),
           conventions="rnd acts on the real x / scale (ties decided exactly by an fma "
                       "remainder, not on the rounded quotient); +-inf saturate; NaN gives "
                       "NaN (no integer code; torch's is unspecified)",
           torchlean="AffineQuantizer.quantizeTensor (NN/Spec/Quantization.lean)"),
    OpSpec(name="dequantize", signature="dequantize(codes, scale=1.0, zero_point=0) -> x",
           kind="unary", args=(Arg("codes"),),
           doc="AffineQuantizer.dequantize: scale * (codes - zero_point), rounded once "
               "(codes - zero_point as an exact two-term sum)",
           tol=Tol(float32=1, float64=1),
           params=(Param("scale", 1.0, "float", "the step (> 0), rounded to the dtype"),
                   Param("zero_point", 0, "int", "the code of real 0")),
           vjp="codes: scale * g_bar",
           special_cases=(Case((3.0,), 0.75, params={"scale": 0.25}),
                          Case((2.0,), 0.0, params={"zero_point": 2}),
                          Case((NAN,), NAN)),
           shape=_quant_common, families=("normal", "wide", "extremal", "subnormal"),
           torchlean="AffineQuantizer.dequantizeTensor (NN/Spec/Quantization.lean)"),
    OpSpec(name="argmax", signature="argmax(x, axis=None) -> index", kind="reduction",
           args=(Arg("x"),),
           doc="position of the first maximum along axis (None: of the row-major "
               "flattened x), as an exact float in the input dtype; NaN is the maximum "
               "(the first NaN's position, torch.argmax)",
           tol=EXACT, params=(AXIS_NONE,), vjp=ZERO_VJP,
           special_cases=(Case(((1.0, 3.0, 3.0),), 1.0), Case(((1.0, NAN, 3.0),), 1.0),
                          Case(((-0.0, 0.0),), 0.0, note="-0 == +0: the first wins"),
                          Case(((-INF, -INF),), 0.0)),
           shape=_argext, families=("normal", "extremal", "subnormal"),
           torchlean="torch.argmax (the max counterpart of VqVae's argmin; no TorchLean spec name)"),
    OpSpec(name="argmin", signature="argmin(x, axis=None) -> index", kind="reduction",
           args=(Arg("x"),),
           doc="position of the first minimum along axis (None: flattened), as an exact "
               "float in the input dtype; NaN is the minimum (the first NaN's position, "
               "torch.argmin)",
           tol=EXACT, params=(AXIS_NONE,), vjp=ZERO_VJP,
           special_cases=(Case(((3.0, 1.0, 1.0),), 1.0), Case(((1.0, 3.0, NAN),), 2.0),
                          Case(((INF, INF),), 0.0)),
           shape=_argext, families=("normal", "extremal", "subnormal"),
           torchlean="VqVae quantizeAt (nearest codebook entry: argmin of distances)"),
]
