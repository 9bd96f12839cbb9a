"""Forward-mode (JVP) specs of TorchLean (catalog §1.5, §1.7, §1.8, §1.9).

Each op is the directional derivative of a primal refrt op, J(x) dx, as its own op: it
takes the primal's inputs and one tangent per differentiable input, and returns the
tangent of the output (TorchLean's ``...Jvp`` / ``...LinearizationSpec``):

* log_softmax_jvp(y, dx): dx - <exp(y), dx> along axis, y = log_softmax(x) (logSoftmaxJvpSpec
  takes the primal *output*, as logSoftmaxBackwardSpec does).
* layer_norm_jvp(x, gamma, dx, dgamma, dbeta): dxhat = inv_std (dx - mean(dx) - xhat
  mean(dx xhat)); dxhat gamma + xhat dgamma + dbeta (layerNormJvp).
* batch_norm2d_jvp: the same closed form over each channel's set (batchNorm2dJvp; the sets
  of refrt's batch_norm: channel_axis=0 TorchLean's (C, H, W), 1 PyTorch's (N, C, H, W)).
* max_pool2d_jvp(x, dx): the tangent at each window's first argmax of x
  (maxPool*LinearizationSpec).
* scaled_dot_product_attention_jvp(q, k, v, dq, dk, dv): softmaxBackwardFromWeights(A,
  dS) v + A dv with dS = scale (dq k^T + q dk^T) (scaledDotProductAttentionJvp).

The ops are linear in the tangents, so their VJP with respect to a tangent is the
primal's VJP (the transpose of the same Jacobian); with respect to the primal inputs it
is the second derivative contracted with the tangent and the cotangent (the closed
forms are in each op's ``vjp`` contract and derived in backends/mp_jvp.py).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import bad_value
from . import _shapes
from .attention import sdpa_shape
from .conv import POOL_PARAMS, _pool_example, pool_shape
from ._spec import EPSILON, Arg, Case, OpSpec, Param, Tol

INF, NAN = math.inf, math.nan
EPS = Param("eps", EPSILON, "eps", "added to the variance inside the sqrt (TorchLean 1e-6)")


def _same(spec, arrays, pairs):
    for i, j in pairs:
        if arrays[j].shape != arrays[i].shape:
            raise bad_value(spec.name, spec.arg_names[j], f"shape {arrays[i].shape} (the "
                            f"shape of '{spec.arg_names[i]}': a tangent has its primal's "
                            "shape)", f"shape {arrays[j].shape}")


# ---- shape rules --------------------------------------------------------------------------

def lsm_jvp_shape(spec, arrays, params):
    _same(spec, arrays, ((0, 1),))
    return _shapes.along_axis(spec, arrays, params)


def ln_jvp_shape(spec, arrays, params):
    x = arrays[0]
    if x.ndim < 1:
        raise bad_value(spec.name, "x", "an array of at least 1 dimension (..., D)",
                        "a 0-d array")
    _same(spec, arrays, ((0, 2),))
    d = x.shape[-1]
    for k in (1, 3, 4):
        if arrays[k].shape != (d,):
            raise bad_value(spec.name, spec.arg_names[k], f"shape ({d},) (the last axis of x)",
                            f"shape {arrays[k].shape}")
    return x.shape


def bn_jvp_shape(spec, arrays, params):
    x = arrays[0]
    ca = params["channel_axis"]
    if isinstance(ca, bool) or ca not in (0, 1):
        raise bad_value(spec.name, "channel_axis", "1 for PyTorch's (N, C, spatial...) or 0 "
                        "for TorchLean's per-sample (C, spatial...)", repr(ca))
    if x.ndim < ca + 2:
        raise bad_value(spec.name, "x", "(N, C, spatial...) for channel_axis=1" if ca else
                        "(C, spatial...) for channel_axis=0", f"shape {x.shape}")
    _same(spec, arrays, ((0, 2),))
    c = x.shape[ca]
    for k in (1, 3, 4):
        if arrays[k].shape != (c,):
            raise bad_value(spec.name, spec.arg_names[k], f"shape ({c},) (one value per "
                            "channel)", f"shape {arrays[k].shape}")
    return x.shape


def _pool_jvp_example(ints):
    shapes, p = _pool_example(ints)
    p.pop("_draw")
    return [shapes[0], shapes[0]], p


def pool_jvp_shape(spec, arrays, params):
    _same(spec, arrays, ((0, 1),))
    return pool_shape(spec, arrays[:1], params)


pool_jvp_shape.draw_example = _pool_jvp_example


def _smooth_jvp_example(ints):
    shapes, p = _pool_example(ints)
    p["beta"] = (1.0, -1.0, 0.5, 3.0, -2.0, 1.0, 8.0, 1.0)[p.pop("_draw")]
    return [shapes[0], shapes[0]], p


def smooth_jvp_shape(spec, arrays, params):
    _same(spec, arrays, ((0, 1),))
    return pool_shape(spec, arrays[:1], params)


smooth_jvp_shape.draw_example = _smooth_jvp_example


def _smooth_jvp_terms(arrays, params, g):
    """gx_k = sum_w g_w beta w_k (dx_k - out_w): terms sum_w |g_w beta| w_k (|dx_k| +
    |out_w|), float64 (each window's softmax from its pivot); dx's gradient is the smooth
    max pool's VJP (its own budget: sum_w |g_w| w_k)."""
    x, dx = (np.asarray(a, np.float64) for a in arrays)
    x4, d4 = (x, dx) if x.ndim == 4 else (x[None], dx[None])
    n, c, h, w = x4.shape
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    beta = params["beta"]
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    H, W = max((ho - 1) * sh + kh, h + 2 * ph), max((wo - 1) * sw + kw, w + 2 * pw)
    xp, dp = np.zeros((n, c, H, W)), np.zeros((n, c, H, W))
    xp[:, :, ph:ph + h, pw:pw + w] = x4
    dp[:, :, ph:ph + h, pw:pw + w] = d4
    gabs = np.abs(np.asarray(g, np.float64)).reshape(n, c, ho, wo) * abs(beta)
    sl = lambda a, i, j: a[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]  # noqa
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    X = np.stack([sl(xp, i, j) for i, j in taps])
    Dx = np.stack([sl(dp, i, j) for i, j in taps])
    with np.errstate(all="ignore"):
        piv = X.max(axis=0) if beta > 0 else X.min(axis=0)
        e = np.exp(beta * (X - piv))
        wgt = e / e.sum(axis=0)
        o = np.abs((wgt * Dx).sum(axis=0))
    acc = np.zeros(xp.shape)
    with np.errstate(all="ignore"):         # an overflowing budget is inf: no acceptance
        for k, (i, j) in enumerate(taps):
            acc[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw] += \
                gabs * wgt[k] * (np.abs(Dx[k]) + o)
    from .conv import _smooth_terms
    return (acc[:, :, ph:ph + h, pw:pw + w].reshape(x.shape),
            _smooth_terms(arrays[:1], params, g)[0])


def sdpa_jvp_shape(spec, arrays, params):
    out = sdpa_shape(spec, arrays[:3], params)
    _same(spec, arrays, ((0, 3), (1, 4), (2, 5)))
    return out


# ---- condition-number budgets of the VJPs (registry/_terms.py's contract) ----------------

def _lsm_terms(arrays, params, g):
    """g_dx_j = g_j - exp(y_j) sum(g): terms |g_j| + exp(y_j) |sum g| (float64)."""
    y, dx = (np.asarray(a, np.float64) for a in arrays)
    ax = params["axis"]
    gg = np.asarray(g, np.float64).reshape(y.shape)
    with np.errstate(all="ignore"):
        e = np.exp(y)
        s = np.sum(gg, axis=ax, keepdims=True) if y.ndim else gg
        return (None, np.abs(gg) + e * np.abs(s))


def _rows(x, name, params):
    if name == "layer_norm_jvp":
        d = x.shape[-1]
        return x.reshape(-1, d)
    from ._norm2_layout import layout
    return np.asarray(layout("batch_norm", x.shape, params).rows(x))


def _norm_terms(name):
    """Magnitudes of the terms of each VJP component (float64, unscaled): x's second-order
    form s^2 [(3 mu ma - cov(a, u)) xhat - ma Pu - mu Pa] + s (Pb - xhat mb) and dx's
    s (Pa - xhat ma) are differences of terms that cancel for some inputs."""
    def terms(arrays, params, g):
        x, gamma, dx, dgamma, dbeta = (np.asarray(a, np.float64) for a in arrays)
        from ._norm2_layout import layout
        if name == "layer_norm_jvp":
            R, D = int(np.prod(x.shape[:-1], dtype=np.int64)), x.shape[-1]
            rows = lambda a: a.reshape(R, D)                         # noqa: E731
            unrows = lambda a: a.reshape(x.shape)                    # noqa: E731
            expand = lambda p: np.broadcast_to(p, (R, D))            # noqa: E731
        else:
            L = layout("batch_norm", x.shape, params)
            rows, unrows, expand = L.rows, L.unrows, L.expand
        xr, ur = np.asarray(rows(x)), np.asarray(rows(dx))
        gr = np.asarray(rows(np.asarray(g, np.float64).reshape(x.shape)))
        with np.errstate(all="ignore"):
            c = xr - xr.mean(axis=1, keepdims=True)
            s = 1 / np.sqrt((c * c).mean(axis=1, keepdims=True) + params["eps"])
            xh = c * s
            a = gr * np.asarray(expand(gamma))
            b = gr * np.asarray(expand(dgamma))
            m = lambda t: t.mean(axis=1, keepdims=True)              # noqa: E731
            mu, ma, mb = m(xh * ur), m(xh * a), m(xh * b)
            cov = np.abs(m(a * ur)) + np.abs(m(a) * m(ur))
            tx = (s * s * ((3 * np.abs(mu * ma) + cov) * np.abs(xh) + np.abs(ma) * (np.abs(ur)
                  + np.abs(m(ur))) + np.abs(mu) * (np.abs(a) + np.abs(m(a))))
                  + s * (np.abs(b) + np.abs(m(b)) + np.abs(xh * mb)))
            tdx = s * (np.abs(a) + np.abs(m(a)) + np.abs(xh * ma))
            dxh = np.abs(s) * (np.abs(ur) + np.abs(m(ur)) + np.abs(xh * mu))
        tg = np.abs(gr) * dxh
        if name == "layer_norm_jvp":
            tgam, tdg, tdb = tg.sum(axis=0), np.abs(gr * xh).sum(axis=0), np.abs(gr).sum(axis=0)
        else:
            tgam, tdg, tdb = tg.sum(axis=1), np.abs(gr * xh).sum(axis=1), np.abs(gr).sum(axis=1)
        return (unrows(tx), tgam, unrows(tdx), tdg, tdb)
    return terms


# ---- declarations -------------------------------------------------------------------------

LSM_FAMILIES = ("normal", "wide", "large_spread", "dominant", "margins", "large_mean",
                "subnormal")
# wide and cancel_max are left out: dxhat = s (P dx - xhat mean(xhat dx)) projects dx
# orthogonally to 1 and xhat, and a row whose largest |x| dominates (wide: 1e294 next to
# 1e-82) has xhat ~ +-sqrt(D - 1) there, so that component of dx cancels to ~1e-200 of
# its terms (measured: 2.65e-107 from terms of 1.3e294, float64 wide seed 1): condition
# numbers far beyond the double-word's 2^-2p (1.1e19 ulp in float64; float32 370 ulp);
# cancel_max's +-max tangents overflow the double-word products (4e9 ulp).  normal,
# large_mean and subnormal: 0 ulp in both dtypes (correctly rounded on every draw).
# layer_norm_jvp also leaves out subnormal for its VJP: dgamma's gradient sum(g xhat) is
# layer_norm's own VJP sum, whose subnormal gap is documented in losses.NORM_FAMILIES
# (measured here 579 ulp, float64 seed 0); batch_norm's (norm2.pyx) scales such rows.
NORM_JVP_FAMILIES = ("normal", "large_mean", "subnormal")
LN_JVP_FAMILIES = ("normal", "large_mean")
POOL_JVP_FAMILIES = ("normal", "wide", "extremal", "large_mean", "subnormal", "cancel_max")
# extremal is left out: +-inf and +-max cells make the weights' exp(beta (x - pivot)) inf - inf;
# cancel_max: the forward is within 2 ulp, but the x gradient's dx_k - y_w overflows for
# +-max tangents of opposite signs (inf where the real value is finite)
SMOOTH_JVP_FAMILIES = ("normal", "wide", "large_mean", "subnormal")
SDPA_JVP_FAMILIES = ("normal", "large_mean", "subnormal", "cancel_max", "wide")
IMG = (((1.0, 2.0), (3.0, 4.0)),)
TAN = (((5.0, 6.0), (7.0, 8.0)),)
NORM_ARGS = (Arg("x"), Arg("gamma"), Arg("dx"), Arg("dgamma"), Arg("dbeta"))
NORM_VJP = ("x: s^2 [(3 mu ma - cov(a, dx)) xhat - ma P dx - mu P a] + s (P b - xhat mb), "
            "a = g gamma, b = g dgamma, s = inv_std, P = centring, mu = mean(xhat dx), "
            "ma = mean(xhat a), mb = mean(xhat b) (second derivative of xhat); gamma: "
            "sum(g dxhat); dx: the primal's x gradient s (P a - xhat ma); dgamma: sum(g "
            "xhat); dbeta: sum(g), sums over each normalised set / gamma's broadcast axes")

SPECS = [
    OpSpec(name="log_softmax_jvp", signature="log_softmax_jvp(y, dx, axis=-1) -> dy",
           kind="softmax", args=(Arg("y"), Arg("dx")),
           doc="dx - sum(exp(y) dx) along axis: the JVP of log_softmax at its output y; "
           "computed as dx - exp(m) sum(exp(y - m) dx), m = max(y) (no overflow of exp(y) "
           "for logits), the sum a compensated (TwoProd + TwoSum) dot, dx_i minus it "
           "rounded once",
           tol=Tol(float32=4, float64=4), params=(Param("axis", -1, "axis"),),
           special_cases=(Case(((0.0, -INF), (3.0, 5.0)), 0.0,
                               note="exp(-inf) = 0: the tangent of a one-hot row is 0"),
                          Case(((-INF, 0.0), (2.0, 7.0)), -5.0),
                          Case(((0.0, NAN), (1.0, 1.0)), NAN),
                          Case(((0.0,), (4.0,)), 0.0, note="one class: always 0")),
           vjp="dx: g - exp(y) * sum(g, axis) (log_softmax's VJP from its output); "
           "y: -exp(y) * dx * sum(g, axis)",
           vjp_tol=Tol(float32=4, float64=4), vjp_terms=_lsm_terms,
           shape=lsm_jvp_shape, families=LSM_FAMILIES,
           example_shapes=((3, 5), (3, 5)),
           conventions="y is a log_softmax output (TorchLean logSoftmaxJvpSpec y dx); any real "
           "y is accepted and the formula evaluated as written (for y not a log-probability "
           "row it is not a derivative of anything); non-finite y or dx propagate by IEEE "
           "rules (a NaN or +inf in y makes the row NaN)",
           torchlean="logSoftmaxJvpSpec"),
    OpSpec(name="layer_norm_jvp",
           signature="layer_norm_jvp(x, gamma, dx, dgamma, dbeta, eps=1e-06) -> dy",
           kind="norm", args=NORM_ARGS,
           doc="the JVP of layer_norm over the last axis: dxhat = inv_std (dx - mean(dx) - "
           "xhat mean(dx xhat)), dy = dxhat gamma + xhat dgamma + dbeta; the statistics are "
           "layer_norm's (two-pass, double-word 1/std), xhat, the two means and the three "
           "products double-words, rounded once",
           tol=Tol(float32=4, float64=4), params=(EPS,),
           special_cases=(Case(((1e6,), (2.0,), (5.0,), (3.0,), (7.0,)), 7.0,
                               note="one element: xhat = 0 and dxhat = 0, dy = dbeta"),
                          Case((((1.0, 3.0),), (1.0, 1.0), ((1.0, 1.0),), (0.0, 0.0),
                                (0.0, 0.0)), 0.0,
                               note="a shift of x does not move xhat"),
                          Case((((1.0, NAN),), (1.0, 1.0), ((1.0, 1.0),), (0.0, 0.0),
                                (0.0, 0.0)), NAN)),
           vjp=NORM_VJP, vjp_tol=Tol(float32=8, float64=8),
           vjp_terms=_norm_terms("layer_norm_jvp"),
           shape=ln_jvp_shape, families=LN_JVP_FAMILIES,
           example_shapes=((3, 6), (6,), (3, 6), (6,), (6,)),
           conventions="beta does not enter (the JVP does not depend on it); dgamma and dbeta "
           "are the tangents of gamma and beta.  The dgamma and dbeta gradients are "
           "layer_norm's own VJP sums (sum g xhat, sum g)",
           torchlean="layerNormJvp"),
    OpSpec(name="batch_norm2d_jvp",
           signature="batch_norm2d_jvp(x, gamma, dx, dgamma, dbeta, eps=1e-06, "
           "channel_axis=1) -> dy",
           kind="norm", args=NORM_ARGS,
           doc="the JVP of batch_norm (batch statistics) per channel: the layer_norm_jvp "
           "closed form over each channel's set (channel_axis=1: x (N, C, spatial...), the "
           "set is N and the spatial axes; channel_axis=0: x (C, spatial...), TorchLean's "
           "batchNorm2d over H x W); same kernel as layer_norm_jvp",
           tol=Tol(float32=4, float64=4),
           params=(EPS, Param("channel_axis", 1, "int", "1: (N, C, ...); 0: (C, ...)")),
           special_cases=(Case(((((1.0, 3.0),),), (3.0,), (((1.0, 5.0),),), (1.0,), (0.5,)),
                               -0.5, params={"eps": 0.0},
                               note="dx affine in x (2x - 1) leaves xhat still: xhat dgamma "
                               "+ dbeta"),
                          Case((((1.0, 3.0),), (1.0,), ((0.0, 0.0),), (2.0,), (0.0,)),
                               -2.0, params={"channel_axis": 0, "eps": 0.0},
                               note="TorchLean's (C, H, W) form: xhat dgamma")),
           vjp=NORM_VJP, vjp_tol=Tol(float32=8, float64=8),
           vjp_terms=_norm_terms("batch_norm2d_jvp"),
           shape=bn_jvp_shape, families=NORM_JVP_FAMILIES,
           example_shapes=((2, 3, 4), (3,), (2, 3, 4), (3,), (3,)),
           conventions="the sets of refrt's batch_norm (PyTorch training mode for "
           "channel_axis=1, TorchLean's per-sample batchNorm2d for channel_axis=0); beta "
           "does not enter",
           torchlean="batchNorm2dJvp"),
    OpSpec(name="max_pool2d_jvp",
           signature="max_pool2d_jvp(x, dx, kernel_size=2, stride=None, padding=0) -> dy",
           kind="spatial", args=(Arg("x"), Arg("dx")),
           doc="Spatial input (N, C, H, W) or (C, H, W).  dx at each window's first maximum "
           "of x (max_pool2d's winner: padded cells ignored, first maximum in row-major "
           "order, a NaN beats every number); exact (a selection, 0 ulp)",
           tol=Tol(float32=0, float64=0), params=POOL_PARAMS,
           special_cases=(Case((IMG, TAN), 8.0, note="the winner of x = 4 at (1, 1)"),
                          Case(((((1.0, 1.0), (1.0, 1.0)),), TAN), 5.0,
                               note="ties: the first maximum's tangent"),
                          Case(((((1.0, NAN), (2.0, 3.0)),), TAN), 6.0,
                               note="a NaN wins (as max_pool2d): its tangent"),
                          Case((IMG, TAN), 5.0, params={"padding": 1},
                               note="the corner window holds only x[0, 0]")),
           vjp="dx: g routed to each window's first argmax of x (max_pool2d's VJP); x: 0 "
           "(the selection is piecewise constant in x: the derivative is 0 wherever it "
           "exists, i.e. away from ties; at a tie the first-max convention gives 0 too)",
           vjp_tol=Tol(float32=0, float64=0),
           shape=pool_jvp_shape, families=POOL_JVP_FAMILIES,
           example_shapes=((1, 2, 4, 5), (1, 2, 4, 5)),
           conventions="the winner is max_pool2d's (its conventions: NaN wins, padding <= "
           "kernel / 2); torch.func.jvp of F.max_pool2d picks the same winner except at "
           "ties and NaN",
           torchlean="maxPool*LinearizationSpec (maxPool2d linearization)"),
    OpSpec(name="smooth_max_pool2d_jvp",
           signature="smooth_max_pool2d_jvp(x, dx, kernel_size=2, stride=None, padding=0, "
           "beta=1.0) -> dy",
           kind="spatial", args=(Arg("x"), Arg("dx")),
           doc="Spatial input (N, C, H, W) or (C, H, W).  The JVP of smooth_max_pool2d: per "
           "window, sum_k softmax(beta x)_k dx_k (padded cells: value 0, tangent 0); the "
           "weights exp(beta (x - pivot)) with the roundings of x - pivot and of the product "
           "by beta compensated, Dot2 / Sum2 sums, one double-word division; each weight "
           "keeps exp's own rounding, which mixed-sign tangents amplify by sum w |dx| / "
           "|dy| (measured 8 ulp float32, 0 float64, normal family)",
           tol=Tol(float32=16, float64=8),
           params=POOL_PARAMS + (Param("beta", 1.0, "float", "sharpness, nonzero"),),
           special_cases=(Case(((((0.0, 0.0), (0.0, 0.0)),), TAN), 6.5,
                               note="equal values: the mean of the tangents"),
                          Case(((((0.0, 0.0), (0.0, 0.0)),), TAN), 6.5, params={"beta": -1.0}),
                          Case(((((1000.0, 0.0), (0.0, 0.0)),), TAN), 5.0,
                               note="one dominant value: its tangent (no overflow)"),
                          Case(((((1.0, NAN), (2.0, 3.0)),), TAN), NAN)),
           vjp="dx: smooth_max_pool2d's VJP (g times the window softmax, summed over the "
           "windows); x: sum over windows w of g_w beta w_k (dx_k - y_w), y_w this op's "
           "output (d softmax_k / d x_j = beta w_k (delta_kj - w_j))",
           vjp_tol=Tol(float32=16, float64=8), vjp_terms=_smooth_jvp_terms,
           shape=smooth_jvp_shape, families=SMOOTH_JVP_FAMILIES,
           example_shapes=((1, 2, 4, 5), (1, 2, 4, 5)),
           conventions="TorchLean's smooth max pool (padded cells take part as the value 0, "
           "their tangent 0); an infinite pivot gives the winner's tangent (the one-hot limit "
           "of the weights), a NaN in the window NaN.  PyTorch has no smooth max pool (no "
           "torch row)",
           torchlean="smooth-max JVP (smoothMaxPool2d linearization: sum softmax(beta x) dx)"),
    OpSpec(name="scaled_dot_product_attention_jvp",
           signature="scaled_dot_product_attention_jvp(q, k, v, dq, dk, dv, mask=None, "
           "is_causal=False, scale=None) -> dout",
           kind="attention",
           args=(Arg("q", differentiable=False), Arg("k", differentiable=False),
                 Arg("v", differentiable=False), Arg("dq"), Arg("dk"), Arg("dv")),
           doc="the JVP of scaled_dot_product_attention at (q, k, v) along (dq, dk, dv): "
           "dS = scale (dq k^T + q dk^T), out = A (dS - sum(A dS, -1)) v + A dv, A = SDPA's "
           "hard-masked weights (TorchLean softmaxBackwardFromWeights: blocked entries 0, a "
           "row with no allowed key gives 0); shapes, mask, is_causal and scale as "
           "scaled_dot_product_attention (a tangent has its primal's shape).  The weights "
           "are SDPA's double-word row pass; dS, its weighted centring and both products "
           "are double-words, rounded once",
           tol=Tol(float32=4, float64=4),
           params=(Param("mask", None, "bool_mask", "bool array, True = may attend"),
                   Param("is_causal", False, "bool", "causal mask j <= i"),
                   Param("scale", None, "float_or_none", "score multiplier; None: 1/sqrt(E)")),
           special_cases=(Case((((1.0, 2.0),), ((3.0, 4.0),), ((5.0,),), ((1.0, 1.0),),
                                ((1.0, 1.0),), ((7.0,),)), 0.0, params={"mask": ((False,),)},
                               note="a fully blocked row gives 0"),
                          Case((((1.0, 2.0),), ((3.0, 4.0),), ((5.0,),), ((9.0, 9.0),),
                                ((9.0, 9.0),), ((7.0,),)), 7.0,
                               note="one key: its weight is 1 whatever the score: dv"),
                          Case((((1000.0,),), ((1.0,), (1.0,)), ((1.0,), (-1.0,)), ((0.0,),),
                                ((0.0,), (0.0,)), ((2.0,), (4.0,))), 3.0,
                               note="tied scores, no score tangent: the mean of dv"),
                          Case((((1.0,), (2.0,)), ((1.0,), (2.0,)), ((3.0,), (5.0,)),
                                ((1.0,), (1.0,)), ((1.0,), (1.0,)), ((7.0,), (9.0,))), 7.0,
                               params={"is_causal": True},
                               note="causal: row 0 sees key 0 only: dv[0]"),
                          Case((((NAN,),), ((1.0,), (2.0,)), ((3.0,), (5.0,)), ((1.0,),),
                                ((1.0,), (1.0,)), ((7.0,), (9.0,))), NAN)),
           vjp="dq, dk, dv: scaled_dot_product_attention's VJP at (q, k, v) (the JVP is "
           "linear in the tangents with SDPA's Jacobian); q, k, v: non_differentiable (the "
           "second-order term is not implemented: refrt gives no gradient there)",
           vjp_tol=Tol(float32=8, float64=8),
           shape=sdpa_jvp_shape, families=SDPA_JVP_FAMILIES,
           example_shapes=((3, 2), (3, 2), (3, 2), (3, 2), (3, 2), (3, 2)),
           conventions="scaled_dot_product_attention's (fully masked rows give 0, mask and "
           "is_causal together an error, scale=None is 1/sqrt(E)); blocked keys' dk and dv "
           "are never read; non-finite inputs propagate by IEEE rules through the same "
           "formula; torch.func.jvp of F.scaled_dot_product_attention is the torch row",
           torchlean="scaledDotProductAttentionJvp"),
]
