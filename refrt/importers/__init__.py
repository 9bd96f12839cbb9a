"""Importers: models from other frameworks as refrt graphs.

* ``from_torch(module_or_fn, *example_inputs, loss=None)``: a PyTorch model through
  ``torch.export`` and Core ATen (``torch_export``; the mapping is the data table
  ``aten_table``);
* ``node_report(graph, *inputs)``: each node's (and each layer's) float32 or float64
  error against the mp evaluation of the same graph (``report``).

Nothing in refrt's core imports this package; ``refrt.from_torch`` loads it lazily, and
torch is imported only when ``from_torch`` is called.
"""
from .report import NodeError, layer_report, node_report
from .torch_export import (DataDependentError, ImportedGraph, UnsupportedOpError, from_torch,
                           replay)

__all__ = ["from_torch", "ImportedGraph", "UnsupportedOpError", "DataDependentError",
           "node_report", "layer_report", "NodeError", "replay"]
