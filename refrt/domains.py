"""Input domains as intervals (the idea of scikit-learn's ``link.Interval``).

A domain says where an op's real-valued definition is finite and defined.  The
samplers draw inside it, the tests probe its edges, and the docs print it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True

    def includes(self, x: float) -> bool:
        """Whether the real number ``x`` lies in the interval (NaN never does)."""
        if math.isnan(x):
            return False
        lo_ok = x >= self.low if self.low_inclusive else x > self.low
        hi_ok = x <= self.high if self.high_inclusive else x < self.high
        return lo_ok and hi_ok

    def __str__(self) -> str:
        lo = "[" if self.low_inclusive else "("
        hi = "]" if self.high_inclusive else ")"
        return f"{lo}{_fmt(self.low)}, {_fmt(self.high)}{hi}"


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:g}"


REALS = Interval(-math.inf, math.inf, False, False)
POSITIVE = Interval(0.0, math.inf, False, False)
NONNEGATIVE = Interval(0.0, math.inf, True, False)
UNIT = Interval(0.0, 1.0, True, True)
OPEN_UNIT = Interval(0.0, 1.0, False, False)
NONZERO = Interval(-math.inf, math.inf, False, False)  # with the zero excluded by `excludes_zero`
