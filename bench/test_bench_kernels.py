"""pytest-benchmark entry for the op suite: ``pytest bench --benchmark-only``.

Not part of the normal test run (pytest's testpaths is ``tests``).  One benchmark per
(op, size, dtype, implementation); cases and NumPy/torch equivalents come from
bench_kernels.CASES.  Compare implementations with ``--benchmark-group-by=param:case``.
"""
import numpy as np
import pytest

import bench_kernels as bk

pytest.importorskip("pytest_benchmark")

TABLE, _ = bk.load_float_table()
IMPLS = ["refrt", "numpy"] + (["torch"] if bk.torch is not None else [])
CASE_IDS = [(op, size, dt) for size in ("small", "large") for dt in ("float32", "float64")
            for op in bk.CASES]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASE_IDS, ids=lambda c: "-".join(c))
def test_op(benchmark, case, impl):
    op, size, dt = case
    kind, params, np_fn, torch_fn = bk.CASES[op]
    arrays = bk.make_inputs(kind, size, np.dtype(dt).type, np.random.default_rng(0))
    if impl == "refrt":
        name = bk.OP_OF.get(op, op)           # a case may be one input variant of an op
        if name not in TABLE:
            pytest.skip(f"{name}: not bound in refrt.backends.FLOAT")
        from refrt.ops import evaluate
        fn = lambda: evaluate(name, *arrays, threads=1, **params)     # noqa: E731
    elif impl == "numpy":
        fn = lambda: np_fn(*arrays)                                   # noqa: E731
    else:
        bk.torch.set_num_threads(1)
        tens = [bk.torch.from_numpy(a) for a in arrays]
        fn = lambda: torch_fn(*tens)                                  # noqa: E731
    benchmark.group = "-".join(case)
    with np.errstate(all="ignore"):
        benchmark(fn)
