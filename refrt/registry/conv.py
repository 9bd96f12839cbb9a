"""Convolution and pooling (TorchLean §1.9 ConvSpec / ConvTransposeSpec / MaxPoolSpec /
AvgPoolSpec / smoothMaxPool2dSpec / adaptive pools; torch.nn.functional names).

Spatial ops take (N, C, H, W) as PyTorch does or (C, H, W) as TorchLean does; the
int-or-pair parameters (stride, padding, dilation, kernel_size, output_size) are an int
or an (h, w) pair and are normalised to pairs by the shape rules.  Output sizes are
TorchLean's slidingWindowOutDim / poolOutDim wherever those are non-zero (equal to
PyTorch's); where TorchLean returns an empty output (kernel larger than the padded
input, stride 0, pool padding > kernel / 2) refrt raises, as PyTorch does.
kernel_size and output_size have no TorchLean default; 2 is refrt's (documented).
"""
from __future__ import annotations

import math

import numpy as np

from ._spec import Arg, Case, OpSpec, Param, Tol
from ..errors import bad_type, bad_value

INF, NAN = math.inf, math.nan
CONV_FAMILIES = ("normal", "wide", "large_mean", "subnormal", "cancel_max")
POOL_FAMILIES = ("normal", "wide", "extremal", "large_mean", "subnormal", "cancel_max")
DOT_TOL = Tol(float32=2, float64=2)


# ---- parameter and shape checks ----------------------------------------------------------

def _pair(spec, name, value, low, allow_none=False):
    """An int or an (h, w) pair of ints >= low, as a pair (None entries kept if allowed)."""
    def ok(v):
        return (v is None and allow_none) or (isinstance(v, (int, np.integer))
                                               and not isinstance(v, (bool, np.bool_)))
    if ok(value) and value is not None:
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(ok(v) for v in value):
        raise bad_type(spec.name, name, "an int or a pair (h, w) of ints", repr(value))
    out = tuple(None if v is None else int(v) for v in value)
    for v in out:
        if v is not None and v < low:
            raise bad_value(spec.name, name, f"values >= {low}", repr(value))
    return out


def _spatial(spec, x, name="x"):
    """(N, C, H, W) of a 4-d (N, C, H, W) or 3-d (C, H, W) input."""
    if x.ndim == 4:
        return x.shape
    if x.ndim == 3:
        return (1,) + x.shape
    raise bad_value(spec.name, name, "a 4-d (N, C, H, W) or 3-d (C, H, W) array",
                    f"shape {x.shape}")


def _out(x, n, c, ho, wo):
    return (n, c, ho, wo) if x.ndim == 4 else (c, ho, wo)


def _conv_common(spec, params, w, c, transposed):
    g = params["groups"]
    if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
        raise bad_value(spec.name, "groups", "an integer >= 1", repr(g))
    if w.ndim != 4:
        lay = "(in_channels, out_channels/groups, kH, kW)" if transposed else \
            "(out_channels, in_channels/groups, kH, kW)"
        raise bad_value(spec.name, "weight", f"a 4-d {lay} array", f"shape {w.shape}")
    if c % g:
        raise bad_value(spec.name, "groups", f"a divisor of the {c} input channels", g)
    if w.shape[2] < 1 or w.shape[3] < 1:
        raise bad_value(spec.name, "weight", "a kernel of at least 1 x 1", f"shape {w.shape}")
    for name, low in (("stride", 1), ("padding", 0), ("dilation", 1)):
        params[name] = _pair(spec, name, params[name], low)
    return g


def _check_bias(spec, b, oc):
    if b.shape != (oc,):
        raise bad_value(spec.name, "bias", f"shape ({oc},) (one value per output channel)",
                        f"shape {b.shape}")


def conv2d_shape(spec, arrays, params):
    x, w, b = arrays
    n, c, h, wd = _spatial(spec, x)
    g = _conv_common(spec, params, w, c, False)
    oc = w.shape[0]
    if oc % g:
        raise bad_value(spec.name, "weight", f"out_channels divisible by groups={g}",
                        f"shape {w.shape}")
    if w.shape[1] * g != c:
        raise bad_value(spec.name, "weight", f"shape ({oc}, {c // g}, kH, kW): in_channels/"
                        f"groups = {c}/{g} (x has {c} channels)", f"shape {w.shape}")
    _check_bias(spec, b, oc)
    (sh, sw), (ph, pw), (dh, dw) = params["stride"], params["padding"], params["dilation"]
    eh, ew = dh * (w.shape[2] - 1) + 1, dw * (w.shape[3] - 1) + 1
    if h + 2 * ph < eh or wd + 2 * pw < ew:
        raise bad_value(spec.name, "weight", f"a (dilated) kernel no larger than the padded "
                        f"input {h + 2 * ph} x {wd + 2 * pw}", f"a {eh} x {ew} kernel")
    return _out(x, n, oc, (h + 2 * ph - eh) // sh + 1, (wd + 2 * pw - ew) // sw + 1)


def conv_transpose2d_shape(spec, arrays, params):
    x, w, b = arrays
    n, c, h, wd = _spatial(spec, x)
    g = _conv_common(spec, params, w, c, True)
    if w.shape[0] != c:
        raise bad_value(spec.name, "weight", f"shape ({c}, out_channels/groups, kH, kW) "
                        f"(x has {c} channels)", f"shape {w.shape}")
    oc = w.shape[1] * g
    _check_bias(spec, b, oc)
    params["output_padding"] = op = _pair(spec, "output_padding", params["output_padding"], 0)
    (sh, sw), (ph, pw), (dh, dw) = params["stride"], params["padding"], params["dilation"]
    if op[0] >= max(sh, dh) or op[1] >= max(sw, dw):
        raise bad_value(spec.name, "output_padding", "values smaller than stride or dilation "
                        f"(stride {(sh, sw)}, dilation {(dh, dw)})", repr(op))
    ho = (h - 1) * sh - 2 * ph + dh * (w.shape[2] - 1) + op[0] + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (w.shape[3] - 1) + op[1] + 1
    if h < 1 or wd < 1 or ho < 1 or wo < 1:
        raise bad_value(spec.name, "padding", "padding that leaves an output of at least "
                        "1 x 1", f"padding {(ph, pw)} on a {h} x {wd} input (output {ho} x {wo})")
    return _out(x, n, oc, ho, wo)


def pool_shape(spec, arrays, params):
    x = arrays[0]
    n, c, h, wd = _spatial(spec, x)
    params["kernel_size"] = k = _pair(spec, "kernel_size", params["kernel_size"], 1)
    params["stride"] = s = k if params["stride"] is None else _pair(spec, "stride", params["stride"], 1)
    params["padding"] = p = _pair(spec, "padding", params["padding"], 0)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise bad_value(spec.name, "padding", f"at most half the kernel size {k}", repr(p))
    if h + 2 * p[0] < k[0] or wd + 2 * p[1] < k[1]:
        raise bad_value(spec.name, "kernel_size", f"a kernel no larger than the padded input "
                        f"{h + 2 * p[0]} x {wd + 2 * p[1]}", repr(k))
    if "beta" in params and params["beta"] == 0:
        raise bad_value(spec.name, "beta", "a nonzero number (beta > 0: smooth max, < 0: "
                        "smooth min)", params["beta"])
    return _out(x, n, c, (h + 2 * p[0] - k[0]) // s[0] + 1, (wd + 2 * p[1] - k[1]) // s[1] + 1)


def adaptive_shape(spec, arrays, params):
    x = arrays[0]
    n, c, h, wd = _spatial(spec, x)
    o = _pair(spec, "output_size", params["output_size"], 1, allow_none=True)
    o = (h if o[0] is None else o[0], wd if o[1] is None else o[1])
    if h < 1 or wd < 1:
        raise bad_value(spec.name, "x", "a non-empty spatial size (H, W >= 1)",
                        f"shape {x.shape}")
    params["output_size"] = o
    return _out(x, n, c, o[0], o[1])


def _bias_shape(shapes, params):
    return (shapes[1][0],) if len(shapes[1]) == 4 else (0,)


def _bias_shape_t(shapes, params):
    g = params.get("groups", 1)
    g = g if isinstance(g, (int, np.integer)) and not isinstance(g, bool) else 1
    return (shapes[1][1] * g,) if len(shapes[1]) == 4 else (0,)


# ---- hunt examples: valid (shapes, params) drawn from integers ------------------------------
# ``rule.draw_example(ints)`` (refrt.testing.strategies): ``ints(lo, hi)`` draws an int;
# small sizes keep the oracle cheap, every stride / padding / dilation / groups path is hit.

def _conv_example(ints):
    g, cg, ocg = ints(1, 2), ints(1, 2), ints(1, 2)
    kh, kw, sh, sw, dh, dw = ints(1, 3), ints(1, 3), ints(1, 3), ints(1, 3), ints(1, 2), ints(1, 2)
    ph, pw = ints(0, 2), ints(0, 2)
    h = max(dh * (kh - 1) + 1 - 2 * ph, 1) + ints(0, 3)
    w = max(dw * (kw - 1) + 1 - 2 * pw, 1) + ints(0, 3)
    x = (ints(0, 2), g * cg, h, w) if ints(0, 1) else (g * cg, h, w)
    return [x, (g * ocg, cg, kh, kw), (g * ocg,)], dict(
        stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=g)


def _conv_t_example(ints):
    g, icg, ocg = ints(1, 2), ints(1, 2), ints(1, 2)
    kh, kw, sh, sw, dh, dw = ints(1, 3), ints(1, 3), ints(1, 3), ints(1, 2), ints(1, 2), ints(1, 2)
    h, w = ints(1, 4), ints(1, 4)
    oph, opw = ints(0, max(sh, dh) - 1), ints(0, max(sw, dw) - 1)
    ph = ints(0, min(2, ((h - 1) * sh + dh * (kh - 1) + oph) // 2))
    pw = ints(0, min(2, ((w - 1) * sw + dw * (kw - 1) + opw) // 2))
    x = (ints(0, 2), g * icg, h, w) if ints(0, 1) else (g * icg, h, w)
    return [x, (g * icg, ocg, kh, kw), (g * ocg,)], dict(
        stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw), dilation=(dh, dw), groups=g)


def _pool_example(ints):
    kh, kw, sh, sw = ints(1, 3), ints(1, 3), ints(1, 3), ints(1, 3)
    ph, pw = ints(0, kh // 2), ints(0, kw // 2)
    h, w = max(kh - 2 * ph, 1) + ints(0, 3), max(kw - 2 * pw, 1) + ints(0, 3)
    x = (ints(0, 2), ints(1, 2), h, w) if ints(0, 1) else (ints(1, 2), h, w)
    return [x], dict(kernel_size=(kh, kw), stride=(sh, sw) if ints(0, 1) else None,
                     padding=(ph, pw), _draw=ints(0, 7))


def _pool_params(op):
    def draw(ints):
        shapes, p = _pool_example(ints)
        k = p.pop("_draw")
        if op == "avg_pool2d":
            p["count_include_pad"] = bool(k % 2)
        if op == "smooth_max_pool2d":
            p["beta"] = (1.0, -1.0, 0.5, 3.0, -2.0, 1.0, 8.0, 1.0)[k]
        return shapes, p
    return draw


def _adaptive_example(ints):
    h, w = ints(1, 6), ints(1, 6)
    x = (ints(0, 2), ints(1, 2), h, w) if ints(0, 1) else (ints(1, 2), h, w)
    return [x], dict(output_size=(ints(1, 5), ints(1, 5)))


def _with_examples(rule, draw):
    def shape(spec, arrays, params):
        return rule(spec, arrays, params)
    shape.draw_example = draw
    shape.__name__ = rule.__name__
    return shape


# ---- condition-number budget of the smooth max pool's VJP (registry/_terms.py) -------------

def _smooth_terms(arrays, params, g):
    """gx[e] = sum over the windows w holding e of g_w softmax_w(e): terms of both signs
    (g_w) that may cancel; the budget's magnitude is sum_w |g_w| softmax_w(e) (float64)."""
    x = np.asarray(arrays[0], np.float64)
    x4 = x if x.ndim == 4 else x[None]
    n, c, h, w = x4.shape
    (kh, kw), (sh, sw), (ph, pw) = params["kernel_size"], params["stride"], params["padding"]
    beta = params["beta"]
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.zeros((n, c, max((ho - 1) * sh + kh, h + 2 * ph), max((wo - 1) * sw + kw, w + 2 * pw)))
    xp[:, :, ph:ph + h, pw:pw + w] = x4
    gabs = np.abs(np.asarray(g, np.float64)).reshape(n, c, ho, wo)
    taps = [[xp[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw] for j in range(kw)]
            for i in range(kh)]
    flat = np.stack([t for row in taps for t in row])
    with np.errstate(all="ignore"):
        piv = flat.max(axis=0) if beta > 0 else flat.min(axis=0)
        e = np.exp(beta * (flat - piv))
        wgt = e / e.sum(axis=0)
    acc = np.zeros(xp.shape)
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        acc[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw] += gabs * wgt[k]
    return (acc[:, :, ph:ph + h, pw:pw + w].reshape(x.shape),)


# ---- declarations ---------------------------------------------------------------------------

IMG = (((1.0, 2.0), (3.0, 4.0)),)             # (C=1, H=2, W=2)
F32MAX = float(np.finfo(np.float32).max)
SPATIAL = ("Spatial input (N, C, H, W) or (C, H, W) (TorchLean's channel-first, no batch); "
           "int-or-pair parameters. ")


def _p(name, default, doc, kind="int_or_pair"):
    return Param(name, default, kind, doc)


CONV_PARAMS = (_p("stride", 1, "step (int or pair, >= 1)"),
               _p("padding", 0, "zero padding on each side (int or pair, >= 0)"),
               _p("dilation", 1, "kernel element spacing (int or pair, >= 1)"),
               _p("groups", 1, "channel groups (divides in and out channels)", "int"))

POOL_PARAMS = (_p("kernel_size", 2, "window (int or pair); no TorchLean default, 2 is refrt's"),
               _p("stride", None, "step (int or pair); None = kernel_size"),
               _p("padding", 0, "padding on each side, at most kernel_size / 2"))


def _op(name, signature, doc, shape, args, params, tol, cases, vjp, torchlean, conventions,
        families=POOL_FAMILIES, example_shapes=((2, 3, 5, 6),), **kw):
    return OpSpec(name=name, signature=signature, kind="spatial", args=args, doc=SPATIAL + doc,
                  tol=tol, special_cases=tuple(cases), params=tuple(params), vjp=vjp,
                  shape=shape, torchlean=torchlean, conventions=conventions,
                  families=families, example_shapes=example_shapes, **kw)


CONV_CONV = ("Zero padding multiplies as 0 * w (TorchLean's x_pad; an inf weight at a padded "
             "tap gives NaN, as in PyTorch).  bias omitted = no bias (sums start at +0, as "
             "TorchLean's accumulator).  ")

SPECS = [
    _op("conv2d", "conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> y",
        "2-d cross-correlation (kernel not flipped) with zero padding, dilation and groups: "
        "y[n, o, i, j] = bias[o] + sum over c in o's group, kh, kw of x_pad[n, c, i s_h + "
        "kh d_h - p_h, j s_w + kw d_w - p_w] weight[o, c', kh, kw]; each output one "
        "dot product with the bias inside, rounded once: on the Ozaki BLAS path for large "
        "sizes (correctly rounded for finite inputs, docs/conv.md), else Dot2-compensated",
        _with_examples(conv2d_shape, _conv_example),
        (Arg("x"), Arg("weight"), Arg("bias", optional=_bias_shape)), CONV_PARAMS, DOT_TOL,
        [Case((IMG, ((((3.0, 4.0),),),), (0.5,)), 11.5),
         Case(((((2.0 ** 60, 1.0),),), ((((1.0, 1.0),),),), (-2.0 ** 60,)), 1.0,
              note="the compensated dot keeps the 1 that a plain sum loses"),
         Case(((((NAN, 1.0),),), ((((1.0, 1.0),),),), (0.0,)), NAN),
         Case(((((F32MAX, F32MAX),),), ((((1.0, -1.0),),),), (0.0,)), 0.0,
              note="max - max: an exact zero, no overflow"),
         Case((IMG, ((((1.0, 1.0), (1.0, 1.0)),),), (0.0,)), 1.0, params={"padding": 1},
              note="padding 1: the corner window sees only x[0, 0]")],
        "x: conv_transpose2d(g, weight) (per output phase a stride-1 conv2d, Ozaki or "
        "gathered Dot2); weight: g^T @ im2col(x) per group (Ozaki or Dot2); bias: sum(g, "
        "(0, 2, 3)) (Dot2 against ones)",
        "ConvSpec / convSpec / conv2dSpec, Conv2D tape node (convKernelDerivSpec, "
        "convBiasDerivSpec, convInputDerivSpec)",
        "TorchLean's convSpec has no dilation and no groups (refrt adds PyTorch's); its "
        "slidingWindowOutDim returns 0 (an empty output) for a kernel larger than the padded "
        "input or stride 0, where refrt (as PyTorch) raises; otherwise both give "
        "(in + 2p - d (k - 1) - 1) // s + 1.  Weight (out, in/groups, kH, kW) in both.  "
        + CONV_CONV,
        families=CONV_FAMILIES, example_shapes=((2, 3, 4, 5), (4, 3, 3, 2), (4,))),
    _op("conv_transpose2d", "conv_transpose2d(x, weight, bias=None, stride=1, padding=0, "
        "output_padding=0, groups=1, dilation=1) -> y",
        "the adjoint of conv2d in x (PyTorch's ConvTranspose2d): y[n, o, i, j] = bias[o] + "
        "sum of x[n, c, (i + p_h - kh d_h) / s_h, (j + p_w - kw d_w) / s_w] weight[c, o', kh, "
        "kw] over the taps whose indices are integers inside x; each output one dot "
        "with the bias inside, rounded once (per output phase a stride-1 conv2d on the "
        "Ozaki path for finite inputs, else a gathered Dot2)",
        _with_examples(conv_transpose2d_shape, _conv_t_example),
        (Arg("x"), Arg("weight"), Arg("bias", optional=_bias_shape_t)),
        (_p("stride", 1, "step (int or pair, >= 1)"),
         _p("padding", 0, "removed from each side of the full output (int or pair, >= 0)"),
         _p("output_padding", 0, "extra rows/cols at the end (< stride or dilation)"),
         _p("groups", 1, "channel groups", "int"),
         _p("dilation", 1, "kernel element spacing (int or pair, >= 1)")), DOT_TOL,
        [Case((IMG, ((((3.0, 4.0),),),), (0.5,)), 3.5),
         Case(((((2.0 ** 60, 1.0),),), ((((1.0, 1.0),),),), (-2.0 ** 60,)), -2.0 ** 60 + 2.0 ** 60,
              note="output (0, 0) only sees x[0, 0] w[0, 0]: 2^60 - 2^60 = 0"),
         Case(((((NAN, 1.0),),), ((((1.0, 1.0),),),), (0.0,)), NAN),
         Case(((((1.0, 2.0),),), ((((1.0, 1.0),),),), (0.0,)), 3.0, params={"padding": (0, 1)},
              note="padding crops the full output (1, 3, 2) to its middle: 1 + 2")],
        "x: conv2d(g, weight) (im2col + Dot2); weight: x^T @ im2col(g) per group (Dot2); "
        "bias: sum(g, (0, 2, 3))",
        "ConvTransposeSpec / convTransposeSpec / convTranspose2dSpec (weights (in, out, k...))",
        "TorchLean's convTransposeSpec has output_padding = 0, no dilation and no groups and "
        "its size (in - 1) s + k - 2p saturates at 0, where refrt (as PyTorch) raises for "
        "an output below 1 x 1; otherwise both give (in - 1) s - 2p + d (k - 1) + "
        "output_padding + 1.  Only the taps that reach an output are summed (no 0 * w).  "
        "bias omitted = no bias.",
        families=CONV_FAMILIES, example_shapes=((2, 4, 3, 2), (4, 3, 2, 3), (3,))),
    _op("max_pool2d", "max_pool2d(x, kernel_size=2, stride=None, padding=0) -> y",
        "the maximum of each window; padded cells are ignored (like -inf); the first maximum "
        "in row-major order wins; exact (0 ulp)",
        _with_examples(pool_shape, _pool_params("max_pool2d")), (Arg("x"),), POOL_PARAMS,
        Tol(float32=0, float64=0),
        [Case((IMG,), 4.0), Case(((((1.0, NAN), (2.0, 3.0)),),), NAN),
         Case(((((-0.0, 0.0), (0.0, 0.0)),),), -0.0, note="ties: the first wins (-0 before +0)"),
         Case(((((-INF, -INF), (-INF, -INF)),),), -INF),
         Case((IMG,), 1.0, params={"padding": 1}, note="the corner window holds only x[0, 0]")],
        "x: g routed to each window's first argmax (overlaps summed with TwoSum, rounded once)",
        "MaxPoolSpec / maxPool2dSpec / maxPool2dSpecPad, max_pool2d(_pad) tape nodes "
        "(maxPoolSpatialBackwardSpec)",
        "NaN propagates (a NaN beats every number, the first NaN wins) as in PyTorch; "
        "TorchLean's strict > would skip a NaN that is not first.  TorchLean's poolOutDim is 0 "
        "for padding > kernel / 2, where refrt (as PyTorch) raises.  ceil_mode, dilation and "
        "return_indices (PyTorch) are not supported."),
    _op("avg_pool2d", "avg_pool2d(x, kernel_size=2, stride=None, padding=0, "
        "count_include_pad=True) -> y",
        "the mean of each window: the exact window sum (superaccumulator) divided by "
        "kernel_h * kernel_w (padded cells count as 0, count_include_pad=True, TorchLean) or "
        "by the number of cells inside x (False), rounded ~once",
        _with_examples(pool_shape, _pool_params("avg_pool2d")), (Arg("x"),),
        POOL_PARAMS + (Param("count_include_pad", True, "bool",
                             "divide by the whole window (True) or its cells inside x"),),
        Tol(float32=1, float64=1),
        [Case((IMG,), 2.5), Case(((((F32MAX, F32MAX), (F32MAX, F32MAX)),),), F32MAX,
                                 note="no overflow of the window sum"),
         Case(((((1.0, INF), (2.0, 3.0)),),), INF), Case(((((INF, -INF), (2.0, 3.0)),),), NAN),
         Case((IMG,), 0.25, params={"padding": 1}, note="x[0, 0] / 4"),
         Case((IMG,), 1.0, params={"padding": 1, "count_include_pad": False},
              note="x[0, 0] / 1")],
        "x: each g / divisor spread over its window (the sum over windows exact, rounded once)",
        "AvgPoolSpec / avgPool2dSpec / avgPool2dSpecPad, avg_pool2d(_pad) tape nodes "
        "(avgPoolSpatialBackwardSpec)",
        "TorchLean always divides by kernelProd (count_include_pad=True, also PyTorch's "
        "default); count_include_pad=False is PyTorch's option.  ceil_mode and "
        "divisor_override are not supported.  Padding > kernel / 2 raises (TorchLean: empty "
        "output)."),
    _op("adaptive_avg_pool2d", "adaptive_avg_pool2d(x, output_size=2) -> y",
        "mean over the bins [floor(i H / Ho), ceil((i + 1) H / Ho)) x (same for W): exact "
        "bin sum / bin size, rounded ~once", _with_examples(adaptive_shape, _adaptive_example),
        (Arg("x"),),
        (_p("output_size", 2, "(Ho, Wo), an int, or None entries for the input size; no "
            "TorchLean default, 2 is refrt's"),), Tol(float32=1, float64=1),
        [Case((IMG,), 2.5, params={"output_size": 1}), Case((IMG,), 1.0),
         Case(((((F32MAX, F32MAX, 1.0),),),), F32MAX, params={"output_size": (1, 2)})],
        "x: g / bin size spread over each bin (exact sum over bins, rounded once)",
        "adaptiveAvgPool2dSpec",
        "Bins as PyTorch (identical formula); TorchLean's avg = sum / (h w)."),
    _op("adaptive_max_pool2d", "adaptive_max_pool2d(x, output_size=2) -> y",
        "maximum over the same bins as adaptive_avg_pool2d; first maximum wins; exact",
        _with_examples(adaptive_shape, _adaptive_example), (Arg("x"),),
        (_p("output_size", 2, "(Ho, Wo), an int, or None entries for the input size; no "
            "TorchLean default, 2 is refrt's"),), Tol(float32=0, float64=0),
        [Case((IMG,), 4.0, params={"output_size": 1}), Case((IMG,), 1.0),
         Case(((((NAN, 1.0), (2.0, 3.0)),),), NAN, params={"output_size": 1})],
        "x: g routed to each bin's first argmax (overlaps summed with TwoSum)",
        "adaptiveMaxPool2dSpec",
        "NaN propagates (as PyTorch).  return_indices is not supported."),
    _op("smooth_max_pool2d", "smooth_max_pool2d(x, kernel_size=2, stride=None, padding=0, "
        "beta=1.0) -> y",
        "TorchLean's smooth max pool: per window (padded cells are the value 0), pivot p = "
        "max (beta > 0) or min (beta < 0), y = p + log(sum exp(beta (x - p))) / beta; the "
        "exponents with TwoSum-compensated x - p, log1p of the terms besides the pivot's",
        _with_examples(pool_shape, _pool_params("smooth_max_pool2d")), (Arg("x"),),
        POOL_PARAMS + (Param("beta", 1.0, "float", "sharpness, nonzero (beta -> +inf: max; "
                                                   "< 0: a smooth min); no TorchLean default"),),
        Tol(float32=2, float64=2),
        [Case(((((0.0, 0.0), (0.0, 0.0)),),), math.log(4.0)),
         Case(((((1000.0, 0.0), (0.0, 0.0)),),), 1000.0, note="no overflow of exp(1000)"),
         Case(((((1.0, NAN), (2.0, 3.0)),),), NAN),
         Case(((((INF, 1.0), (2.0, 3.0)),),), INF),
         Case(((((0.0, 0.0), (0.0, 0.0)),),), -math.log(4.0), params={"beta": -1.0},
              note="beta < 0: a smooth min")],
        "x: g times the window softmax exp(beta (x - y)) summed over the windows holding x "
        "(exact sum, rounded once); padded cells get none",
        "smoothMaxPool2dSpec (smooth_max_pool2d tape node; smooth-max VJP = sum softmax(beta "
        "x) dx)",
        "PyTorch has no smooth max pool (the differential tester has no torch row for it).  "
        "Padded cells take part as the value 0 (TorchLean), unlike max_pool2d where they are "
        "ignored.  Accuracy degrades where y is near 0 relative to log(window)/beta (p ~ "
        "-log(sum)/beta: the last addition cancels); the families' measured maximum is in "
        "docs/accuracy.md.  beta = 0 raises (TorchLean would divide by 0).",
        vjp_terms=_smooth_terms),
]
