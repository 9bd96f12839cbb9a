"""ulp_distance and bits_error against numpy.nextafter walks, in every format."""
import numpy as np
import pytest

from refrt.metrics import absolute_error, bits_error, relative_error, ulp_distance

FORMATS = [np.float16, np.float32, np.float64]


def _walk(start, steps, dtype, direction):
    v = np.asarray(start, dtype=dtype)
    out = [v]
    for _ in range(steps):
        v = np.nextafter(v, np.asarray(direction, dtype=dtype))
        out.append(v)
    return np.array(out, dtype=dtype)


@pytest.mark.parametrize("dtype", FORMATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("start", [1.0, -3.5, 0.0, 6.0e-8, 1e-40, 60000.0])
def test_ulp_distance_counts_nextafter_steps(dtype, start):
    """k nextafter steps (through zero, subnormals and up to inf) are k ulps."""
    fi = np.finfo(dtype)
    start = dtype(start) if np.isfinite(dtype(start)) else fi.max
    for direction in (np.inf, -np.inf):
        w = _walk(start, 40, dtype, direction)
        d = ulp_distance(np.full(w.shape, start, dtype=dtype), w, dtype)
        k = np.arange(w.size, dtype=np.float64)
        # crossing zero visits both -0 and +0, which count as one value
        zeros = np.cumsum(w == 0) > 1
        np.testing.assert_array_equal(d, k - zeros)


@pytest.mark.parametrize("dtype", FORMATS, ids=lambda d: np.dtype(d).name)
def test_ulp_distance_special_values(dtype):
    fi = np.finfo(dtype)
    assert ulp_distance(dtype(0.0), dtype(-0.0), dtype) == 0
    assert ulp_distance(fi.max, dtype(np.inf), dtype) == 1
    assert ulp_distance(dtype(np.nan), dtype(np.nan), dtype) == 0
    top = ulp_distance(dtype(np.nan), dtype(1.0), dtype)
    assert top == ulp_distance(-np.asarray(np.inf, dtype), np.asarray(np.inf, dtype), dtype)
    assert ulp_distance(fi.smallest_subnormal, -fi.smallest_subnormal, dtype) == 2


def test_ulp_distance_bfloat16():
    """bfloat16 ulps (values held in float32, or ml_dtypes.bfloat16 arrays)."""
    one_up = np.float32(1.0 + 2.0 ** -7)
    assert ulp_distance(np.float32(1.0), one_up, "bfloat16") == 1
    assert ulp_distance(np.float32(-1.0), one_up, "bfloat16") == 2 * 0x3F80 + 1
    try:
        import ml_dtypes
    except ImportError:
        return
    bf = ml_dtypes.bfloat16
    w = _walk(bf(1.0), 20, bf, np.inf)
    np.testing.assert_array_equal(ulp_distance(np.full(w.shape, bf(1.0), dtype=bf), w, bf),
                                  np.arange(w.size))


def test_bits_error_is_herbie_definition():
    d = ulp_distance(np.float64(1.0), np.nextafter(1.0, 2.0), np.float64)
    assert bits_error(1.0, np.nextafter(1.0, 2.0), np.float64) == np.log2(1 + d) == 1.0
    assert bits_error(2.0, 2.0, np.float64) == 0.0
    assert bits_error(np.nan, 1.0, np.float64) == pytest.approx(64.0, abs=0.01)


def test_relative_and_absolute_error_vectorised():
    a = np.array([1.0, 0.0, np.inf, np.nan, 2.0])
    b = np.array([1.5, 0.0, np.inf, np.nan, 1.0])
    np.testing.assert_array_equal(absolute_error(a, b), [0.5, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(relative_error(a, b), [0.5 / 1.5, 0.0, 0.0, 0.0, 1.0])
