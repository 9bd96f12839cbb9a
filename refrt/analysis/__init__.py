"""Static analysis of refrt programs in the manner of DEBAR (Zhang et al., ESEC/FSE'20):
prove a traced graph's unsafe operations safe for every input and weight in given
ranges, or say which part of which tensor reaches a danger zone, and confirm it with
the dynamic tester.

* ``domain``: intervals with outward rounding, affine forms, partitions;
* ``transfer``: the abstract transformer of every registry op, as data;
* ``rules``: danger zones from the registry's domains and the dtype's exact limits;
* ``analyze``: the walk over the graph and ``refrt.analyze``;
* ``confirm``: sub-box bisection and witnesses from ``refrt.check``;
* ``report``: ``OpResult`` and ``AnalysisReport``;
* ``benchmark``: graphs with ground truth and the ablation table (``refrt analyze
  --benchmark``).
"""
from .analyze import PARTITIONS, RELATIONS, Weight, analyze
from .report import AnalysisReport, OpResult

__all__ = ["analyze", "Weight", "AnalysisReport", "OpResult", "PARTITIONS", "RELATIONS"]
