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

# Rebuild only what changed.  pip builds every install of the checkout (`pip install .`,
# then `pip install ".[test]"`) in a fresh isolated environment, whose Cython includes
# (libc/math.pxd, ...) carry new timestamps, so cythonize would regenerate every .c and
# build_ext would recompile every kernel (~1.5 min).  The generated .c depends only on
# refrt's own .pyx/.pxd/.h (the kernels cimport nothing but Cython's libc/cython
# declarations, which do not change the C), so a .c newer than all of them is used as is;
# build_ext then skips a kernel whose built module is newer than its .c and than the
# stamp of the compile flags below (rewritten only when the flags change).
_OWN = glob("refrt/_kernels/*.pyx") + glob("refrt/_kernels/*.pxd") + glob("refrt/_kernels/*.h")
_NEWEST = max(os.path.getmtime(p) for p in _OWN)


def _source(pyx):
    c = pyx[:-4] + ".c"
    return c if os.path.exists(c) and os.path.getmtime(c) > _NEWEST else pyx


def _flags_stamp():
    path = os.path.join("build", "refrt-compile-flags.txt")
    text = " ".join(compile_args + ["|"] + link_args + ["|", sys.version]) + "\n"
    old = open(path).read() if os.path.exists(path) else None
    if old != text:
        os.makedirs("build", exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return path


_STAMP = _flags_stamp()

extensions = [
    Extension(
        "refrt._kernels." + os.path.splitext(os.path.basename(path))[0],
        [_source(path)],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        include_dirs=["refrt/_kernels"],
        depends=[_STAMP],
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
