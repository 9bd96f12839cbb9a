"""The differential tester for users' programs: ``refrt.check``.

* ``inputs``: ``Range`` boxes and input normalisation;
* ``evaluate``: a candidate evaluated in float and exactly; the float screens;
* ``localize``: departures, origins (Herbie's local error, per element), kinds;
* ``search``: sampling, bisection on danger quantities, climbing, shrinking;
* ``patterns`` / ``rewrite``: the suggestion table and graph rewrites;
* ``gradients``: float gradient against the exact gradient;
* ``report``: ``Finding`` and ``Report``.
"""
from .check import check
from .inputs import Range
from .patterns import PATTERNS
from .report import KINDS, Finding, Report

__all__ = ["check", "Range", "Finding", "Report", "KINDS", "PATTERNS"]
