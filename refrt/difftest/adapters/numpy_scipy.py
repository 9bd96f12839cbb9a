"""NumPy and SciPy's real functions (``np.log1p``, ``scipy.special.log_softmax``,
``logsumexp``, ``expit``, ...), called as their users call them.  Only ops NumPy or
SciPy has as a function are mapped; the textbook compositions are the ``textbook``
backend.  No autograd.  A result in a wider dtype than the input (SciPy upcasts
float16) is rounded to the input dtype, as a user storing it would."""
from __future__ import annotations

import numpy as np

from ._base import Adapter, ByDesign, Entry, as_float, empty_mean, py_literal

_NAN_CLIP = ByDesign(("nan",), "np.clip propagates NaN (TorchLean's clampSpec maps NaN to lo)",
                     lambda arrays, params: bool(np.isnan(arrays[0]).any()))


def _table():
    from scipy import special as sp
    u = lambda f, code: Entry(f, code)                            # noqa: E731
    ax = lambda f, code: Entry(f, code, params=("axis",))         # noqa: E731
    return {
        "add": u(np.add, "np.add(x, y)"), "sub": u(np.subtract, "np.subtract(x, y)"),
        "mul": u(np.multiply, "np.multiply(x, y)"), "div": u(np.divide, "np.divide(x, y)"),
        "neg": u(np.negative, "np.negative(x)"), "abs": u(np.abs, "np.abs(x)"),
        "sign": u(np.sign, "np.sign(x)"), "square": u(np.square, "np.square(x)"),
        "inv": u(np.reciprocal, "np.reciprocal(x)"), "pow": u(np.power, "np.power(x, y)"),
        "exp": u(np.exp, "np.exp(x)"), "log": u(np.log, "np.log(x)"),
        "log1p": u(np.log1p, "np.log1p(x)"), "expm1": u(np.expm1, "np.expm1(x)"),
        "sqrt": u(np.sqrt, "np.sqrt(x)"), "tanh": u(np.tanh, "np.tanh(x)"),
        "sinh": u(np.sinh, "np.sinh(x)"), "cosh": u(np.cosh, "np.cosh(x)"),
        "minimum": u(np.minimum, "np.minimum(x, y)"), "maximum": u(np.maximum, "np.maximum(x, y)"),
        "clamp": Entry(lambda x, lo, hi: np.clip(x, lo, hi), "np.clip(x, {lo}, {hi})",
                       params=("lo", "hi"), by_design=(_NAN_CLIP,)),
        "relu": u(lambda x: np.maximum(x, x.dtype.type(0)), "np.maximum(x, 0)"),
        "sigmoid": u(sp.expit, "scipy.special.expit(x)"),
        "logistic": u(sp.expit, "scipy.special.expit(x)"),
        "softplus": u(lambda x: np.logaddexp(x.dtype.type(0), x), "np.logaddexp(0, x)"),
        "sum": ax(lambda x, axis: np.sum(x, axis=axis), "np.sum(x, axis={axis})"),
        "mean": Entry(lambda x, axis: np.mean(x, axis=axis), "np.mean(x, axis={axis})", params=("axis",),
                      by_design=(empty_mean("np.mean"),)),
        "amax": ax(lambda x, axis: np.max(x, axis=axis), "np.max(x, axis={axis})"),
        "amin": ax(lambda x, axis: np.min(x, axis=axis), "np.min(x, axis={axis})"),
        "var": ax(lambda x, axis: np.var(x, axis=axis), "np.var(x, axis={axis})"),
        "reduce_sum": ax(lambda x, axis: np.sum(x, axis=axis), "np.sum(x, axis={axis})"),
        "reduce_mean": Entry(lambda x, axis: np.mean(x, axis=axis), "np.mean(x, axis={axis})",
                             params=("axis",), by_design=(empty_mean("np.mean"),)),
        "row_mean": u(lambda x: np.mean(x, axis=-1), "np.mean(x, axis=-1)"),
        "logsumexp": ax(lambda x, axis: sp.logsumexp(x, axis=axis), "scipy.special.logsumexp(x, axis={axis})"),
        "softmax": ax(lambda x, axis: sp.softmax(x, axis=axis), "scipy.special.softmax(x, axis={axis})"),
        "log_softmax": ax(lambda x, axis: sp.log_softmax(x, axis=axis),
                          "scipy.special.log_softmax(x, axis={axis})"),
        "matmul": u(np.matmul, "np.matmul(a, b)"),
        "linear": u(lambda x, weight, bias: x @ weight.T + bias, "x @ weight.T + bias"),
        "transpose": u(np.transpose, "np.transpose(x)"),
        "flatten": u(np.ravel, "np.ravel(x)"),
        "swap_first_two": u(lambda x: np.swapaxes(x, 0, 1), "np.swapaxes(x, 0, 1)"),
        "transpose_last_two": u(lambda x: np.swapaxes(x, -1, -2), "np.swapaxes(x, -1, -2)"),
        "concat": Entry(lambda a, b, axis: np.concatenate((a, b), axis=axis),
                        "np.concatenate((a, b), axis={axis})", params=("axis",)),
    }


def make() -> Adapter:
    import scipy
    entries = _table()
    for e in entries.values():
        object.__setattr__(e, "grad", False)
    return Adapter(
        name="numpy", version=lambda: f"numpy {np.__version__}, scipy {scipy.__version__}",
        entries=entries, dtypes=("float16", "float32", "float64"),
        to_backend=lambda a, dt: a, to_numpy=as_float,
        literal=lambda a, dt: f"np.array({py_literal(a)}, dtype=np.{dt})" if np.asarray(a).dtype.kind == "f"
        else f"np.array({py_literal(a)})",
        header="import numpy as np\nimport scipy.special", vjp=None,
        description="NumPy + SciPy")
