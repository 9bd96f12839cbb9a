"""Named input families: deterministic adversarial inputs for every op.

``generate(spec, family, dtype, seed)`` returns ``(arrays, params)`` for one draw of a
family.  Families are derived from the registry (each ``Arg``'s domain and role), so a
new op is covered without new sampling code.

Families:
  normal          N(0, 3^2) values (clipped into the domain)
  wide            random signs, magnitudes log-uniform over the dtype's whole range
  extremal        +-0, +-tiny, +-smallest subnormal, +-max, +-1, +-eps, inf edges
  large_spread    rows with a spread of ~1e3 (float32) / ~1e4 (float64) between logits
  dominant        one logit per row 30-80 above the rest
  probs_near_0_1  probabilities within a few ulp of 0 and of 1
  zero_targets    targets with exact zeros
  domain_edge     values a few ulp inside each finite domain edge
Adversarial families (issue 9; found from outside the families above):
  large_mean      rows with a large mean and a small spread (1e5 / 1e12 +- N(0, 1))
  subnormal       rows of subnormals and zeros (both signs)
  cancel_max      +-max and +-max/2 terms that cancel to a small remainder
  margins         one logit per row above the rest by a margin from 1 to 100
  inf_logits      +-inf logits among finite ones, with soft (fractional) targets
  near_root       within 1e-9 (and a few ulp) of a root (1: log, 0: log1p, 0.5413: safe_log)
``DESCRIPTIONS`` holds these one-line descriptions (the docs' legend).
"""
from __future__ import annotations

import math
import zlib

import numpy as np

DESCRIPTIONS = {
    "normal": "N(0, 3^2) values (clipped into the domain)",
    "wide": "random signs, magnitudes log-uniform over the dtype's whole range",
    "extremal": "+-0, +-tiny, +-smallest subnormal, +-max, +-1, +-eps, inf edges",
    "large_spread": "rows with a spread of ~1e3 (float32) / ~1e4 (float64) between logits",
    "dominant": "one logit per row 30-80 above the rest",
    "probs_near_0_1": "probabilities within a few ulp of 0 and of 1",
    "zero_targets": "targets with exact zeros",
    "domain_edge": "values a few ulp inside each finite domain edge",
    "large_mean": "rows with a large mean and a small spread (1e5 (float32) / 1e12 (float64) "
                  "of either sign, + N(0, 1))",
    "subnormal": "rows of subnormals (random multiples of the smallest one) and zeros",
    "cancel_max": "+-max and +-max/2 terms that cancel exactly, plus a small remainder",
    "margins": "one logit per row above the rest by a margin from 1 to 100 "
               "(1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, cycling over rows)",
    "inf_logits": "+-inf logits among finite ones, with soft (fractional) targets",
    "near_root": "within 1e-9 relative (and a few ulp) of a root: 1 (log), 0 (log1p, "
                 "expm1), log(e - 1) ~ 0.5413 (safe_log: softplus(x) = 1)",
}
FAMILIES = tuple(DESCRIPTIONS)
ADVERSARIAL = ("large_mean", "subnormal", "cancel_max", "margins", "inf_logits", "near_root")
SAFE_LOG_ROOT = 0.5413248546129181      # log(e - 1): softplus(x) = 1
MARGINS = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 70.0, 100.0)


def _rng(spec, family, dtype, seed):
    key = f"{spec.name}/{family}/{np.dtype(dtype).name}/{seed}".encode()
    return np.random.default_rng(zlib.crc32(key))


def _shapes(spec):
    """Example shapes per input, by op kind (small: the mp reference is ~10 us/elem)."""
    if spec.example_shapes is not None:
        return list(spec.example_shapes)
    k = spec.kind
    if k in ("unary", "binary"):
        return [(48,)] * len(spec.args)
    if k in ("reduction", "softmax", "loss"):
        return [(6, 9)] * len(spec.args)
    return [(6, 9)] * len(spec.args)


def _extremal(dtype):
    fi = np.finfo(dtype)
    sub = float(np.nextafter(dtype.type(0), dtype.type(1)))
    vals = [0.0, float(fi.tiny), sub, float(fi.max), 1.0, float(fi.eps), 0.5, 2.0,
            float(fi.max) / 2, float(fi.tiny) * 4, 1e-3, 88.0 if dtype == np.float32 else 709.0,
            math.inf]
    return np.array(vals + [-v for v in vals] + [-0.0], dtype=dtype)


def _clip_domain(v, domain, dtype):
    """Fold values outside a finite domain edge back inside: below a lower edge L maps to
    L + |v - L| (reflection), above an upper edge H maps to H - |v - H| and is then
    clamped, so samples keep their spread and never leave the domain."""
    lo, hi = domain.low, domain.high
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(lo):
            edge = dtype.type(lo)
            if not domain.low_inclusive:
                edge = np.nextafter(edge, dtype.type(np.inf))
            v = np.where(v < edge, edge + np.abs(v - edge), v)
        if math.isfinite(hi):
            edge = dtype.type(hi)
            if not domain.high_inclusive:
                edge = np.nextafter(edge, dtype.type(-np.inf))
            v = np.where(v > edge, edge - np.abs(v - edge), v)
            v = np.minimum(v, edge)
            if math.isfinite(lo):
                v = np.maximum(v, dtype.type(lo))
    return v.astype(dtype)


def _values(family, shape, domain, dtype, rng):
    n = int(np.prod(shape)) if shape else 1
    fi = np.finfo(dtype)
    if family == "wide":
        lo, hi = math.log10(float(fi.tiny)), math.log10(float(fi.max))
        v = np.sign(rng.standard_normal(n)) * 10.0 ** rng.uniform(lo, hi, n)
    elif family == "extremal":
        v = rng.choice(_extremal(dtype), n)
    elif family == "domain_edge":
        # a few ulp inside a finite edge: nextafter walks of 1..7 steps inward
        edges = [(e, 1.0 if e == domain.low else -1.0)
                 for e in (domain.low, domain.high) if math.isfinite(e)] or [(0.0, 1.0)]
        v = np.empty(n)
        for i in range(n):
            edge, direction = edges[rng.integers(len(edges))]
            w = dtype.type(edge)
            for _ in range(int(rng.integers(1, 8))):
                w = np.nextafter(w, dtype.type(direction))
            v[i] = w
    elif family == "large_spread":
        v = rng.standard_normal(n) * (1e3 if dtype == np.float32 else 1e4)
    elif family in ("large_mean", "subnormal", "cancel_max"):
        v = _row_family(family, (n,), dtype, rng).ravel()
    elif family == "near_root":
        # around 1 (log's root), 0 (log1p's, expm1's) and log(e - 1) (safe_log's:
        # softplus(x) = 1): a relative offset of ~1e-9 or a walk of a few ulp
        root = rng.choice(np.array([1.0, 0.0, SAFE_LOG_ROOT]), n)
        rel = rng.standard_normal(n) * 1e-9
        v = np.where(root == 0.0, rel * 1e-3, root * (1.0 + rel))
        walk = rng.random(n) < 0.3
        steps = rng.integers(-6, 7, n)
        for i in np.flatnonzero(walk):
            w = dtype.type(root[i])
            for _ in range(abs(int(steps[i]))):
                w = np.nextafter(w, dtype.type(np.sign(steps[i])))
            v[i] = w
    else:
        v = rng.standard_normal(n) * 3.0
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(v, dtype=dtype)
    return _clip_domain(v, domain, dtype).reshape(shape)


def _row_family(family, shape, dtype, rng):
    """The row-structured adversarial families, as float64 arrays exact in ``dtype``."""
    fi = np.finfo(dtype)
    n = int(np.prod(shape)) if shape else 1
    if family == "large_mean":
        big = 1e5 if dtype == np.float32 else 1e12
        rows = shape[:-1] if len(shape) > 1 else ()
        sign = np.where(rng.random(rows + (1,) if rows else (1,)) < 0.5, -1.0, 1.0)
        v = sign * big + rng.standard_normal(shape if shape else (1,))
        return np.asarray(v, dtype=dtype).astype(np.float64).reshape(shape)
    if family == "subnormal":
        sub = float(fi.smallest_subnormal)
        k = rng.integers(-(2 ** 20), 2 ** 20, n) * (rng.random(n) < 0.8)
        return (k * sub).reshape(shape)
    # cancel_max: along the last axis, pairs +-max, +-max/2 placed at random positions,
    # the rest small (N(0, 3^2)): every row's exact sum is the sum of its small entries
    M = float(fi.max)
    v = rng.standard_normal(shape if shape else (1,)) * 3.0
    v2 = v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1)
    for row in v2:
        m = row.size
        k = min(4, m // 2)
        pos = rng.permutation(m)[:2 * k]
        for t in range(k):
            mag = M if t % 2 == 0 else M / 2
            row[pos[2 * t]] = mag
            row[pos[2 * t + 1]] = -mag
    return np.asarray(v2.reshape(shape), dtype=dtype).astype(np.float64)


def _probs(shape, family, dtype, rng, normalise):
    """Probability rows (normalised along the last axis when ``normalise``)."""
    if family == "probs_near_0_1":
        eps = float(np.finfo(dtype).eps)
        k = rng.integers(0, 6, shape)
        near1 = 1.0 - k * eps / 2
        near0 = k * float(np.finfo(dtype).tiny) + rng.integers(0, 4, shape) * eps
        p = np.where(rng.random(shape) < 0.5, near0, near1)
        if normalise and len(shape) >= 1:
            p = np.zeros(shape)
            idx = rng.integers(0, shape[-1], shape[:-1])
            np.put_along_axis(p, idx[..., None], 1.0, axis=-1)
            p = np.abs(p - rng.integers(0, 3, shape) * eps)
        return p.astype(dtype)
    p = rng.random(shape)
    if family == "zero_targets":
        p = np.where(rng.random(shape) < 0.5, 0.0, p)
    if normalise and len(shape) >= 1:
        s = p.sum(axis=-1, keepdims=True)
        s[s == 0] = 1.0
        p = p / s
        if family in ("normal", "zero_targets") and rng.random() < 0.5:
            p = np.zeros(shape)
            idx = rng.integers(0, shape[-1], shape[:-1])
            np.put_along_axis(p, idx[..., None], 1.0, axis=-1)
    return p.astype(dtype)


def _logits(shape, family, dtype, rng):
    if family == "margins":
        # row r: one logit MARGINS[r mod 12] above the largest of the others (N(0, 1))
        x = rng.standard_normal(shape)
        x2 = x.reshape(-1, shape[-1])
        for r, row in enumerate(x2):
            k = rng.integers(0, row.size)
            rest = np.delete(row, k)
            row[k] = (rest.max() if rest.size else 0.0) + MARGINS[r % len(MARGINS)]
        return x2.reshape(shape).astype(dtype)
    if family == "inf_logits":
        x = rng.standard_normal(shape) * 3.0
        u = rng.random(shape)
        x = np.where(u < 0.15, np.inf, np.where(u < 0.3, -np.inf, x))
        return x.astype(dtype)
    if family in ("large_mean", "subnormal", "cancel_max"):
        return _row_family(family, shape, dtype, rng).astype(dtype)
    if family == "dominant":
        x = rng.standard_normal(shape)
        idx = rng.integers(0, shape[-1], shape[:-1])
        np.put_along_axis(x, idx[..., None], rng.uniform(30, 80, shape[:-1])[..., None], axis=-1)
        return x.astype(dtype)
    if family == "large_spread":
        return (rng.standard_normal(shape) * (1e3 if dtype == np.float32 else 1e4)).astype(dtype)
    if family == "wide":
        return (np.sign(rng.standard_normal(shape)) * 10.0 ** rng.uniform(-30, 4, shape)).astype(dtype)
    return (rng.standard_normal(shape) * 3.0).astype(dtype)


def index_bound(spec, shapes):
    """Indices drawn for an op's "index" arguments lie in [0, bound): the smallest
    dimension of its first float argument's shape, valid for every axis (embedding's
    vocabulary, gather's and scatter_add's indexed axis)."""
    for arg, shape in zip(spec.args, shapes):
        if arg.role not in ("index", "condition") and len(shape):
            return max(1, min(shape))
    return 1


def describe(family) -> str:
    """The family's one-line description (``DESCRIPTIONS``)."""
    return DESCRIPTIONS[family]


def applies(spec, family) -> bool:
    """Whether ``family`` is one of the op's declared families."""
    return family in spec.families


def generate(spec, family, dtype, seed=0):
    """One deterministic draw of ``family`` for ``spec``: ``(arrays, params)``."""
    dtype = np.dtype(dtype)
    rng = _rng(spec, family, dtype, seed)
    shapes = _shapes(spec)
    arrays = []
    class_like = spec.kind == "loss" and any(a.role == "class_target" for a in spec.args)
    bound = index_bound(spec, shapes)
    for arg, shape in zip(spec.args, shapes):
        if arg.role == "condition":  # a bool selector, about half true
            arrays.append(rng.random(shape) < 0.5)
            continue
        if arg.role == "index":      # valid positions, with repeats (scatter-add sums them)
            arrays.append(rng.integers(0, bound, shape).astype(np.int64))
            continue
        if arg.role in ("target", "class_target") or arg.name == "probs":
            arrays.append(_probs(shape, family, dtype, rng, normalise=class_like))
        elif arg.name == "log_probs":
            z = _logits(shape, family if family != "probs_near_0_1" else "dominant", np.float64, rng)
            z = z - z.max(axis=-1, keepdims=True)
            lp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            arrays.append(np.minimum(lp, 0.0).astype(dtype))
        elif spec.kind in ("loss", "softmax") or spec.name == "logsumexp":
            if family in ("normal", "wide", "large_spread", "dominant", "margins",
                          "inf_logits", "large_mean", "subnormal", "cancel_max"):
                arrays.append(_logits(shape, family, dtype, rng))
            else:
                arrays.append(_values(family, shape, arg.domain, dtype, rng))
        elif arg.name == "running_var":
            arrays.append((rng.random(shape) * 4 + (0.0 if family == "normal" else 1e-3)).astype(dtype))
        else:
            arrays.append(_values(family, shape, arg.domain, dtype, rng))
    return arrays, dict(spec.param_defaults)
