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

compile_args = ["-O3", "-fno-fast-math", "-ffp-contract=off"]
link_args = []
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
