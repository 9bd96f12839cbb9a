"""The op registry: ``OPS`` maps each op name to its one ``OpSpec``.

Nothing else in refrt lists ops.  To add an op: declare it in one of the modules
below, add a kernel pair in ``refrt/_kernels`` bound in ``refrt/backends/floatk``, add
an mp formula in ``refrt/backends/mp``; every generic test then picks it up.
"""
from __future__ import annotations

from ._spec import EPSILON, Arg, Case, OpSpec, Param, Precondition, Tol
from . import (activations, attention, conv, elementwise, indexing, jvp, losses, losses2, math2,
               misc, misc2, mha, norm2, recurrent, reductions, select, shape_ops)

OPS: dict = {}
for _module in (elementwise, activations, reductions, losses, shape_ops, select, math2,
                losses2, indexing, recurrent, misc, conv, attention, norm2, misc2, mha, jvp):
    for _spec in _module.SPECS:
        if _spec.name in OPS:
            raise RuntimeError(f"op {_spec.name!r} is declared twice")
        OPS[_spec.name] = _spec


def get(name: str) -> OpSpec:
    try:
        return OPS[name]
    except KeyError:
        import difflib
        near = difflib.get_close_matches(name, OPS, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"refrt has no op {name!r}{hint}") from None


__all__ = ["OPS", "get", "OpSpec", "Arg", "Param", "Case", "Tol", "Precondition", "EPSILON"]
