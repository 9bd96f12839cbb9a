"""norm_rows.h gives the same bits on every ISA level (its Design a): the driver
tests/norm_rows_clones.c is built for x86-64 (SSE2, fma through libm), x86-64-v3 (AVX2 +
FMA) and, where this CPU runs it, x86-64-v4 (AVX-512), with the release flags of
setup.py; the three output files must be identical."""
import os
import platform
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(os.path.dirname(HERE), "refrt", "_kernels")
FLAGS = ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-trapping-math",
         "-fno-math-errno", "-DREFRT_NO_CLONES"]


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            return set(f.read().split())
    except OSError:
        return set()


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("gcc") is None,
                    reason="needs gcc on x86-64")
def test_layer_norm_rows_bitwise_identical_across_isa_levels(tmp_path):
    flags = _cpu_flags()
    arches = ["x86-64"] + [a for a, need in (("x86-64-v3", {"avx2", "fma"}),
                                             ("x86-64-v4", {"avx512f", "avx512bw", "avx512dq",
                                                            "avx512vl"}))
                           if need <= flags]
    if len(arches) < 2:
        pytest.skip("this CPU runs only the baseline ISA")
    outs = []
    for arch in arches:
        exe = tmp_path / f"chk_{arch}"
        subprocess.run(["gcc", *FLAGS, f"-march={arch}", "-I", KERNELS,
                        os.path.join(HERE, "norm_rows_clones.c"), "-lm", "-o", str(exe)],
                       check=True)
        out = tmp_path / f"out_{arch}.bin"
        subprocess.run([str(exe), str(out)], check=True)
        outs.append(out.read_bytes())
    assert len(outs[0]) > 1_000_000
    for arch, data in zip(arches[1:], outs[1:]):
        assert data == outs[0], f"{arch} differs from the x86-64 baseline"
