"""Multi-head attention (TorchLean §1.8 MultiHeadAttention, PyTorch nn.MultiheadAttention).

``multi_head_attention(query, key, value, w_q, w_k, w_v, w_o, b_q=None, b_k=None,
b_v=None, b_o=None, num_heads=1, mask=None, is_causal=False, scale=None)``:

    Q = query W_q + b_q,  K = key W_k + b_k,  V = value W_v + b_v      (D = H hd columns)
    head h: O_h = SDPA(Q[..., h], K[..., h], V[..., h], mask)        (scale 1/sqrt(hd))
    out = concat_h(O_h) W_o + b_o

TorchLean's layout: W_q, W_k, W_v are (dModel, H hd) and W_o is (H hd, dModel),
applied as x W (no transposes), head h the columns h hd .. (h + 1) hd (splitHeadsSpec
reshapes (n, H hd) to (n, H, hd)), and TorchLean has no biases (omit them: zeros stand
in, which add exactly nothing).  PyTorch's nn.MultiheadAttention stores
in_proj_weight (3E, E) and out_proj.weight (E, E) applied as x W^T, with in_proj_bias
(3E,) and out_proj.bias (E,): ``refrt.nn.mha_params(module)`` (refrt/nn.py) gives the
keywords of this op from such a module (W_q = in_proj_weight[:E].T, ...).
query is (N, L, Eq) or unbatched (L, Eq) (PyTorch batch_first=True layout / TorchLean's
(n, dModel)); key (N, S, Ek), value (N, S, Ev).  mask: bool, True = may attend,
broadcastable to (N, H, L, S) ((H, L, S) unbatched), as scaled_dot_product_attention;
a query row with every key masked out gives zeros (hard-masked softmax), so its output
row is b_o.
"""
from __future__ import annotations

import numpy as np

from ..errors import bad_type, bad_value
from .attention import _mask_param
from ._spec import Arg, Case, OpSpec, Param, Tol

MHA_ARGS = ("query", "key", "value", "w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


def _dims(spec, arrays, params):
    """Validated (batched, N, L, S, D, H, hd, Eo)."""
    q, k, v, wq, wk, wv, wo, bq, bk, bv, bo = arrays
    if q.ndim not in (2, 3):
        raise bad_value(spec.name, "query", "a 3-d (N, L, E) or 2-d (L, E) array",
                        f"shape {q.shape}")
    for name, a in (("key", k), ("value", v)):
        if a.ndim != q.ndim:
            raise bad_value(spec.name, name, f"a {q.ndim}-d array like query "
                            f"({'(N, S, E)' if q.ndim == 3 else '(S, E)'})", f"shape {a.shape}")
        if q.ndim == 3 and a.shape[0] != q.shape[0]:
            raise bad_value(spec.name, name, f"batch size {q.shape[0]} (query's)",
                            f"shape {a.shape}")
    if v.shape[-2] != k.shape[-2]:
        raise bad_value(spec.name, "value", f"{k.shape[-2]} rows (the number of keys S, "
                        "key's)", f"shape {v.shape}")
    if wq.ndim != 2:
        raise bad_value(spec.name, "w_q", "a 2-d (E, H*hd) array (TorchLean's layout, "
                        "applied as x W)", f"shape {wq.shape}")
    D = wq.shape[1]
    for name, a, rows in (("w_q", wq, q.shape[-1]), ("w_k", wk, k.shape[-1]),
                          ("w_v", wv, v.shape[-1])):
        if a.shape != (rows, D):
            raise bad_value(spec.name, name, f"shape {(rows, D)} (input size {rows}, "
                            f"H*hd = {D} columns as w_q)", f"shape {a.shape}")
    if wo.ndim != 2 or wo.shape[0] != D:
        raise bad_value(spec.name, "w_o", f"a 2-d ({D}, E_out) array (H*hd rows)",
                        f"shape {wo.shape}")
    Eo = wo.shape[1]
    for name, a, n in (("b_q", bq, D), ("b_k", bk, D), ("b_v", bv, D), ("b_o", bo, Eo)):
        if a.shape != (n,):
            raise bad_value(spec.name, name, f"shape {(n,)}", f"shape {a.shape}")
    H = params.get("num_heads")
    if isinstance(H, (bool, np.bool_)) or not isinstance(H, (int, np.integer)):
        raise bad_type(spec.name, "num_heads", "a positive integer", f"{type(H).__name__} {H!r}")
    if H < 1 or D % H:
        raise bad_value(spec.name, "num_heads", f"a positive divisor of the projection "
                        f"width H*hd = {D} (w_q's columns)", H)
    params["num_heads"] = int(H)
    batched = q.ndim == 3
    N = q.shape[0] if batched else 1
    return batched, N, q.shape[-2], k.shape[-2], D, int(H), D // int(H), Eo


def mha_shape(spec, arrays, params):
    batched, N, L, S, D, H, hd, Eo = _dims(spec, arrays, params)
    _mask_param(spec, params, (N, H) if batched else (H,), L, S)
    return arrays[0].shape[:-1] + (Eo,)


def _bias(k, col):
    def shape(shapes, params):
        w = shapes[k]
        return (w[col],) if len(w) == 2 else (0,)
    return shape


def _mha_example(ints):
    """Hunt shapes: batched or not, L, S in 1..3, E 1..3, H 1..2, hd 1..2."""
    H, hd, L, S, E = ints(1, 2), ints(1, 2), ints(1, 3), ints(1, 3), ints(1, 3)
    D = H * hd
    lead = (ints(1, 2),) if ints(0, 1) else ()
    return ([lead + (L, E), lead + (S, E), lead + (S, E), (E, D), (E, D), (E, D), (D, E),
             (D,), (D,), (D,), (E,)], {"num_heads": H})


mha_shape.draw_example = _mha_example

# ---- condition-number budget of the VJP (registry/_terms.py) ------------------------------
# Every gradient is a sum of products that cancels by construction: sum_j dS_j = 0 (the
# softmax's weights sum to 1), so b_k's gradient is 0 in the reals and the key bias
# drops out of dQ = dS K; dA_j - <A, dA> cancels for near-one-hot weights.  The budget of
# each component is the magnitude of its terms, built stage by stage from magnitudes
# (float64 estimates from the exact-enough forward values).  Each stored stage (the
# projections, dO, dS, dQ, dK, dV, O) is a double-word whose lo part, in the subnormal
# range, is off by up to its quantum (the smallest subnormal): every stage's budget
# includes that quantum in units of eps, which the later products scale (as the
# recurrent cells' budgets do, _terms_recurrent.py).

def _mha_terms(arrays, params, g):
    f = [np.asarray(a, np.float64) for a in arrays]
    fi = np.finfo(arrays[0].dtype if np.asarray(arrays[0]).dtype.kind == "f" else np.float64)
    qu = float(fi.smallest_subnormal) / float(fi.eps)
    q, k, v, wq, wk, wv, wo, bq, bk, bv, bo = f
    H = params["num_heads"]
    D = wq.shape[1]
    hd = D // H
    N = q.shape[0] if q.ndim == 3 else 1
    L, S = q.shape[-2], k.shape[-2]
    xs = [a.reshape(-1, a.shape[-1]) for a in (q, k, v)]
    sc = params.get("scale")
    sc = abs(sc) if sc is not None else (1.0 if hd == 0 else 1 / np.sqrt(hd))
    m = params.get("mask")
    m = np.ones((N, H, L, S), bool) if m is None else np.asarray(m).reshape(N, H, L, S)

    def heads(P, T):
        return P.reshape(N, T, H, hd).transpose(0, 2, 1, 3)

    def unheads(X):
        return X.transpose(0, 2, 1, 3).reshape(-1, D)

    with np.errstate(all="ignore"):
        P = [x @ w + b for x, w, b in zip(xs, (wq, wk, wv), (bq, bk, bv))]
        Pa = [np.abs(x) @ np.abs(w) + np.abs(b) + qu for x, w, b in zip(xs, (wq, wk, wv), (bq, bk, bv))]
        Q, K, V = heads(P[0], L), heads(P[1], S), heads(P[2], S)
        Qa, Ka, Va = heads(Pa[0], L), heads(Pa[1], S), heads(Pa[2], S)
        s = np.where(m, sc * Q @ K.swapaxes(-1, -2), -np.inf)
        mx = np.max(s, axis=-1, keepdims=True) if S else s
        e = np.where(m, np.exp(s - np.where(np.isfinite(mx), mx, 0.0)), 0.0)
        A = np.nan_to_num(e / e.sum(axis=-1, keepdims=True))
        O = np.abs(unheads(A @ V)) + qu
        g2 = np.abs(np.asarray(g, np.float64)).reshape(-1, wo.shape[1])
        dOa = heads(g2 @ np.abs(wo).T + qu, L)
        dAa = dOa @ Va.swapaxes(-1, -2)
        dSa = sc * A * (dAa + (A * dAa).sum(axis=-1, keepdims=True)) + qu
        dQa = unheads(dSa @ Ka) + qu
        dKa = unheads(dSa.swapaxes(-1, -2) @ Qa) + qu
        dVa = unheads(A.swapaxes(-1, -2) @ dOa) + qu
        out_x, out_w, out_b = [], [], []
        for x, w, d, a in zip(xs, (wq, wk, wv), (dQa, dKa, dVa), (q, k, v)):
            out_x.append((d @ np.abs(w).T).reshape(a.shape))
            out_w.append(np.abs(x).T @ d)
            out_b.append(d.sum(axis=0))
        return (*out_x, *out_w, O.T @ g2, *out_b, g2.sum(axis=0))


_ONE = ((1.0,),)
SPECS = [
    OpSpec(
        name="multi_head_attention",
        signature="multi_head_attention(query, key, value, w_q, w_k, w_v, w_o, b_q=None, "
                  "b_k=None, b_v=None, b_o=None, num_heads=1, mask=None, is_causal=False, "
                  "scale=None) -> out",
        kind="attention",
        args=(Arg("query"), Arg("key"), Arg("value"), Arg("w_q"), Arg("w_k"), Arg("w_v"),
              Arg("w_o"), Arg("b_q", optional=_bias(3, 1)), Arg("b_k", optional=_bias(4, 1)),
              Arg("b_v", optional=_bias(5, 1)), Arg("b_o", optional=_bias(6, 1))),
        doc="TorchLean MultiHeadAttention / nn.MultiheadAttention: Q = query W_q + b_q, K, V "
            "likewise (W (E, H*hd), TorchLean's layout), per head h (columns h*hd..) "
            "scaled_dot_product_attention with scale 1/sqrt(hd) and the mask, heads "
            "concatenated, times W_o (H*hd, E_out) + b_o; (N, L, E) or unbatched (L, E). "
            "Projections, scores, weights and head outputs are double-words (~2p bits), "
            "the output projection rounds once",
        tol=Tol(float32=4, float64=4),
        params=(Param("num_heads", 1, "int", "H; H*hd = w_q's columns"),
                Param("mask", None, "bool_mask", "bool array, True = may attend, "
                      "broadcastable to (N, H, L, S)"),
                Param("is_causal", False, "bool", "causal mask j <= i"),
                Param("scale", None, "float_or_none", "score multiplier; None: 1/sqrt(hd)")),
        special_cases=(
            Case((((2.0,),), ((1.0,),), ((3.0,),), _ONE, _ONE, _ONE, ((2.0,),)), 6.0,
                 note="one key: weight 1, out = v W_v W_o"),
            Case((((2.0,),), ((1.0,),), ((3.0,),), _ONE, _ONE, _ONE, ((2.0,),), (0.0,), (0.0,),
                  (0.0,), (0.5,)), 0.5, params={"mask": ((False,),)},
                 note="a fully masked row: head output 0, out = b_o (not NaN)"),
            Case((((1.0,), (2.0,)), ((1.0,), (2.0,)), ((3.0,), (5.0,)), _ONE, _ONE, _ONE,
                  _ONE), 3.0, params={"is_causal": True},
                 note="causal: row 0 sees key 0 only"),
            Case((((2.0 ** 40,),), ((1.0,),), ((3.0,),), _ONE, _ONE, _ONE, _ONE, (-2.0 ** 40,),
                  (0.0,), (1.0,), (0.0,)), 4.0,
                 note="2^40 + (-2^40) in the query projection; one key: out = v + b_v"),
            Case((((float("nan"),),), ((1.0,),), ((3.0,),), _ONE, _ONE, _ONE, _ONE), float("nan"))),
        vjp="dO = g W_o^T; w_o: O^T g; b_o: sum(g); per head the SDPA VJP (dA = dO V^T, "
            "dS = scale A (dA - sum(A dA)), dQ = dS K, dK = dS^T Q, dV = A^T dO); query: "
            "dQ W_q^T, w_q: query^T dQ, b_q: sum(dQ) (k, v likewise); TorchLean "
            "MultiHeadAttentionBackward's (dx, dWq, dWk, dWv, dWo) for query = key = value = x "
            "is (dquery + dkey + dvalue, dw_q, dw_k, dw_v, dw_o)",
        vjp_tol=Tol(float32=8, float64=8), vjp_terms=_mha_terms,
        shape=mha_shape, families=("normal", "large_mean", "subnormal"),
        example_shapes=((1, 3, 4), (1, 3, 4), (1, 3, 4), (4, 4), (4, 4), (4, 4), (4, 4),
                        (4,), (4,), (4,), (4,)),
        conventions="TorchLean's weight layout x W (PyTorch's in_proj_weight is W^T, "
            "split in three: refrt.nn.mha_params); biases optional (TorchLean has none); "
            "mask polarity True = may attend (PyTorch's bool attn_mask is the opposite: "
            "True = blocked; key_padding_mask likewise), a fully masked row gives b_o, not "
            "NaN; no dropout (eval).  Range of the accuracy claim: no power-of-two range "
            "scaling, so projections and their products must be inside the format (an "
            "overflowing intermediate is inf/NaN, as in PyTorch); scores |s| well below "
            "2^(2p-8) (~2^40 float32, ~2^98 float64: beyond, the double-word score's "
            "absolute error reaches the weights, which an exact score difference would "
            "need, as SDPA's exact path); results near the underflow threshold carry the "
            "absolute error of the lo parts' subnormal quantum (~|W_o| 2^emin_sub)",
        torchlean="MultiHeadAttention (forward, MultiHeadAttentionBackward) / mhaDGraph"),
]
