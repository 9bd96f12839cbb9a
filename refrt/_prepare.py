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


def _is_mask(a):
    """A float (or mp object) array whose entries are all exactly 0 or 1."""
    if a.dtype.kind not in "fO":
        return False
    try:
        return bool(np.all((a == 0) | (a == 1)))
    except (TypeError, ValueError):
        return False


def _as_array(spec, arg, value):
    # ndarray subclasses (np.matrix, masked arrays, memmaps, user subclasses) become the
    # plain ndarray view at the boundary: np.matrix keeps every result 2-d and makes
    # `*` a matrix product, which turned the oracle's mean of a matrix into [nan, nan]
    # with no undecided element.  Masked arrays lose their mask (refrt has no masks).
    if isinstance(value, np.ndarray):
        return np.asarray(value)
    if isinstance(value, (bool, np.bool_)) and arg.role != "condition":
        raise bad_type(spec.name, arg.name, "a float32 or float64 array", "a bool")
    if isinstance(value, (int, float, list, tuple, np.generic)):
        # Python scalars, lists and tuples are accepted as array_like (NumPy's rules),
        # documented in docs/accuracy.md ("Inputs"); ragged nesting is an error
        try:
            arr = np.asarray(value)
        except ValueError:
            raise bad_value(spec.name, arg.name, "a rectangular (non-ragged) nested list",
                            "a ragged list") from None
        if arr.dtype == object:
            raise bad_value(spec.name, arg.name, "a rectangular list of numbers",
                            "a list of objects")
        if arr.dtype.kind in "iu" and arg.role not in ("class_target", "index"):
            arr = arr.astype(np.float64)
        if arr.dtype == np.float64 or arr.dtype.kind in "iu":
            return arr
        return arr
    if hasattr(value, "__array__") or hasattr(value, "__dlpack__"):
        # torch tensors, JAX arrays, ...: converted by np.asarray (a CPU copy or view)
        return np.asarray(np.asarray(value))
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
        if dtype is None:
            return v
        with np.errstate(over="ignore"):
            r = float(dtype.type(v))
        if not math.isfinite(r):
            # rounded to the input dtype it would be +-inf (scale(x32, c=1e300)): refuse
            # rather than return inf/NaN silently
            raise bad_value(spec.name, p.name, f"a value representable in {dtype} "
                            f"(|{p.name}| <= {float(np.finfo(dtype).max):.7g})", value)
        return r
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


def bind_optional(spec, values, params):
    """Move optional arrays passed as keywords (``bias=b``) into the positional list and
    stand zeros in for omitted ones (``Arg.optional``); ops without optional arrays and
    calls that pass every array positionally are returned unchanged."""
    opt = [a for a in spec.args if a.optional is not None]
    if not opt or (len(values) == len(spec.args) and not (params.keys() & {a.name for a in opt})):
        return values, params
    need = len(spec.args) - len(opt)
    if len(values) != need:
        raise TypeError(f"{spec.name}: expected {need} array arguments "
                        f"({', '.join(spec.arg_names[:need])}) and optional keyword "
                        f"array(s) {', '.join(a.name for a in opt)}, got {len(values)} "
                        "positional arrays")
    params = dict(params)
    shapes = [tuple(v.shape) if hasattr(v, "shape") else np.shape(v) for v in values]  # traced too
    dtypes = [getattr(v, "dtype", None) for v in values]
    dt = next((np.dtype(d) for d in dtypes[::-1] if d is not None and np.dtype(d).kind == "f"),
              np.dtype(np.float64))
    extra = []
    for a in opt:
        v = params.pop(a.name, None)
        if v is None:
            full = {p.name: params.get(p.name, p.default) for p in spec.params}
            v = np.zeros(a.optional(shapes, full), dtype=dt.newbyteorder("="))
        extra.append(v)
    return tuple(values) + tuple(extra), params


def prepare(spec, values, params, backend=None, cast=False):
    """Validate inputs and params for ``spec``.

    Returns ``(arrays, params, dtype, out_shape)``: arrays are native-endian and
    C-contiguous, float inputs share ``dtype``.
    """
    values, params = bind_optional(spec, values, params)
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
        if arg.role == "index":
            if a.dtype.kind not in "iu":
                raise bad_type(spec.name, arg.name, "an integer index array (int32 or int64)",
                               f"dtype {a.dtype}")
            if a.dtype == np.uint64 and a.size and int(a.max()) >= 2 ** 63:
                raise bad_value(spec.name, arg.name, "indices below 2^63", int(a.max()))
            continue
        if arg.role == "condition":
            # a float mask of exact 0s and 1s (what refrt's comparisons eq/lt/... return,
            # TorchLean's Float masks) is the same condition; converted exactly below
            if a.dtype.kind != "b" and not _is_mask(a):
                raise bad_type(spec.name, arg.name, "a bool array (or a float mask of 0s "
                               "and 1s, as refrt's comparisons return)", f"dtype {a.dtype}"
                               + (" with values other than 0 and 1" if a.dtype.kind in "fO"
                                  else ""))
            continue
        if a.dtype.kind not in "f" or a.dtype.itemsize not in (4, 8):
            if cast and (a.dtype.kind in "fiu" or a.dtype.name == "bfloat16"):
                continue               # converted below (float16 is exact in float32)
            raise bad_type(spec.name, arg.name, "a float32 or float64 array",
                           f"dtype {a.dtype}" + ("" if a.dtype.kind != "f" else
                                                " (float16/bfloat16 inputs: pass cast=True "
                                                "or convert with .astype(np.float32))"))
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
        dtype = max(dtype, *(a.dtype for a in arrays if a.dtype.kind == "f"
                             and a.dtype.itemsize in (4, 8)), key=lambda d: d.itemsize)
    if dtype is None:
        # cast=True with only narrow floats: float32 holds float16/bfloat16 exactly
        narrow = cast and all(a.dtype.kind == "f" or a.dtype.name == "bfloat16"
                              for arg, a in zip(spec.args, arrays)
                              if not (arg.role in ("class_target", "index")
                                      and a.dtype.kind in "iu"))
        dtype = np.dtype(np.float32) if narrow and arrays else np.dtype(np.float64)

    out = []
    for arg, a in zip(spec.args, arrays):
        if arg.role in ("class_target", "index") and a.dtype.kind in "iu":
            out.append(_native(a, np.int64))
        elif arg.role == "condition":
            out.append(_native(a, np.bool_))
        else:
            out.append(_native(a, dtype))

    full = {}
    for p in spec.params:
        full[p.name] = check_param(spec, p, params.get(p.name, p.default), dtype)
    out_shape = spec.shape(spec, out, full) if spec.shape else out[0].shape
    _check_size(spec, out_shape, dtype, backend)
    return out, full, dtype, tuple(out_shape)


# Per-element cost of a result: the float dtype's size, or ~100 bytes for an mpf (an
# object pointer plus the mpf and its mantissa).  A result that would not fit in the
# machine's memory is refused before anything is allocated.
_MP_ELEMENT_BYTES = 100


def _memory_bytes():
    try:
        from os import sysconf
        return sysconf("SC_PAGE_SIZE") * sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _check_size(spec, out_shape, dtype, backend):
    n = math.prod(int(s) for s in out_shape)
    per = _MP_ELEMENT_BYTES if backend == "mp" else dtype.itemsize
    need, have = n * per, _memory_bytes()
    if need > have:
        raise bad_value(spec.name, "output", f"a result that fits in memory "
                        f"({have / 2**30:.1f} GiB here)",
                        f"shape {tuple(out_shape)}, which would allocate "
                        f"{need / 2**30:.0f} GiB")


# mp precision: at most MAX_PREC bits (2^22: ~1.3 million decimal digits; an mpf of
# 10**30 bits cannot be allocated)
MAX_PREC = 1 << 22


def check_prec(op, prec):
    if isinstance(prec, (bool, np.bool_)) or not isinstance(prec, (int, np.integer)) \
            or not 2 <= prec <= MAX_PREC:
        raise bad_value(op, "prec", f"an integer number of bits in [2, {MAX_PREC}]", repr(prec))
    return int(prec)


# REFRT_NUM_THREADS is read once, when refrt is imported (the threads= keyword changes
# it per call); reading os.environ on every call cost more than a small kernel.
_env_threads = _environ.get("REFRT_NUM_THREADS")
_DEFAULT_THREADS = int(_env_threads) if _env_threads else None


# threads= is clamped to MAX_THREADS_PER_CPU x the CPU count: libgomp exits the process
# at ~60,000 threads and segfaults at 100,000, and more threads than ~cores buy nothing.
MAX_THREADS_PER_CPU = 4


def max_threads():
    """The largest accepted ``threads=``: 4 x the number of CPUs (documented)."""
    from os import cpu_count
    return MAX_THREADS_PER_CPU * (cpu_count() or 1)


def resolve_threads(threads, op="refrt"):
    """Thread count for OpenMP kernels: the ``threads=`` keyword, else REFRT_NUM_THREADS,
    else 1 (single-threaded by default, so results and timings are reproducible).
    Python and NumPy integers >= 1 are accepted; values above ``max_threads()`` are
    clamped to it (results do not depend on the thread count)."""
    if threads is None:
        if _DEFAULT_THREADS is None:
            return 1
        threads = _DEFAULT_THREADS
    if threads.__class__ is int and 1 <= threads <= 64:
        return threads
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) \
            or threads < 1:
        raise bad_value(op, "threads", "a positive integer", repr(threads))
    return min(int(threads), max_threads())
