"""refrt's own float32/float64 kernels, called through ``refrt.ops`` (VJP: ``vjp_op``)."""
from __future__ import annotations

import numpy as np

from ._base import Adapter, Entry, as_float, py_literal


def _entry(spec):
    from ... import ops
    args = ", ".join(spec.arg_names)
    params = "".join(f", {p.name}={{{p.name}}}" for p in spec.params)
    return Entry(fn=lambda *a, _n=spec.name, **p: ops.evaluate(_n, *a, **p),
                 code=f"refrt.ops.{spec.name}({args}{params})",
                 params=tuple(p.name for p in spec.params),
                 conventions="TorchLean's semantics (the registry's defaults)",
                 grad=spec.vjp is not None)


def make() -> Adapter:
    import refrt
    from ... import backends
    from ...registry import OPS
    backends.load()

    def vjp(entry, op, arrays, params, g, wrt, dt, call):
        from ...autodiff import vjp_op
        dtype = next(a.dtype for a in arrays if a.dtype.kind == "f")   # where's cond is bool
        res = vjp_op(op, arrays, params, None, np.asarray(g, dtype=dtype))
        return [res[i] for i in wrt]

    return Adapter(
        name="refrt", version=lambda: refrt.__version__ if hasattr(refrt, "__version__") else "0.1.0",
        entries={n: _entry(s) for n, s in OPS.items() if n in backends.FLOAT},
        dtypes=("float32", "float64"),
        to_backend=lambda a, dt: a, to_numpy=as_float,
        literal=lambda a, dt: f"np.array({py_literal(a)}, dtype=np.{dt})" if np.asarray(a).dtype.kind == "f"
        else f"np.array({py_literal(a)})",
        header="import numpy as np\nimport refrt", vjp=vjp,
        description="refrt's kernels")
