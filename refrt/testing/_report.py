"""The failure report of ``assert_close_to_reference``: worst elements, framework-default
hints, and a reproducer that stays runnable for inputs of any size."""
from __future__ import annotations

import os
import re

import numpy as np

from .. import oracle

_SHOW = 5          # worst elements listed in a failure message
_REPRO_MAX = 64    # inputs up to this many elements are written out in the reproducer

# Parameters whose TorchLean default (refrt's) differs from a framework's default, as
# data: op -> (param, framework default, the framework function).  A failure on an op
# called without that parameter says so, and whether the framework's value passes.
FRAMEWORK_DEFAULTS = {
    "layer_norm": ("eps", 1e-5, "torch.nn.functional.layer_norm"),
    "batch_norm_inference": ("eps", 1e-5, "torch.nn.functional.batch_norm"),
}


def failure_message(spec, actual, inputs, params, dtype, got, want, ulp, bits, bad, *,
                    tolerance, passes_with, reproducer_dir, oracle_opts):
    flat_bad = np.flatnonzero(bad.ravel())
    order = flat_bad[np.argsort(-ulp.ravel()[flat_bad], kind="stable")][:_SHOW]
    arrays = [np.asarray(v) for v in inputs]
    elementwise = spec.kind in ("unary", "binary") and all(a.shape == actual.shape for a in arrays)
    nonfinite = (~np.isfinite(got)) & np.isfinite(want) & bad
    lines = [f"{spec.name} ({dtype}): {int(bad.sum())} of {bad.size} element(s) differ from "
             f"the correctly rounded reference by more than {tolerance} "
             f"(max {ulp[bad].max():g} ulp, {bits[bad].max():.1f} bits)"]
    if nonfinite.any():
        lines.append(f"  {int(nonfinite.sum())} of them are NaN/Inf where the exact value is "
                     "finite")
    zeros = (got == 0) & (want != 0) & np.isfinite(want) & bad
    if zeros.any():
        lines.append(f"  {int(zeros.sum())} of them are 0 where the exact value is not")
    for i in order:
        where = tuple(int(j) for j in np.unravel_index(i, actual.shape)) if actual.ndim else ()
        ins = (f"inputs ({', '.join(repr(float(a.ravel()[i])) for a in arrays)}) "
               if elementwise else "")
        lines.append(f"  at {where}: {ins}got {float(got.ravel()[i])!r} want "
                     f"{float(want.ravel()[i])!r} ({ulp.ravel()[i]:g} ulp, {bits.ravel()[i]:.1f} bits)")
    hint = _default_hint(spec, params, passes_with)
    if hint:
        lines.append("  " + hint)
    first = np.unravel_index(order[0], actual.shape) if actual.ndim else ()
    lines.append("  reproduce: " + reproducer(spec, arrays, params, dtype, first,
                                              float(want.ravel()[order[0]]), reproducer_dir,
                                              oracle_opts))
    return "\n".join(lines)


def _default_hint(spec, params, passes_with):
    entry = FRAMEWORK_DEFAULTS.get(spec.name)
    if entry is None or entry[0] in params:
        return ""
    name, theirs, where = entry
    ours = spec.param_defaults[name]
    verdict = ("with it, every element is within tolerance" if passes_with(**{name: theirs})
               else "it still fails with that value")
    return (f"note: refrt uses {name} = {ours:g} (TorchLean); {where}'s default is {theirs:g}: "
            f"pass {name}={theirs:g} if that is what you compare ({verdict})")


# ------------------------------------------------------------------ reproducer ----
def _literal(a):
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return f"np.array({a.tolist()!r}, dtype=np.int64)"
    text = repr(np.asarray(a, dtype=np.float64).tolist()).replace("inf", "np.inf").replace(
        "nan", "np.nan")
    return f"np.array({text}, dtype=np.{a.dtype.name})"


def _kw(params):
    return "".join(f", {k}={v!r}" for k, v in params.items())


def _candidates(spec, arrays, params, index):
    """Smaller inputs that contain the failing element: the element itself (elementwise
    ops), the row along the op's axis (softmax family, reductions, norms), each as
    (inputs, index of the element in the smaller result)."""
    if not index:
        return
    shape = arrays[0].shape
    if all(a.shape == shape for a in arrays) and len(index) == len(shape):
        yield [a[tuple(index)].reshape(1) for a in arrays], (0,)
    axis = params.get("axis", -1 if spec.kind in ("softmax", "norm") else None)
    if not isinstance(axis, (int, np.integer)) or not arrays[0].ndim:
        return
    ax = int(axis) % arrays[0].ndim
    full = list(index)
    if len(index) == arrays[0].ndim - 1:        # a reduction dropped the axis
        full.insert(ax, 0)
    if len(full) != arrays[0].ndim:
        return
    sel = tuple(slice(None) if d == ax else slice(j, j + 1) for d, j in enumerate(full))
    small = [a[sel] if a.shape == shape else a for a in arrays]
    sub = tuple(0 if d != ax else full[ax] for d in range(len(full)))
    if len(index) == arrays[0].ndim - 1:
        sub = tuple(j for d, j in enumerate(sub) if d != ax)
    yield small, sub


def _shrink(spec, arrays, params, dtype, index, want, opts):
    """The smallest candidate whose reference at the element equals ``want`` (checked),
    else the full inputs."""
    for small, sub in _candidates(spec, arrays, params, tuple(int(i) for i in index)):
        try:
            v = oracle.evaluate(spec.name, *small, dtype=dtype, on_undecided="nan", **params,
                                **opts)
            v = np.asarray(v, dtype=np.float64)[sub]
        except Exception:                        # a shape the op rejects: try the next one
            continue
        if v == want or (v != v and want != want):
            return small, "the failing element" if sub == (0,) else "the failing row"
    return arrays, "the inputs"


def _npz_dir(reproducer_dir):
    if reproducer_dir is not None:
        return str(reproducer_dir)
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0]
    if current and os.path.isfile(current):
        return os.path.dirname(os.path.abspath(current))
    return os.getcwd()


def _npz_name(op):
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" (")[0].split("::")[-1]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_")
    return f"refrt_repro_{op}{'_' + stem if stem else ''}.npz"


def reproducer(spec, arrays, params, dtype, index, want, reproducer_dir, opts):
    small, what = _shrink(spec, arrays, params, dtype, index, want, opts)
    call_kw = f", dtype={dtype!r}{_kw(params)}"
    if all(a.size <= _REPRO_MAX for a in small):
        args = ", ".join(_literal(a) for a in small)
        return f"refrt.oracle.evaluate({spec.name!r}, {args}{call_kw})"
    path = os.path.join(_npz_dir(reproducer_dir), _npz_name(spec.name))
    np.savez(path, **{name: a for name, a in zip(spec.arg_names, small)})
    shapes = ", ".join(str(a.shape) for a in small)
    return (f"refrt.oracle.evaluate({spec.name!r}, *np.load({path!r}).values(){call_kw})"
            f"  ({what}, shapes {shapes}, saved)")
