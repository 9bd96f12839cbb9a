"""Graph rewrites: a ``Builder`` copies a traced ``Graph``, adds nodes and constants, and
reroutes every reader of one value to another; nodes that no longer reach an output are
dropped.  The result is an ordinary ``Graph`` that evaluates on every backend."""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, _float_node


class Builder:
    """Add nodes (placed before ``anchor``), then ``build(old, new)``; several rewrites
    can share one builder: ``replace(old, new)`` records one, ``set_anchor`` moves the
    insertion point, and ``build()`` applies every recorded replacement."""

    def __init__(self, graph: Graph, anchor: Node):
        self.g = graph
        self.anchor = anchor                      # new nodes go before this node
        self.values = list(graph.example_run.values)
        self.new_nodes = []
        self.placed = {}                          # anchor node id -> new nodes before it
        self.remap = {}
        self.constants = dict(graph.constants)
        self.nslots = graph.nslots
        self.requires = list(graph._requires)
        self.dtype = np.asarray(self.values[anchor.output]).dtype

    def _slot(self, value, requires):
        self.values.append(value)
        self.requires.append(requires)
        self.nslots += 1
        return self.nslots - 1

    def const(self, array):
        arr = np.asarray(array, dtype=self.dtype)
        slot = self._slot(arr, False)
        self.constants[slot] = arr
        return slot

    def const_bool(self, array):
        arr = np.asarray(array, dtype=bool)
        slot = self._slot(arr, False)
        self.constants[slot] = arr
        return slot

    def full_like(self, slot, value):
        return self.const(np.full(np.shape(self.values[slot]), value, dtype=self.dtype))

    def op(self, name, *slots, **params):
        backend = "f32" if self.dtype == np.float32 else "f64"
        node = Node(-1, name, tuple(slots), dict(params), -1, (), None,
                    self.anchor.location, any(self.requires[s] for s in slots))
        with np.errstate(all="ignore"):
            _, full, out = _float_node(node, [self.values[s] for s in slots], backend, 1)
        node.output = self._slot(out, node.requires_grad)
        node.shape, node.dtype = out.shape, out.dtype
        node._full[out.dtype.name] = full
        self.new_nodes.append(node)
        self.placed.setdefault(id(self.anchor), []).append(node)
        return node.output

    def set_anchor(self, node):
        self.anchor = node

    def replace(self, old_slot, new_slot):
        self.remap[old_slot] = new_slot

    def shape(self, slot):
        return np.shape(self.values[slot])

    def build(self, old_slot=None, new_slot=None) -> Graph:
        """The graph with every read of ``old_slot`` reading ``new_slot`` (and every
        replacement recorded with ``replace``)."""
        g = self.g
        if old_slot is not None:
            self.remap[old_slot] = new_slot
        table = dict(self.remap)

        def remap(s):
            seen = 0
            while s in table and seen < len(table) + 1:
                s, seen = table[s], seen + 1
            return s
        nodes = []
        for node in g.nodes:
            nodes += self.placed.get(id(node), [])
            nodes.append(node)
        out = Graph(g.name + "'", g.input_shapes, g.input_dtypes)
        out.constants = self.constants
        out.nslots = self.nslots
        out.output_slots = [remap(s) for s in g.output_slots]
        out.single_output = g.single_output
        # keep only nodes that reach an output
        live, kept = set(out.output_slots), []
        for node in reversed(nodes):
            if node.output in live and node.output not in table:
                kept.append(node)
                live.update(remap(s) for s in node.inputs)
        for i, node in enumerate(reversed(kept)):
            copy = Node(i, node.op, tuple(remap(s) for s in node.inputs), node.params,
                        node.output, node.shape, node.dtype, node.location,
                        node.requires_grad, dict(node._full))
            out.nodes.append(copy)
        out._requires = self.requires
        values = list(self.values)
        from ..graph import Run
        out.example_run = Run(out, g.example_run.backend, g.example_run.dtype, values, [], [])
        return out
