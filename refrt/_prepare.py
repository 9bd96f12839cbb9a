"""Turn user arguments into validated, native, contiguous arrays and checked params.

Every error names the op, the argument, what was expected and what came.
"""
from __future__ import annotations

import math
from os import environ as _environ

import numpy as np

from .errors import bad_type, bad_value

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
BACKEND_DTYPE = {"f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}


def _as_array(spec, arg, value):
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bool, np.bool_)) and arg.role != "condition":
        raise bad_type(spec.name, arg.name, "a float32 or float64 array", "a bool")
    if isinstance(value, (int, float, list, tuple, np.generic)):
        arr = np.asarray(value)
        if arr.dtype.kind in "iu" and arg.role != "class_target":
            arr = arr.astype(np.float64)
        if arr.dtype == np.float64 or arr.dtype.kind in "iu":
            return arr
        return arr
    if hasattr(value, "__array__") or hasattr(value, "__dlpack__"):
        return np.asarray(value)
    raise bad_type(spec.name, arg.name, "a NumPy array", type(value).__name__)


def _native(a: np.ndarray, dtype=None) -> np.ndarray:
    if (dtype is None or a.dtype == dtype) and a.dtype.isnative and a.flags.c_contiguous:
        return a  # the common case: no copy, no conversion
    dt = np.dtype(dtype) if dtype is not None else a.dtype
    dt = dt.newbyteorder("=")
    # ascontiguousarray promotes 0-d to 1-d: restore the shape
    return np.ascontiguousarray(a, dtype=dt).reshape(a.shape)


def check_param(spec, p, value, dtype):
    """Validate one parameter; eps-like values are rounded to the input dtype, so every
    backend (floats and mp) sees the same exact number."""
    kind = p.kind
    if kind in ("eps", "float"):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise bad_type(spec.name, p.name, "a real number", f"{type(value).__name__} {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise bad_value(spec.name, p.name, "a finite number", value)
        if kind == "eps" and v < 0:
            raise bad_value(spec.name, p.name, "eps >= 0", value)
        return float(dtype.type(v)) if dtype is not None else v
    if kind in ("int", "axis"):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise bad_type(spec.name, p.name, "an integer", f"{type(value).__name__} {value!r}")
        return int(value)
    if kind == "axis_or_none":
        if value is None:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise bad_type(spec.name, p.name, "an integer axis or None", f"{type(value).__name__} {value!r}")
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def prepare(spec, values, params, backend=None, cast=False):
    """Validate inputs and params for ``spec``.

    Returns ``(arrays, params, dtype, out_shape)``: arrays are native-endian and
    C-contiguous, float inputs share ``dtype``.
    """
    if len(values) != len(spec.args):
        raise TypeError(f"{spec.name}: expected {len(spec.args)} array arguments "
                        f"({', '.join(spec.arg_names)}), got {len(values)}")
    unknown = params.keys() - spec.param_names if params else ()
    if unknown:
        known = ", ".join(p.name for p in spec.params) or "none"
        raise TypeError(f"{spec.name}: unknown parameter(s) {', '.join(sorted(unknown))} "
                        f"(parameters: {known})")
    arrays = [v if type(v) is np.ndarray else _as_array(spec, a, v)
              for a, v in zip(spec.args, values)]

    want = BACKEND_DTYPE.get(backend)
    dtype = None
    for arg, a in zip(spec.args, arrays):
        if arg.role == "class_target" and a.dtype.kind in "iu":
            continue
        if arg.role == "condition":
            if a.dtype.kind != "b":
                raise bad_type(spec.name, arg.name, "a bool array", f"dtype {a.dtype}")
            continue
        if a.dtype.kind not in "f" or a.dtype.itemsize not in (4, 8):
            if cast and a.dtype.kind in "fiu" and want is not None:
                continue
            raise bad_type(spec.name, arg.name, "a float32 or float64 array",
                           f"dtype {a.dtype}" + ("" if a.dtype.kind != "f" else
                                                " (float16/bfloat16 inputs: cast explicitly)"))
        dt = a.dtype.newbyteorder("=")
        if dtype is None:
            dtype = dt
        elif dt != dtype and not cast:
            raise bad_type(spec.name, arg.name, f"dtype {dtype} (the dtype of the other "
                           "inputs; mixed float dtypes are an error, pass cast=True to convert)",
                           f"dtype {a.dtype}")
    if want is not None:
        if dtype is not None and dtype != want and not cast:
            raise bad_type(spec.name, spec.arg_names[0],
                           f"{want} for backend={backend!r} (or cast=True)", f"dtype {dtype}")
        dtype = want
    elif cast and dtype is not None:
        dtype = max(dtype, *(a.dtype for a in arrays if a.dtype.kind == "f"),
                    key=lambda d: d.itemsize)
    if dtype is None:
        dtype = np.dtype(np.float64)

    out = []
    for arg, a in zip(spec.args, arrays):
        if arg.role == "class_target" and a.dtype.kind in "iu":
            out.append(_native(a, np.int64))
        elif arg.role == "condition":
            out.append(_native(a, np.bool_))
        else:
            out.append(_native(a, dtype))

    full = {}
    for p in spec.params:
        full[p.name] = check_param(spec, p, params.get(p.name, p.default), dtype)
    out_shape = spec.shape(spec, out, full) if spec.shape else out[0].shape
    return out, full, dtype, tuple(out_shape)


# REFRT_NUM_THREADS is read once, when refrt is imported (the threads= keyword changes
# it per call); reading os.environ on every call cost more than a small kernel.
_env_threads = _environ.get("REFRT_NUM_THREADS")
_DEFAULT_THREADS = int(_env_threads) if _env_threads else None


def resolve_threads(threads):
    """Thread count for OpenMP kernels: the ``threads=`` keyword, else REFRT_NUM_THREADS,
    else 1 (single-threaded by default, so results and timings are reproducible)."""
    if threads is None:
        if _DEFAULT_THREADS is None:
            return 1
        threads = _DEFAULT_THREADS
    if threads.__class__ is int and threads >= 1:
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected a positive integer, got {threads!r}")
    return threads
