"""Attention (TorchLean §1.8): scaled dot-product attention with a boolean mask, the
hard-masked softmax on its own, and multi-head attention (registry/mha.py).

A mask is an array-valued keyword (``mask=``): a bool array broadcastable to the
scores' shape (..., L, S), True = may attend (TorchLean's polarity, PyTorch's bool
``attn_mask``).  Masked-out scores are -inf before the softmax (TorchLean's
hardMaskedSoftmax: exp(-inf) = 0), so a query row whose keys are all masked out gives
zeros.  PyTorch 2.13's ``F.scaled_dot_product_attention`` (CPU) gives zeros there too
(pytorch#160064, catalog §5 AttentionMask, was fixed), but the composition users write,
softmax(scores.masked_fill(~mask, -inf)) @ v, gives NaN (tests/test_attention_norm.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import bad_type, bad_value
from . import _terms
from ._shapes import normalize_axis
from ._spec import Arg, Case, OpSpec, Param, Tol
from .reductions import SOFTMAX_TOL

SDPA_FAMILIES = ("normal", "large_mean", "subnormal", "cancel_max", "wide")


def _mask_param(spec, params, lead, L, S):
    """Validate mask / is_causal; store the materialised (B, L, S) bool mask or None."""
    mask, causal = params.get("mask"), params.get("is_causal")
    if not isinstance(causal, (bool, np.bool_)):
        raise bad_type(spec.name, "is_causal", "a bool", f"{type(causal).__name__} {causal!r}")
    params["is_causal"] = bool(causal)
    full = lead + (L, S)
    tri = np.tri(L, S, dtype=bool)
    if mask is not None and causal:
        # the normalised form (prepare stores the causal mask) passes again unchanged, so
        # prepare is idempotent (a VJP re-prepares its forward's params); any other mask
        # with is_causal is an error
        m = np.asarray(mask)
        if m.dtype == np.bool_ and m.shape == full and np.array_equal(m, np.broadcast_to(tri, full)):
            params["mask"] = np.ascontiguousarray(m)
            return _check_scale(spec, params)
    if mask is not None:
        if causal:
            raise bad_value(spec.name, "mask", "mask=None when is_causal=True (as PyTorch: "
                            "pass one of them)", "a mask and is_causal=True")
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise bad_type(spec.name, "mask", "a bool array (True = may attend)",
                           f"dtype {m.dtype}")
        try:
            m = np.broadcast_to(m, full)
        except ValueError:
            raise bad_value(spec.name, "mask", f"a bool array broadcastable to the scores' "
                            f"shape {full} (..., L, S)", f"shape {m.shape}") from None
        params["mask"] = np.ascontiguousarray(m)
    elif causal:
        # TorchLean causalMask: j <= i (top-left aligned, PyTorch's tril(diagonal=0))
        params["mask"] = np.ascontiguousarray(np.broadcast_to(tri, full))
    _check_scale(spec, params)


def _check_scale(spec, params):
    if params.get("scale") is not None:
        s = params["scale"]
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(s)):
            raise bad_value(spec.name, "scale", "None or a finite real number", repr(s))


def sdpa_shape(spec, arrays, params):
    q, k, v = arrays
    for name, a in zip(("q", "k", "v"), arrays):
        if a.ndim < 2:
            raise bad_value(spec.name, name, "an array of at least 2 dimensions (..., L, E)",
                            f"shape {a.shape}")
    if k.shape[:-2] != q.shape[:-2] or v.shape[:-2] != q.shape[:-2]:
        bad, a = ("k", k) if k.shape[:-2] != q.shape[:-2] else ("v", v)
        raise bad_value(spec.name, bad, f"leading (batch, head) dims {q.shape[:-2]} (those "
                        "of q; refrt does not broadcast implicitly)", f"shape {a.shape}")
    if k.shape[-1] != q.shape[-1]:
        raise bad_value(spec.name, "k", f"last dim {q.shape[-1]} (the embedding size E of q)",
                        f"shape {k.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise bad_value(spec.name, "v", f"{k.shape[-2]} rows (the number of keys S)",
                        f"shape {v.shape}")
    _mask_param(spec, params, q.shape[:-2], q.shape[-2], k.shape[-2])
    return q.shape[:-1] + v.shape[-1:]


def hms_shape(spec, scores, mask, params):
    """hard_masked_softmax: mask a bool array broadcastable to the scores' shape."""
    if mask.dtype != np.bool_:
        raise bad_type(spec.name, "mask", "a bool array (True = allowed)", f"dtype {mask.dtype}")
    try:
        ok = np.broadcast_shapes(mask.shape, scores.shape) == scores.shape
    except ValueError:
        ok = False
    if not ok:
        raise bad_value(spec.name, "mask", f"a bool array broadcastable to the scores' shape "
                        f"{scores.shape}", f"shape {mask.shape}")
    if scores.ndim == 0:
        if params.get("axis") not in (0, -1):
            raise bad_value(spec.name, "axis", "0 or -1 for a 0-d input", params.get("axis"))
        params["axis"] = -1
        return ()
    params["axis"] = normalize_axis(spec, "axis", params.get("axis"), scores.ndim)
    return scores.shape


def _hms_rule(spec, arrays, params):
    return hms_shape(spec, arrays[0], arrays[1], params)


def _hms_example(ints):
    """Hunt shapes: 1-3 dims of 1-4, a random axis; the mask of the same shape."""
    s = tuple(ints(1, 4) for _ in range(ints(1, 3)))
    return [s, s], {"axis": ints(-len(s), len(s) - 1)}


_hms_rule.draw_example = _hms_example


def _hms_terms(arrays, params, g):
    """The softmax's budget y (|g| + |<y, g>|) on the allowed entries (0 elsewhere)."""
    x = np.asarray(arrays[0], np.float64)
    m = np.broadcast_to(np.asarray(arrays[1], bool), x.shape)
    if x.ndim == 0:
        return np.zeros(()), None
    axis = params.get("axis", -1)
    with np.errstate(all="ignore"):
        y, _, _ = _terms._softmax(np.moveaxis(np.where(m, x, -np.inf), axis, -1))
        y = np.where(np.moveaxis(m, axis, -1), y, 0.0)
        gg = np.moveaxis(np.asarray(g, np.float64), axis, -1)
        s = (y * gg).sum(axis=-1, keepdims=True)
        return np.moveaxis(y * (np.abs(gg) + np.abs(s)), -1, axis), None


_FULLY_MASKED = Case((((1.0, 2.0),), ((3.0, 4.0),), ((5.0,),)), 0.0,
                     params={"mask": ((False,),)},
                     note="a fully blocked row gives 0 (softmax of all -inf: NaN)")

SPECS = [
    OpSpec(name="hard_masked_softmax", signature="hard_masked_softmax(scores, mask, axis=-1) -> w",
           kind="attention", args=(Arg("scores"), Arg("mask", differentiable=False,
                                                       role="condition")),
           doc="TorchLean hardMaskedSoftmaxSpec / hardMaskedSoftmaxLastSpec along axis: mask a "
           "bool array broadcastable to scores, True = allowed; w_j = exp(s_j - m) / sum of "
           "those over the allowed entries (m their max), exactly 0 where blocked (a blocked "
           "entry is never read: NaN there is ignored); a row with no allowed entry gives "
           "zeros, not NaN; a 0-d input gives 1 if allowed else 0.  The allowed entries are "
           "refrt's softmax kernel on scores with the blocked ones set to -inf (SDPA's rule)",
           tol=SOFTMAX_TOL, params=(Param("axis", -1, "axis", "the axis the op runs along"),),
           special_cases=(Case(((1.0, 2.0), (False, False)), 0.0,
                               note="fully blocked row: zeros (softmax of all -inf: NaN)"),
                          Case(((1.0, 1000.0), (True, False)), 1.0,
                               note="a blocked entry does not enter the max or the sum"),
                          Case(((math.nan, 0.0), (False, True)), 0.0,
                               note="a blocked NaN is never read"),
                          Case(((3.0, 3.0, 7.0), (True, True, False)), 0.5)),
           vjp="scores: w * (g - sum(g * w, axis)) on the allowed entries, 0 on blocked "
           "ones (TorchLean softmaxBackwardFromWeights: blocked weights are 0); mask: "
           "non_differentiable",
           vjp_terms=_hms_terms, shape=_hms_rule,
           families=("normal", "wide", "large_mean", "subnormal", "cancel_max"),
           example_shapes=((3, 5), (3, 5)),
           conventions="the allowed entries follow softmax's IEEE rules (NaN or +inf among "
           "them: NaN on the allowed entries; all allowed entries -inf: NaN); blocked "
           "entries are +0 and get +0 gradients; PyTorch has no such function (the usual "
           "softmax(scores.masked_fill(~mask, -inf)) gives NaN on a fully blocked row)",
           torchlean="hardMaskedSoftmaxVecSpec / hardMaskedSoftmaxSpec / "
           "hardMaskedSoftmaxLastSpec (+ softmaxBackwardFromWeightsSpec)"),
    OpSpec(name="scaled_dot_product_attention",
           signature="scaled_dot_product_attention(q, k, v, mask=None, is_causal=False, "
           "scale=None) -> out",
           kind="attention", args=(Arg("q"), Arg("k"), Arg("v")),
           doc="softmax(q k^T * scale, masked) v over (..., L, E), (..., S, E), (..., S, Ev) "
           "(leading batch/head dims); scale=None is 1/sqrt(E) (1 for E = 0, TorchLean's "
           "attentionScaleDenom); mask: bool, True = may attend, broadcastable to (..., L, S); "
           "is_causal: the mask j <= i; a query row with every key masked out gives zeros "
           "(hard-masked softmax).  Scores, weights and the weighted sum are double-words "
           "(compensated dot products and a double-word exp), rounded once",
           tol=Tol(float32=4, float64=4),
           params=(Param("mask", None, "bool_mask", "bool array, True = may attend"),
                   Param("is_causal", False, "bool", "causal mask j <= i"),
                   Param("scale", None, "float_or_none", "score multiplier; None: 1/sqrt(E)")),
           special_cases=(_FULLY_MASKED,
                          Case((((1.0,), (2.0,)), ((1.0,), (2.0,)), ((3.0,), (5.0,))), 3.0,
                               params={"is_causal": True}, note="causal: row 0 sees key 0 only"),
                          Case((((1000.0,),), ((1.0,), (1.0,)), ((1.0,), (-1.0,))), 0.0,
                               note="tied scores: equal weights, v cancels to exactly 0"),
                          Case((((),), ((), ()), ((2.0,), (4.0,))), 3.0,
                               note="E = 0: scale 1 (TorchLean attentionScaleDenom 0 = 1); "
                               "zero scores, uniform weights (torch 2.13 gives 3 too)")),
           vjp="dA = g v^T; dS = scale * A * (dA - sum(A * dA, -1)); q: dS k; k: dS^T q; "
           "v: A^T g (masked weights 0; fully masked rows give 0)",
           vjp_tol=Tol(float32=8, float64=8),
           shape=sdpa_shape, families=SDPA_FAMILIES,
           example_shapes=((2, 2, 3), (2, 3, 3), (2, 3, 2)),
           conventions="TorchLean's hardMaskedSoftmax: a fully masked row gives zeros and zero "
           "gradients (as torch 2.13's F.scaled_dot_product_attention on CPU; a softmax of "
           "masked_fill(-inf) scores gives NaN); mask and is_causal together are an error (as "
           "PyTorch); scale multiplies the scores (PyTorch's meaning; TorchLean multiplies "
           "by 1/attentionScaleDenom, the same default); non-finite q/k/v propagate by IEEE "
           "rules through the same formula",
           torchlean="scaledDotProductAttention / flashAttention / sparseAttention"),
]
