"""``module:<python.module>``: a user's own module whose functions are named like refrt's
ops and take NumPy arrays and refrt's parameters (keyword names as in the registry).
An optional ``REFRT_DTYPES`` tuple in the module narrows the dtypes (default float32,
float64); an optional ``<op>_vjp(*arrays, g, **params)`` function returns the
cotangents of the op's differentiable inputs, and is compared like any autograd."""
from __future__ import annotations

import importlib
import inspect

import numpy as np

from ._base import Adapter, Entry, as_float, py_literal


def load_module(path: str) -> Adapter:
    from ...registry import OPS
    module = importlib.import_module(path)
    entries = {}
    for name, spec in OPS.items():
        fn = getattr(module, name, None)
        if not callable(fn):
            continue
        try:
            accepted = set(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            accepted = set()
        params = tuple(p.name for p in spec.params if p.name in accepted)
        code = f"{path.rsplit('.', 1)[-1]}.{name}({', '.join(spec.arg_names)}" + \
            "".join(f", {p}={{{p}}}" for p in params) + ")"
        vjp_fn = getattr(module, f"{name}_vjp", None)
        entries[name] = Entry(fn=fn, code=code, params=params, grad=callable(vjp_fn))

    def vjp(entry, op, arrays, params, g, wrt, dt, call):
        fn = getattr(module, f"{op}_vjp")
        res = fn(*arrays, g, **params)
        return [as_float(res[k]) for k in range(len(wrt))]

    return Adapter(
        name=f"module:{path}", version=lambda: str(getattr(module, "__version__", "")), entries=entries,
        dtypes=tuple(getattr(module, "REFRT_DTYPES", ("float32", "float64"))),
        to_backend=lambda a, dt: a, to_numpy=as_float,
        literal=lambda a, dt: f"np.array({py_literal(a)}, dtype=np.{dt})" if np.asarray(a).dtype.kind == "f"
        else f"np.array({py_literal(a)})",
        header=f"import numpy as np\nimport {path}", vjp=vjp, description=f"user module {path}")
