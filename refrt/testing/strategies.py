"""Hypothesis strategies for adversarial float inputs, derived from the op registry.

* ``special_floats(dtype)``: +-0, the smallest subnormal, the largest subnormal, tiny,
  max, +-1, eps, the exp overflow / underflow thresholds, (optionally) +-inf and NaN.
* ``adversarial_floats(dtype)``: special values, values a few ulp away from them, and
  any float of the dtype (subnormals included).
* ``logits(shape, dtype)``: rows with huge spreads, one dominant entry, exact ties.
* ``probabilities(shape, dtype, rows_sum_to_one)``: within a few ulp of 0 and 1.
* ``near_domain_edge(interval, dtype)``: a few ulp inside (or on) each finite edge.
* ``adversarial_rows(shape, dtype)``: the row structures of issue 9 (refrt.families):
  a large mean with a small spread, rows of subnormals, +-max terms that cancel, one
  entry above the rest by a margin from 1 to 100.
* ``op_inputs(op_name, dtype)``: ``(arrays, params)`` for any registry op: shapes that
  satisfy the op's shape rule (zero-size axes included) and values drawn per ``Arg``
  (its domain and role) and per op kind; unconstrained real arguments also draw
  ``adversarial_rows``.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..domains import REALS
from ..registry import _shapes, get


def _finfo(dtype):
    return np.finfo(np.dtype(dtype))


def special_floats(dtype=np.float64, allow_nonfinite=False):
    dt = np.dtype(dtype)
    fi = _finfo(dt)
    sub = float(np.nextafter(dt.type(0), dt.type(1)))
    big = float(np.log(fi.max))                    # exp overflows just above this
    vals = [0.0, sub, float(fi.tiny) - sub, float(fi.tiny), float(fi.max), 1.0,
            float(fi.eps), 0.5, 2.0, big, -big - 20.0, float(np.log(fi.tiny))]
    vals = [float(dt.type(v)) for v in vals]
    vals += [-v for v in vals]
    if allow_nonfinite:
        vals += [math.inf, -math.inf, math.nan]
    return st.sampled_from(vals)


def _nudge(dtype, base, steps):
    v = np.asarray(base, dtype=dtype)
    direction = np.asarray(np.inf if steps > 0 else -np.inf, dtype=dtype)
    for _ in range(abs(steps)):
        with np.errstate(over="ignore"):
            w = np.nextafter(v, direction)
        if not np.isfinite(w):      # stay finite: max nudged up stays max
            break
        v = w
    return float(v)


def adversarial_floats(dtype=np.float64, allow_nonfinite=False, min_value=None,
                       max_value=None):
    dt = np.dtype(dtype)
    width = 32 if dt == np.float32 else 64
    near = st.builds(lambda b, k: _nudge(dt, b, k), special_floats(dt),
                     st.integers(-4, 4))
    anyf = st.floats(width=width, allow_nan=allow_nonfinite, allow_infinity=allow_nonfinite,
                     allow_subnormal=True)
    s = st.one_of(special_floats(dt, allow_nonfinite), near, anyf)
    if min_value is not None or max_value is not None:
        lo = -math.inf if min_value is None else min_value
        hi = math.inf if max_value is None else max_value
        s = s.filter(lambda v: math.isnan(v) or lo <= v <= hi)
    return s


def _in_domain(domain, v):
    """v inside ``domain``, open edges excluded (pow's x in (0, inf) must not draw 0)."""
    if math.isnan(v):
        return True
    lo_ok = v > domain.low or (domain.low_inclusive and v == domain.low)
    hi_ok = v < domain.high or (domain.high_inclusive and v == domain.high)
    return lo_ok and hi_ok


def near_domain_edge(interval, dtype=np.float64):
    """Values a few ulp inside each finite edge of ``interval`` (the edge itself when it is
    included); the whole real line if it has no finite edge."""
    dt = np.dtype(dtype)
    edges = []
    if math.isfinite(interval.low):
        edges.append((interval.low, 1, interval.low_inclusive))
    if math.isfinite(interval.high):
        edges.append((interval.high, -1, interval.high_inclusive))
    if not edges:
        return adversarial_floats(dt)

    def at(edge, k):
        base, direction, inclusive = edge
        return _nudge(dt, base, direction * (k if k or inclusive else 1))
    return st.builds(at, st.sampled_from(edges), st.integers(0, 6))


def logits(shape, dtype=np.float64):
    """Rows with a huge spread, a dominant entry 30-1e4 above the rest, or exact ties."""
    dt = np.dtype(dtype)
    spread = 1e3 if dt == np.float32 else 1e4
    base = hnp.arrays(dt, shape, elements=st.one_of(
        st.floats(-spread, spread, width=32 if dt == np.float32 else 64),
        st.sampled_from([0.0, -0.0, 1.0, -1.0])))

    @st.composite
    def build(draw):
        x = draw(base)
        if x.size and len(shape) and draw(st.booleans()):
            rows = x.reshape(-1, shape[-1])
            for r in rows:
                j = draw(st.integers(0, shape[-1] - 1))
                r[j] = dt.type(draw(st.sampled_from([30.0, 80.0, 745.0, spread])) + np.max(r))
        return x
    return build()


def adversarial_rows(shape, dtype=np.float64):
    """Arrays of ``shape`` whose last-axis rows are one of the adversarial structures:
    large mean (+-1e5 float32 / +-1e12 float64) plus a small spread, subnormals, +-max
    and +-max/2 pairs that cancel plus small entries, or one entry a margin (1..100)
    above the others.  Every value is a float of ``dtype``."""
    dt = np.dtype(dtype)
    fi = _finfo(dt)
    width = 32 if dt == np.float32 else 64
    n = int(np.prod(shape)) if len(shape) else 1
    cols = shape[-1] if len(shape) else 1
    small = st.floats(-4.0, 4.0, width=width)

    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(["large_mean", "subnormal", "cancel_max", "margin"]))
        v = np.array([draw(small) for _ in range(n)], dtype=np.float64)
        rows = v.reshape(-1, cols) if n else v.reshape(0, max(cols, 1))
        if kind == "large_mean":
            big = draw(st.sampled_from([1e5, -1e5])) if dt == np.float32 else \
                draw(st.sampled_from([1e12, -1e12, 3e15]))
            rows += big
        elif kind == "subnormal":
            sub = float(fi.smallest_subnormal)
            rows[:] = np.array([draw(st.integers(-(2 ** 20), 2 ** 20)) for _ in range(rows.size)]
                               ).reshape(rows.shape) * sub
        elif kind == "cancel_max":
            M = float(fi.max)
            for r in rows:
                if r.size >= 2:
                    i, j = draw(st.permutations(range(r.size)))[:2]
                    mag = draw(st.sampled_from([M, M / 2]))
                    r[i], r[j] = mag, -mag
        else:
            for r in rows:
                if r.size:
                    i = draw(st.integers(0, r.size - 1))
                    r[i] = np.max(r) + draw(st.sampled_from([1.0, 3.0, 10.0, 30.0, 100.0]))
        with np.errstate(over="ignore"):
            return rows.astype(dt).reshape(shape)
    return build()


def probabilities(shape, dtype=np.float64, rows_sum_to_one=False):
    """Entries within a few ulp of 0 and 1 (subnormals included), or one-hot rows with
    ulp-sized perturbations when ``rows_sum_to_one``."""
    dt = np.dtype(dtype)
    fi = _finfo(dt)
    sub = float(np.nextafter(dt.type(0), dt.type(1)))
    edge = st.one_of(
        st.builds(lambda k: _nudge(dt, 1.0, -k), st.integers(0, 6)),
        st.builds(lambda k: k * sub, st.integers(0, 6)),
        st.sampled_from([float(fi.tiny), float(fi.eps), 0.5]),
        st.floats(0.0, 1.0, width=32 if dt == np.float32 else 64))
    if not rows_sum_to_one or not len(shape):
        return hnp.arrays(dt, shape, elements=edge)

    @st.composite
    def one_hot(draw):
        p = np.zeros(shape, dt)
        if p.size:
            rows = p.reshape(-1, shape[-1])
            for r in rows:
                r[draw(st.integers(0, shape[-1] - 1))] = dt.type(
                    _nudge(dt, 1.0, -draw(st.integers(0, 3))))
        return p
    return st.one_of(one_hot(), hnp.arrays(dt, shape, elements=edge))


def _arg_values(spec, arg, shape, dtype, allow_nonfinite, class_probs):
    lo, hi = arg.domain.low, arg.domain.high
    if arg.role == "condition":
        return hnp.arrays(np.bool_, shape)
    if arg.role in ("target", "class_target") or arg.name == "probs":
        return probabilities(shape, dtype, rows_sum_to_one=class_probs)
    if arg.name == "log_probs":
        return hnp.arrays(dtype, shape, elements=st.one_of(
            adversarial_floats(dtype, min_value=-1e30, max_value=0.0),
            st.floats(-50.0, 0.0, width=32 if dtype == np.float32 else 64)))
    if spec.kind in ("softmax", "loss") or spec.name == "logsumexp":
        return st.one_of(logits(shape, dtype), adversarial_rows(shape, dtype))
    if arg.domain == REALS:
        elements = adversarial_floats(dtype, allow_nonfinite)
        return st.one_of(hnp.arrays(dtype, shape, elements=elements),
                         adversarial_rows(shape, dtype))
    else:
        elements = st.one_of(near_domain_edge(arg.domain, dtype),
                             adversarial_floats(dtype, allow_nonfinite,
                                                None if math.isinf(lo) else lo,
                                                None if math.isinf(hi) else hi)
                             ).filter(lambda v: _in_domain(arg.domain, v))
    return hnp.arrays(dtype, shape, elements=elements)


_dims = st.integers(0, 4)


@st.composite
def _shapes_for(draw, spec):
    """One shape per Arg, valid for the op's shape rule, plus param overrides."""
    rule, n = spec.shape, len(spec.args)
    params = {}
    if rule is _shapes.elementwise:
        s = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
        return [s] * n, params
    if rule in (_shapes.reduction, _shapes.along_axis):
        s = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0 if rule is _shapes.reduction else 1,
                                  max_side=6))
        choices = list(range(-len(s), len(s)))
        if rule is _shapes.reduction and any(p.kind == "axis_or_none" for p in spec.params):
            choices.append(None)
        params["axis"] = draw(st.sampled_from(choices))
        return [s], params
    if rule is _shapes.pairwise_loss:
        s = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6))
        return [s] * n, params
    if rule is _shapes.class_loss:
        s = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6))
        return [s] * n, params
    if rule is _shapes.matmul:
        m, k, p = draw(_dims), draw(_dims), draw(_dims)
        return [(m, k), (k, p)], params
    if rule is _shapes.linear:
        b, i, o = draw(_dims), draw(_dims), draw(_dims)
        return [(b, i), (o, i), (o,)], params
    if rule is _shapes.batch_norm:
        c = draw(st.integers(1, 3))
        rest = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4))
        return [(c,) + rest] + [(c,)] * (n - 1), params
    if rule is _shapes.layer_norm:
        d = draw(st.integers(1, 6))
        lead = draw(hnp.array_shapes(min_dims=0, max_dims=1, min_side=0, max_side=4))
        return [lead + (d,)] + [(d,)] * (n - 1), params
    sample = getattr(rule, "draw_example", None)
    if sample is not None:
        # the rule draws its own valid shapes and params from integers (conv and pooling:
        # strides, padding, dilation, groups; refrt.registry.conv)
        return sample(lambda lo, hi: draw(st.integers(lo, hi)))
    # any other rule (shape ops, affine, ...): the example shapes of refrt.families, which
    # the rule accepts with the op's default params
    from ..families import _shapes as example_shapes
    return [tuple(s) for s in example_shapes(spec)], params


@st.composite
def op_inputs(draw, op_name, dtype=np.float64, allow_nonfinite=False):
    """``(arrays, params)`` for ``op_name``: valid shapes, adversarial values."""
    spec = get(op_name)
    dt = np.dtype(dtype)
    shapes, params = draw(_shapes_for(spec))
    class_probs = spec.shape is _shapes.class_loss
    arrays = [draw(_arg_values(spec, arg, shape, dt, allow_nonfinite, class_probs))
              for arg, shape in zip(spec.args, shapes)]
    if any(a.role == "index" for a in spec.args):
        from ..families import index_bound
        bound = index_bound(spec, shapes)
        for k, (arg, shape) in enumerate(zip(spec.args, shapes)):
            if arg.role == "index":
                arrays[k] = np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(
                    0, bound - 1))), dtype=np.int64).reshape(shape)
    has_ids = any(a.role == "class_target" for a in spec.args)
    if spec.shape is _shapes.class_loss and has_ids and draw(st.booleans()):
        # integer class ids instead of probability rows
        i = next(k for k, a in enumerate(spec.args) if a.role == "class_target")
        c = shapes[0][-1]
        ids = draw(hnp.arrays(np.int64, shapes[0][:-1], elements=st.integers(0, c - 1)))
        arrays[i] = np.asarray(ids, dtype=np.int64).reshape(shapes[0][:-1])
    full = dict(spec.param_defaults)
    full.update(params)
    return arrays, full
