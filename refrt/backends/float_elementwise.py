"""Bind the elementwise kernels to op names (float32/float64).

Every op is a (kernel op code, parameter names) entry in one of two tables; the loop at
the bottom registers a forward and a VJP for each.  Parameters are passed to the kernel
positionally in the order listed.
"""
from __future__ import annotations

import numpy as np

from .._kernels import elementwise as K
from . import float_impl, float_lean, float_vjp

# op name -> (kernel code name, parameter names)
UNARY = {
    "neg": ("neg", ()), "abs": ("abs", ()), "sign": ("sign", ()), "square": ("square", ()),
    "inv": ("inv", ()), "exp": ("exp", ()), "log": ("log", ()), "log1p": ("log1p", ()),
    "expm1": ("expm1", ()), "sqrt": ("sqrt", ()), "sqrt_clamp": ("sqrt_clamp", ()),
    "safe_inv": ("safe_inv", ("eps",)), "safe_log": ("safe_log", ("eps",)),
    "clamp": ("clamp", ("lo", "hi")), "relu": ("relu", ()), "sigmoid": ("sigmoid", ()),
    "tanh": ("tanh", ()), "softplus": ("softplus", ()), "logistic": ("logistic", ()),
    "silu": ("silu", ()), "gelu": ("gelu", ()), "smooth_abs": ("smooth_abs", ("eps",)),
    "sinh": ("sinh", ()), "cosh": ("cosh", ()), "elu": ("elu", ("alpha",)),
    "scale": ("scale", ("c",)),
}
# op name -> (kernel code name, parameter names, whether the second input has a gradient)
BINARY = {
    "add": ("add", (), True), "sub": ("sub", (), True), "mul": ("mul", (), True),
    "div": ("div", (), True), "pow": ("pow", (), True),
    "safe_div": ("safe_div", ("eps",), True), "minimum": ("minimum", (), True),
    "maximum": ("maximum", (), True), "fixed_mask_scale": ("mask_scale", (), False),
    "fixed_inverted_dropout": ("inverted_dropout", ("keep",), False),
}


def _flat(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def _bind_unary(name, code, pnames):
    code = K.UNARY_CODES[code]

    def fwd(arrays, params, threads):
        (x,) = arrays
        out = np.empty(x.size, dtype=x.dtype)
        K.unary_fwd(code, _flat(x), out, *(params[p] for p in pnames), threads=threads)
        return out.reshape(x.shape)

    def vjp(arrays, params, out, g, threads):
        (x,) = arrays
        gx = np.empty(x.size, dtype=x.dtype)
        K.unary_vjp(code, _flat(g, x.dtype), _flat(x), _flat(out), gx,
                    *(params[p] for p in pnames), threads=threads)
        return (gx.reshape(x.shape),)

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


def _bind_binary(name, code, pnames, y_grad):
    code = K.BINARY_CODES[code]

    def fwd(arrays, params, threads):
        x, y = arrays
        out = np.empty(x.size, dtype=x.dtype)
        K.binary_fwd(code, _flat(x), _flat(y), out, *(params[p] for p in pnames),
                     threads=threads)
        return out.reshape(x.shape)

    def vjp(arrays, params, out, g, threads):
        x, y = arrays
        gx = np.empty(x.size, dtype=x.dtype)
        gy = np.empty(x.size, dtype=x.dtype) if y_grad else gx
        p0 = params[pnames[0]] if pnames else 0.0
        K.binary_vjp(code, _flat(g, x.dtype), _flat(x), _flat(y), _flat(out), gx, gy, p0,
                     want_gy=y_grad, threads=threads)
        return gx.reshape(x.shape), (gy.reshape(y.shape) if y_grad else None)

    fwd.__name__, vjp.__name__ = name, name + "_vjp"
    float_impl(name)(fwd)
    float_vjp(name)(vjp)


for _name, (_code, _pnames) in UNARY.items():
    _bind_unary(_name, _code, _pnames)
for _name, (_code, _pnames, _y_grad) in BINARY.items():
    _bind_binary(_name, _code, _pnames, _y_grad)


# ---- lean forwards (refrt.ops' fast path, see FLOAT_LEAN in backends/__init__.py) -----
# K.LeanUnary / K.LeanBinary hold the op code, dtype and default params; they check the
# second input's type, dtype and shape, allocate the output and call the typed buffer
# entries, which refuse (None here) anything not C-contiguous of one item size and length.

def _lean_unary(code, pnames):
    code = K.UNARY_CODES[code]

    def make(dtype, params):
        return K.LeanUnary(code, dtype, np.empty, *(params[p] for p in pnames))
    return make


def _lean_binary(code, pnames):
    code = K.BINARY_CODES[code]

    def make(dtype, params):
        return K.LeanBinary(code, dtype, np.empty, np.ndarray,
                            params[pnames[0]] if pnames else 0.0)
    return make


for _name, (_code, _pnames) in UNARY.items():
    float_lean(_name)(_lean_unary(_code, _pnames))
for _name, (_code, _pnames, _y_grad) in BINARY.items():
    float_lean(_name)(_lean_binary(_code, _pnames))
