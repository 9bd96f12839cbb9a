"""JAX on CPU (``jax.numpy``, ``jax.nn``, ``jax.scipy.special``), gradients through
``jax.vjp``.  float64 needs ``jax_enable_x64``, which this adapter switches on when it
is loaded (JAX's own process-wide flag; float32 results do not change with it).

Conventions: ``jax.nn.gelu`` is called with approximate=True (its default, the
registry's tanh form); ``jnp.var`` with ddof=0 (its default).  JAX has no loss
functions in its core, so losses are not mapped (optax is not a dependency).
"""
from __future__ import annotations

import numpy as np

from ._base import Adapter, ByDesign, Entry, Fix, as_float, empty_mean, kink, py_literal

CLIP_NAN = ByDesign(("nan",), "by design: jnp.clip propagates NaN (TorchLean's clampSpec maps "
                    "NaN to lo)", lambda a, p: bool(np.isnan(np.asarray(a[0], np.float64)).any()))


FTZ = ByDesign(("underflow", "bits", "nan", "overflow", "wrong_sign_inf"),
               "by design: XLA on CPU flushes subnormal inputs and results to zero (FTZ; "
               "documented in JAX's numerical-accuracy notes)", phase="both", ftz=True)


def entries(jax):
    jnp, nn, sp = jax.numpy, jax.nn, jax.scipy.special
    u = lambda f, code, **kw: Entry(f, code, **kw)                            # noqa: E731
    ax = lambda f, code: Entry(f, code, params=("axis",))                     # noqa: E731
    return {
        "add": u(jnp.add, "jnp.add(x, y)"), "sub": u(jnp.subtract, "jnp.subtract(x, y)"),
        "mul": u(jnp.multiply, "jnp.multiply(x, y)"), "div": u(jnp.divide, "jnp.divide(x, y)"),
        "neg": u(jnp.negative, "jnp.negative(x)"),
        "abs": u(jnp.abs, "jnp.abs(x)", by_design=(kink("abs", "jax"),)),
        "sign": u(jnp.sign, "jnp.sign(x)"), "square": u(jnp.square, "jnp.square(x)"),
        "inv": u(jnp.reciprocal, "jnp.reciprocal(x)"), "pow": u(jnp.power, "jnp.power(x, y)"),
        "exp": u(jnp.exp, "jnp.exp(x)"), "log": u(jnp.log, "jnp.log(x)"),
        "log1p": u(jnp.log1p, "jnp.log1p(x)"), "expm1": u(jnp.expm1, "jnp.expm1(x)"),
        "sqrt": u(jnp.sqrt, "jnp.sqrt(x)"), "tanh": u(jnp.tanh, "jnp.tanh(x)"),
        "sinh": u(jnp.sinh, "jnp.sinh(x)"), "cosh": u(jnp.cosh, "jnp.cosh(x)"),
        "sigmoid": u(nn.sigmoid, "jax.nn.sigmoid(x)"), "logistic": u(nn.sigmoid, "jax.nn.sigmoid(x)"),
        "relu": u(nn.relu, "jax.nn.relu(x)"), "silu": u(nn.silu, "jax.nn.silu(x)"),
        "gelu": u(lambda x: nn.gelu(x, approximate=True), "jax.nn.gelu(x, approximate=True)",
                  # (1 + tanh(z)) / 2 = sigmoid(2 z): no cancellation of 1 + tanh for x < 0
                  fixes=(Fix("x * jax.nn.sigmoid(1.5957691216057308 * (x + 0.044715 * x ** 3))",
                             lambda x: x * nn.sigmoid(1.5957691216057308 * (x + 0.044715 * x ** 3))),)),
        "elu": u(lambda x, alpha: nn.elu(x, alpha), "jax.nn.elu(x, alpha={alpha})", params=("alpha",)),
        "softplus": u(nn.softplus, "jax.nn.softplus(x)"),
        "clamp": u(lambda x, lo, hi: jnp.clip(x, lo, hi), "jnp.clip(x, {lo}, {hi})", params=("lo", "hi"),
                   by_design=(CLIP_NAN, kink("clamp", "jnp.clip"))),
        "minimum": u(jnp.minimum, "jnp.minimum(x, y)"), "maximum": u(jnp.maximum, "jnp.maximum(x, y)"),
        "sum": ax(lambda x, axis: jnp.sum(x, axis=axis), "jnp.sum(x, axis={axis})"),
        "mean": Entry(lambda x, axis: jnp.mean(x, axis=axis), "jnp.mean(x, axis={axis})", params=("axis",),
                      by_design=(empty_mean("jnp.mean"),)),
        "amax": ax(lambda x, axis: jnp.max(x, axis=axis), "jnp.max(x, axis={axis})"),
        "amin": ax(lambda x, axis: jnp.min(x, axis=axis), "jnp.min(x, axis={axis})"),
        "var": ax(lambda x, axis: jnp.var(x, axis=axis), "jnp.var(x, axis={axis})"),
        "reduce_sum": ax(lambda x, axis: jnp.sum(x, axis=axis), "jnp.sum(x, axis={axis})"),
        "reduce_mean": Entry(lambda x, axis: jnp.mean(x, axis=axis), "jnp.mean(x, axis={axis})",
                             params=("axis",), by_design=(empty_mean("jnp.mean"),)),
        "row_mean": u(lambda x: jnp.mean(x, axis=-1), "jnp.mean(x, axis=-1)"),
        "logsumexp": ax(lambda x, axis: sp.logsumexp(x, axis=axis), "jax.scipy.special.logsumexp(x, axis={axis})"),
        "softmax": ax(lambda x, axis: nn.softmax(x, axis=axis), "jax.nn.softmax(x, axis={axis})"),
        "log_softmax": ax(lambda x, axis: nn.log_softmax(x, axis=axis), "jax.nn.log_softmax(x, axis={axis})"),
        "matmul": u(jnp.matmul, "jnp.matmul(a, b)"),
        "linear": u(lambda x, weight, bias: x @ weight.T + bias, "x @ weight.T + bias"),
        "transpose": u(jnp.transpose, "jnp.transpose(x)"),
        "flatten": u(jnp.ravel, "jnp.ravel(x)"),
        "swap_first_two": u(lambda x: jnp.swapaxes(x, 0, 1), "jnp.swapaxes(x, 0, 1)"),
        "transpose_last_two": u(lambda x: jnp.swapaxes(x, -1, -2), "jnp.swapaxes(x, -1, -2)"),
        "concat": Entry(lambda a, b, axis: jnp.concatenate((a, b), axis=axis),
                        "jnp.concatenate((a, b), axis={axis})", params=("axis",)),
    }


def make() -> Adapter:
    import jax
    jax.config.update("jax_enable_x64", True)
    try:
        jax.config.update("jax_platforms", "cpu")
    except Exception:  # already initialised by the user: keep their platform
        pass
    # XLA compiles each (function, shape, dtype) once, ~0.1 s: far more than the case
    # itself.  A persistent cache shares the compiled programs between the campaign's
    # worker processes and across runs (REFRT_JAX_CACHE, default ~/.cache/refrt/jax).
    import os
    cache_dir = os.environ.get("REFRT_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "refrt", "jax"))
    try:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception:  # an older JAX without these options: compile every run
        pass
    jnp = jax.numpy
    jdt = {"float16": jnp.float16, "bfloat16": jnp.bfloat16, "float32": jnp.float32, "float64": jnp.float64}

    def to_backend(a, dt):
        a = np.asarray(a)
        if a.dtype.kind in "iu":
            return jnp.asarray(a.astype(np.int64))
        return jnp.asarray(a, dtype=jdt[dt])

    # Calls are jitted, as JAX users run them, and cached per (function, params, wrt):
    # eager dispatch of jax.vjp re-traces every call (~1 s per logsumexp case).
    cache = {}

    def jitted(call, params, wrt=None):
        key = (call, tuple(sorted(params.items())), wrt)
        f = cache.get(key)
        if f is None:
            if wrt is None:
                f = jax.jit(lambda *xs: call(*xs, **params))
            else:
                def f(xs, g):
                    def inner(*w):
                        ins = list(xs)
                        for i, v in zip(wrt, w):
                            ins[i] = v
                        return call(*ins, **params)
                    out, back = jax.vjp(inner, *[xs[i] for i in wrt])
                    return back(g.reshape(out.shape))
                f = jax.jit(f)
            cache[key] = f
        return f

    def vjp(entry, op, arrays, params, g, wrt, dt, call):
        xs = [to_backend(a, dt) for a in arrays]
        cot = jitted(call, params, tuple(wrt))(xs, to_backend(np.asarray(g), dt))
        return [as_float(c) for c in cot]

    def wrap(entry):
        fn = entry.fn
        return Entry(**dict(entry.__dict__, fn=lambda *xs, _fn=fn, **p: jitted(_fn, p)(*xs),
                            by_design=entry.by_design + (FTZ,)))

    def literal(a, dt):
        a = np.asarray(a)
        if a.dtype.kind in "iu":
            return f"jnp.array({py_literal(a)})"
        return f"jnp.array({py_literal(a)}, dtype=jnp.{dt})"

    return Adapter(name="jax", version=lambda: f"jax {jax.__version__}",
                   entries={k: wrap(e) for k, e in entries(jax).items()},
                   dtypes=("float16", "bfloat16", "float32", "float64"), to_backend=to_backend,
                   to_numpy=lambda v: as_float(np.asarray(v)), literal=literal,
                   header='import jax\njax.config.update("jax_enable_x64", True)\nimport jax.numpy as jnp',
                   vjp=vjp, extra="jax", description="JAX (CPU)")
