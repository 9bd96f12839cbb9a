"""Bad input gets a clear error naming the op and the argument; unusual but valid
layouts (non-contiguous, read-only, big-endian, empty) give the same results."""
import numpy as np
import pytest

from refrt import families, ops
from refrt.errors import RefrtError, RefrtTypeError

from conftest import op_params

FLOAT_ARG_OPS = op_params()


def _example(spec, dtype=np.float64):
    arrays, params = families.generate(spec, spec.families[0], dtype)
    return arrays, params


@pytest.mark.parametrize("spec", FLOAT_ARG_OPS)
@pytest.mark.parametrize("bad", [np.int32, np.bool_, np.complex128, np.float16])
def test_wrong_dtype_names_op_and_arg(spec, bad):
    """An integer/bool/complex/float16 array where floats are expected is a TypeError."""
    arrays, params = _example(spec)
    k = next(i for i, a in enumerate(spec.args) if a.role not in ("condition", "index"))
    arg = spec.args[k]
    arrays[k] = arrays[k].astype(bad)
    with pytest.raises(RefrtTypeError) as err:
        ops.evaluate(spec.name, *arrays, **params)
    msg = str(err.value)
    assert spec.name in msg and repr(arg.name) in msg and "float32 or float64" in msg


@pytest.mark.parametrize("spec", [p for p in FLOAT_ARG_OPS if len(p.values[0].args) > 1])
def test_mixed_float_dtypes_are_an_error(spec):
    """float32 and float64 inputs together are a TypeError unless cast=True."""
    arrays, params = _example(spec)
    floats = [k for k, a in enumerate(spec.args) if a.role not in ("condition", "index")
              and arrays[k].dtype.kind == "f"]
    if len(floats) < 2:
        pytest.skip("fewer than two float inputs (the others are integer ids or indices)")
    i = next(k for k in floats if k >= 1)
    arrays[i] = arrays[i].astype(np.float32)
    with pytest.raises(RefrtTypeError, match="mixed float dtypes"):
        ops.evaluate(spec.name, *arrays, **params)
    out = ops.evaluate(spec.name, *arrays, cast=True, **params)
    assert np.asarray(out).dtype == np.float64


@pytest.mark.parametrize("spec", FLOAT_ARG_OPS)
def test_wrong_arity_and_unknown_param(spec):
    """Too few arrays or an unknown keyword name the op."""
    arrays, params = _example(spec)
    required = sum(1 for a in spec.args if a.optional is None)   # conv's bias is optional
    with pytest.raises(TypeError, match=spec.name):
        ops.evaluate(spec.name, *arrays[:required - 1], **params)
    with pytest.raises(TypeError, match="unknown parameter"):
        ops.evaluate(spec.name, *arrays, not_a_param=1, **params)


@pytest.mark.parametrize("spec", [p for p in FLOAT_ARG_OPS
                                  if p.values[0].kind in ("binary", "loss")])
def test_shape_mismatch(spec):
    """Inputs whose shapes disagree raise a ValueError naming the argument."""
    arrays, params = _example(spec)
    arrays[1] = np.concatenate([arrays[1], arrays[1]], axis=0)
    with pytest.raises(RefrtError) as err:
        ops.evaluate(spec.name, *arrays, **params)
    assert spec.name in str(err.value) and spec.args[1].name in str(err.value)


@pytest.mark.parametrize("spec", [p for p in FLOAT_ARG_OPS
                                  if any(q.name == "axis" for q in p.values[0].params)])
@pytest.mark.parametrize("axis", [5, -7, 1.5])
def test_bad_axis(spec, axis):
    """An axis outside [-ndim, ndim) or a non-integer axis is a clear error."""
    arrays, params = _example(spec)
    params["axis"] = axis
    with pytest.raises((RefrtError, RefrtTypeError)) as err:
        ops.evaluate(spec.name, *arrays, **params)
    assert spec.name in str(err.value) and "axis" in str(err.value)


@pytest.mark.parametrize("spec", [p for p in FLOAT_ARG_OPS
                                  if any(q.kind == "eps" for q in p.values[0].params)])
@pytest.mark.parametrize("eps", [-1e-6, float("nan"), float("inf"), "1e-6"])
def test_bad_eps(spec, eps):
    """eps must be a finite number >= 0."""
    arrays, params = _example(spec)
    params["eps"] = eps
    with pytest.raises((RefrtError, RefrtTypeError)) as err:
        ops.evaluate(spec.name, *arrays, **params)
    assert spec.name in str(err.value) and "eps" in str(err.value)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    bits = lambda v: np.ascontiguousarray(v).reshape(-1).view(np.uint8)
    assert np.array_equal(bits(a), bits(b)), f"{a!r} != {b!r}"


def _strided(a):
    if a.ndim == 0:
        return a
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@pytest.mark.parametrize("spec", FLOAT_ARG_OPS)
@pytest.mark.parametrize("layout", ["strided", "readonly", "bigendian", "fortran"])
def test_layouts_give_identical_results(spec, layout, dtype):
    """Non-contiguous, read-only, big-endian and Fortran-order inputs are bitwise identical
    to the C-contiguous native case."""
    arrays, params = families.generate(spec, spec.families[0], dtype)
    want = ops.evaluate(spec.name, *arrays, **params)
    variants = []
    for a in arrays:
        if layout == "strided":
            b = _strided(a)
        elif layout == "readonly":
            b = a.copy()
            b.setflags(write=False)
        elif layout == "bigendian":
            b = a.astype(a.dtype.newbyteorder(">"))
        else:
            b = np.asfortranarray(a)
        variants.append(b)
    got = ops.evaluate(spec.name, *variants, **params)
    _same(got, want)


@pytest.mark.parametrize("spec", FLOAT_ARG_OPS)
def test_zero_size_inputs_never_crash(spec, dtype):
    """Arrays with a zero-length leading dimension give a result or a clear error."""
    arrays, params = families.generate(spec, spec.families[0], dtype)
    empty = [a[:0] if a.ndim else a for a in arrays]
    try:
        out = ops.evaluate(spec.name, *empty, **params)
    except (RefrtError, RefrtTypeError) as err:
        assert spec.name in str(err)
        return
    assert isinstance(out, np.ndarray)
    if out.size:
        assert np.all(np.isfinite(out)) or spec.kind != "loss"
