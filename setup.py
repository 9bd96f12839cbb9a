"""Build the typed Cython kernels in refrt/_kernels.

Release builds use -O3 without -ffast-math: the kernels rely on IEEE semantics
(inf/NaN propagation, signed zeros, no reassociation of compensated sums).
OpenMP is used for row-parallel loops when the compiler supports it.
"""
import os
import sys
from glob import glob

from setuptools import Extension, setup
from Cython.Build import cythonize

# Of the flags -ffast-math implies, refrt takes the two that change no result:
# -fno-trapping-math (the compiler may assume FP exceptions do not trap; refrt never reads
# the exception flags), which lets gcc vectorise loops with float compare-and-select, and
# -fno-math-errno (libm need not set errno), which lets sqrt compile to one instruction.
# None of the value-changing ones: no reassociation, no finite-math or no-signed-zeros
# assumption, no reciprocal approximations, no flush to zero.
compile_args = ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fno-trapping-math",
                "-fno-math-errno"]
link_args = []


def _host_has(*flags):
    """CPU flags of the build host (Linux): refrt is built from source where it runs."""
    try:
        with open("/proc/cpuinfo") as f:
            words = set(f.read().split())
    except OSError:
        return False
    return all(flag in words for flag in flags)


# AVX2 + FMA when the build host has them: fma() then compiles to one instruction
# instead of a ~3 ns libm call, and loops vectorise 4-wide in float64.  Explicit fma()
# only: -ffp-contract=off keeps the compiler from fusing a*b+c on its own, so the
# rounding of every expression is the one written.  REFRT_PORTABLE=1 builds for any
# x86-64.
if os.environ.get("REFRT_PORTABLE") != "1" and _host_has("avx2", "fma"):
    compile_args += ["-mavx2", "-mfma"]
if sys.platform.startswith("linux") and os.environ.get("REFRT_NO_OPENMP") != "1":
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

extensions = [
    Extension(
        "refrt._kernels." + os.path.splitext(os.path.basename(path))[0],
        [path],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        include_dirs=["refrt/_kernels"],
    )
    for path in sorted(glob("refrt/_kernels/*.pyx"))
    # REFRT_ONLY=name1,name2 builds a subset (handy while editing one kernel file).
    if not os.environ.get("REFRT_ONLY")
    or os.path.splitext(os.path.basename(path))[0] in os.environ["REFRT_ONLY"].split(",")
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3},
        include_path=["refrt/_kernels"],
    ),
)
