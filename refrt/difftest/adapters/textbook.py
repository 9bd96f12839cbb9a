"""The textbook formulas, written in NumPy as they are commonly written: a teaching
baseline (each departure it shows is the classic failure of that formula), named as
such so that NumPy itself is not blamed.  Each fix is the NumPy/SciPy function to use
instead, checked on the witness before it is printed."""
from __future__ import annotations

import numpy as np

from ._base import Adapter, Entry, Fix, as_float, py_literal


def _rows(x):
    return max(1, int(np.prod(x.shape[:-1])))


def _softmax(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _bce_logits_stable(x, t):
    return np.mean(np.logaddexp(0, x) - t * x)


def _entries():
    from scipy import special as sp
    E = Entry
    return {
        "log1p": E(lambda x: np.log(1 + x), "np.log(1 + x)", fixes=(Fix("np.log1p(x)", np.log1p),)),
        "expm1": E(lambda x: np.exp(x) - 1, "np.exp(x) - 1", fixes=(Fix("np.expm1(x)", np.expm1),)),
        "sigmoid": E(_sigmoid, "1 / (1 + np.exp(-x))",
                     fixes=(Fix("scipy.special.expit(x)", sp.expit),)),
        "logistic": E(lambda x: np.exp(x) / (np.exp(x) + 1), "np.exp(x) / (np.exp(x) + 1)",
                      fixes=(Fix("scipy.special.expit(x)", sp.expit),)),
        "tanh": E(lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1),
                  "(np.exp(2 * x) - 1) / (np.exp(2 * x) + 1)", fixes=(Fix("np.tanh(x)", np.tanh),)),
        "sinh": E(lambda x: (np.exp(x) - np.exp(-x)) / 2, "(np.exp(x) - np.exp(-x)) / 2",
                  fixes=(Fix("np.sinh(x)", np.sinh),)),
        "cosh": E(lambda x: (np.exp(x) + np.exp(-x)) / 2, "(np.exp(x) + np.exp(-x)) / 2",
                  fixes=(Fix("np.cosh(x)", np.cosh),)),
        "softplus": E(lambda x: np.log(1 + np.exp(x)), "np.log(1 + np.exp(x))",
                      fixes=(Fix("np.logaddexp(0, x)", lambda x: np.logaddexp(x.dtype.type(0), x)),)),
        "silu": E(lambda x: x / (1 + np.exp(-x)), "x / (1 + np.exp(-x))",
                  fixes=(Fix("x * scipy.special.expit(x)", lambda x: x * sp.expit(x)),)),
        "gelu": E(lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                  "0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))"),
        "elu": E(lambda x, alpha: np.where(x > 0, x, alpha * (np.exp(x) - 1)),
                 "np.where(x > 0, x, {alpha} * (np.exp(x) - 1))", params=("alpha",),
                 fixes=(Fix("np.where(x > 0, x, {alpha} * np.expm1(x))",
                            lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x))),)),
        "smooth_abs": E(lambda x, eps: np.sqrt(x * x + eps), "np.sqrt(x * x + {eps})", params=("eps",),
                        fixes=(Fix("np.hypot(x, np.sqrt({eps}))",
                                   lambda x, eps: np.hypot(x, np.sqrt(x.dtype.type(eps)))),)),
        "softmax": E(_softmax, "np.exp(x) / np.exp(x).sum(axis={axis}, keepdims=True)", params=("axis",),
                     fixes=(Fix("scipy.special.softmax(x, axis={axis})", lambda x, axis: sp.softmax(x, axis=axis)),)),
        "log_softmax": E(lambda x, axis: np.log(_softmax(x, axis)),
                         "np.log(np.exp(x) / np.exp(x).sum(axis={axis}, keepdims=True))", params=("axis",),
                         fixes=(Fix("scipy.special.log_softmax(x, axis={axis})",
                                    lambda x, axis: sp.log_softmax(x, axis=axis)),)),
        "logsumexp": E(lambda x, axis: np.log(np.exp(x).sum(axis=axis)), "np.log(np.exp(x).sum(axis={axis}))",
                       params=("axis",), fixes=(Fix("scipy.special.logsumexp(x, axis={axis})",
                                                    lambda x, axis: sp.logsumexp(x, axis=axis)),)),
        "var": E(lambda x, axis: (x * x).mean(axis=axis) - x.mean(axis=axis) ** 2,
                 "(x * x).mean(axis={axis}) - x.mean(axis={axis}) ** 2", params=("axis",),
                 fixes=(Fix("np.var(x, axis={axis})", lambda x, axis: np.var(x, axis=axis)),)),
        "cross_entropy_logits": E(lambda logits, target: -(target * np.log(_softmax(logits))).sum() / _rows(logits),
                                  "-(target * np.log(softmax(logits))).sum() / (logits.size // logits.shape[-1])",
                                  variants=("",),
                                  fixes=(Fix("-(target * scipy.special.log_softmax(logits, axis=-1)).sum() / (logits.size // logits.shape[-1])",
                                             lambda logits, target: -(target * sp.log_softmax(logits, axis=-1)).sum()
                                             / _rows(logits)),)),
        "bce_with_logits": E(lambda logits, target: -(target * np.log(_sigmoid(logits))
                                                      + (1 - target) * np.log(1 - _sigmoid(logits))).mean(),
                             "-(target * np.log(sigmoid(logits)) + (1 - target) * np.log(1 - sigmoid(logits))).mean()",
                             fixes=(Fix("np.mean(np.logaddexp(0, logits) - target * logits)", _bce_logits_stable),)),
        "mse_loss": E(lambda pred, target: ((pred - target) ** 2).mean(), "((pred - target) ** 2).mean()"),
        "layer_norm": E(lambda x, gamma, beta, eps: (x - x.mean(-1, keepdims=True))
                        / (x.std(-1, keepdims=True) + eps) * gamma + beta,
                        "(x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + {eps}) * gamma + beta",
                        params=("eps",),
                        fixes=(Fix("(x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + {eps}) "
                                   "* gamma + beta",
                                   lambda x, gamma, beta, eps: (x - x.mean(-1, keepdims=True))
                                   / np.sqrt(x.var(-1, keepdims=True) + x.dtype.type(eps)) * gamma + beta),)),
    }


def make() -> Adapter:
    entries = _entries()
    for e in entries.values():
        object.__setattr__(e, "grad", False)
    return Adapter(
        name="textbook", version=lambda: f"numpy {np.__version__}", entries=entries,
        dtypes=("float16", "float32", "float64"),
        to_backend=lambda a, dt: a, to_numpy=as_float,
        literal=lambda a, dt: f"np.array({py_literal(a)}, dtype=np.{dt})" if np.asarray(a).dtype.kind == "f"
        else f"np.array({py_literal(a)})",
        header="import numpy as np\nimport scipy.special",
        helpers={"softmax": "def softmax(x):\n    e = np.exp(x)\n    return e / e.sum(axis=-1, keepdims=True)",
                 "sigmoid": "def sigmoid(x):\n    return 1 / (1 + np.exp(-x))"}, vjp=None,
        description="textbook formulas in NumPy")
