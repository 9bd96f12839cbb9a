"""Search a box of inputs for a failing one: seeded, deterministic, bounded in time.

1. Sample: each element of each ``Range`` from a mixture of uniform over float ordinals
   (Herbie), log-uniform magnitudes, the box's ends, and special points (0, +-1, the
   dtype's exp overflow/underflow thresholds, sqrt(max), the graph's constants and their
   neighbours), all clipped into the box.
2. Bisect: between two samples where a *danger quantity* changes sign at an element (a
   divisor, the argument of log/sqrt/log1p, exp's argument minus its overflow threshold,
   the result of an add/sub), bisect the segment between them down to adjacent floats:
   that finds failure regions a few ulps wide that sampling never hits.
3. Climb: perturb the best candidates (a few elements at a time: scaled by powers of 2,
   moved by ulps, sent to the box's ends) and keep moves that raise the screen score.

Candidates are screened in float only (``evaluate.screen_run``); the caller confirms the
best ones exactly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..metrics import bits_error, ordinal
from .evaluate import screen_run

DANGER_INPUT = {"div": 1, "inv": 0, "log": 0, "sqrt": 0, "log1p": 0, "pow": 0,
                "safe_log": None}
DANGER_OUTPUT = ("add", "sub")
EXP_LIKE = ("exp", "expm1", "sinh", "cosh")


def special_points(dtype, graph):
    fi = np.finfo(dtype)
    lmax = float(np.log(fi.max))
    lsub = float(np.log(float(np.nextafter(dtype.type(0), dtype.type(1)))))
    ltiny = float(np.log(fi.tiny))
    pts = [0.0, 1.0, -1.0, lmax, -lmax, ltiny, lsub, float(np.sqrt(fi.max)),
           -float(np.sqrt(fi.max)), float(fi.tiny), float(fi.eps), 1.0 / float(fi.eps),
           float(fi.max), -float(fi.max)]
    for c in graph.constants.values():
        if c.dtype.kind == "f":
            for v in np.unique(c[np.isfinite(c)].astype(dtype))[:8]:
                pts += [float(v), float(-v)]
                up = down = dtype.type(v)
                for _ in range(3):
                    up, down = np.nextafter(up, dtype.type(np.inf)), np.nextafter(down, dtype.type(-np.inf))
                    pts += [float(up), float(down)]
    return np.array(pts, dtype=np.float64)


def _from_ordinals(o, dtype):
    ity = np.int32 if dtype == np.float32 else np.int64
    o = np.asarray(o, dtype=np.int64)
    bits = np.where(o < 0, (-o) | np.int64(np.iinfo(ity).min), o).astype(ity)
    return bits.view(dtype)


class Sampler:
    def __init__(self, ranges, graph, rng):
        self.ranges, self.rng = ranges, rng
        self.specials = {}
        for r in ranges:
            if r is not None:
                dt = r.np_dtype
                lo, hi = r.bounds()
                pts = special_points(dt, graph)
                pts = pts[(pts >= float(lo)) & (pts <= float(hi))]
                self.specials[id(r)] = np.concatenate([pts, [float(lo), float(hi)]]).astype(dt)

    def draw(self, r):
        dt, rng = r.np_dtype, self.rng
        lo, hi = r.bounds()
        n = int(np.prod(r.shape)) if r.shape else 1
        olo, ohi = int(ordinal(lo, dt)), int(ordinal(hi, dt))
        uni_ord = _from_ordinals(rng.integers(olo, ohi + 1, n, dtype=np.int64), dt)
        flo, fhi = float(lo), float(hi)
        with np.errstate(all="ignore"):
            span = np.clip(fhi - flo, 0, np.finfo(np.float64).max)
            uni = (flo + rng.random(n) * span) if np.isfinite(span) else uni_ord.astype(np.float64)
            top = np.log2(max(abs(flo), abs(fhi), 1e-300)) if np.isfinite(max(abs(flo), abs(fhi))) \
                else np.log2(float(np.finfo(dt).max))
            bottom = np.log2(float(np.finfo(dt).tiny))
            mags = 2.0 ** rng.uniform(bottom, max(top, bottom), n)
            sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            logu = mags * sign
        sp = self.specials[id(r)]
        spec = sp[rng.integers(0, sp.size, n)] if sp.size else uni_ord
        choice = rng.random(n)
        v = np.where(choice < 0.3, uni_ord.astype(np.float64),
                     np.where(choice < 0.55, logu, np.where(choice < 0.8, spec, uni)))
        return r.clip(v.reshape(r.shape))

    def candidate(self, fixed):
        return [a if r is None else self.draw(r) for a, r in zip(fixed, self.ranges)]


# ------------------------------------------------------------------------ screen ----
def screen_score(graph, inputs, dtype):
    """(max score over output elements, per-element scores, float run): bits of error of
    the program against its wider-precision evaluation, 64 for NaN/inf where the wider
    run is finite (see ``evaluate.screen_run``)."""
    with np.errstate(all="ignore"):
        low, high, low32 = screen_run(graph, inputs, dtype)
        out = np.asarray(low.outputs if not isinstance(low.outputs, tuple) else low.outputs[0])
        ref = np.asarray(high.outputs if not isinstance(high.outputs, tuple) else high.outputs[0])
        if dtype == np.float32:
            want = ref.astype(np.float32)
            s = np.asarray(bits_error(out, want, dtype), dtype=np.float64)
            bad = ~np.isfinite(out) & np.isfinite(ref)
            s = np.where(bad | (np.isnan(out) & ~np.isnan(ref)), 64.0, s)
            s = np.where(np.isnan(ref) & np.isnan(out), 64.0, s)   # a domain error
        else:
            o32 = np.asarray(low32.outputs if not isinstance(low32.outputs, tuple) else low32.outputs[0])
            est = np.asarray(bits_error(o32, out.astype(np.float32), np.float32), dtype=np.float64)
            est = np.where(np.isfinite(o32) & np.isfinite(out), est - 2.0, 0.0)
            s = np.where(~np.isfinite(out), 64.0, np.maximum(est, 0.0))
    s = np.atleast_1d(s)
    return float(s.max()) if s.size else 0.0, s, low


def danger_values(run, graph):
    """Arrays whose sign change marks a danger zone, keyed by (node index, what)."""
    out = {}
    for node in graph.nodes:
        k = DANGER_INPUT.get(node.op)
        if k is not None:
            v = np.asarray(run.values[node.inputs[k]], dtype=np.float64)
            out[(node.index, "in")] = v - (-1.0 if node.op == "log1p" else 0.0)
        if node.op in DANGER_OUTPUT:
            out[(node.index, "out")] = np.asarray(run.values[node.output], dtype=np.float64)
        if node.op in EXP_LIKE:
            v = np.asarray(run.values[node.inputs[0]], dtype=np.float64)
            lmax = float(np.log(np.finfo(run.dtype).max))
            out[(node.index, "hi")] = v - lmax
            out[(node.index, "lo")] = v + lmax
    return out


@dataclass
class Candidate:
    inputs: list
    score: float
    scores: np.ndarray = field(repr=False, default=None)


@dataclass
class Search:
    graph: object
    fixed: list
    ranges: list
    dtype: np.dtype
    threshold: float
    seed: int
    deadline: float
    pool: list = field(default_factory=list)
    evaluations: int = 0
    truncated: bool = False

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        self.sampler = Sampler(self.ranges, self.graph, self.rng)

    def time_left(self):
        return self.deadline - time.perf_counter()

    def score(self, inputs):
        self.evaluations += 1
        s, per, run = screen_score(self.graph, inputs, self.dtype)
        return Candidate(inputs, s, per), run

    # ---- phases ----------------------------------------------------------------
    def sample(self, until, count):
        """``count`` samples (fewer only if ``until`` passes first: the time budget is a
        cap, the counts make the search deterministic for a seed)."""
        runs = []
        while len(runs) < count and (time.perf_counter() < until or not runs):
            c, run = self.score(self.sampler.candidate(self.fixed))
            self.pool.append(c)
            runs.append((c, danger_values(run, self.graph)))
        self.truncated |= len(runs) < count
        return runs

    def _interp(self, a, b, t):
        with np.errstate(all="ignore"):   # inf ends of an unbounded box
            return [x if r is None else r.clip(np.nan_to_num(
                        x.astype(np.float64) * (1 - t) + y.astype(np.float64) * t,
                        nan=0.0, posinf=np.inf, neginf=-np.inf))
                    for x, y, r in zip(a.inputs, b.inputs, self.ranges)]

    def bisect(self, runs, until, max_pairs=48):
        pairs = 0
        for (a, da), (b, db) in zip(runs, runs[1:]):
            if pairs >= max_pairs:
                break
            if time.perf_counter() > until:
                self.truncated = True
                break
            for key, qa in da.items():
                qb = db.get(key)
                if qb is None or qa.shape != qb.shape:
                    continue
                with np.errstate(invalid="ignore"):
                    flip = np.flatnonzero((np.sign(qa) * np.sign(qb)).ravel() < 0)
                if not flip.size:
                    continue
                pairs += 1
                self._bisect_one(a, b, key, int(flip[0]))
                break

    def _bisect_one(self, a, b, key, elem):
        lo, hi = 0.0, 1.0
        sa = None
        xlo = xhi = None
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            x = self._interp(a, b, mid)
            with np.errstate(all="ignore"):
                run = self.graph.run(*x, backend="f32" if self.dtype == np.float32 else "f64")
            q = danger_values(run, self.graph).get(key)
            if q is None:
                return
            s = np.sign(q.ravel()[elem])
            if sa is None:
                qa = danger_values(self.graph.run(*a.inputs, backend="f32" if self.dtype == np.float32 else "f64"), self.graph)[key]
                sa = np.sign(qa.ravel()[elem])
            if s == 0 or not np.isfinite(s):
                xlo = xhi = x
                break
            if s == sa:
                lo, xlo = mid, x
            else:
                hi, xhi = mid, x
            if xlo is not None and xhi is not None and all(
                    np.array_equal(u, v) for u, v in zip(xlo, xhi)):
                break
        for x in (xlo, xhi):
            if x is not None:
                c, _ = self.score(x)
                self.pool.append(c)

    def climb(self, until, top=4, steps=400):
        best = sorted(self.pool, key=lambda c: -c.score)[:top]
        for c in best:
            cur = c
            for _ in range(steps // max(top, 1)):
                if time.perf_counter() > until:
                    self.truncated = True
                    return
                trial = self._mutate(cur.inputs)
                t, _ = self.score(trial)
                if t.score > cur.score:
                    cur = t
                    self.pool.append(t)

    def _mutate(self, inputs):
        out = [a.copy() if a is not None else None for a in inputs]
        rng = self.rng
        choices = [i for i, r in enumerate(self.ranges) if r is not None and out[i].size]
        if not choices:
            return out
        i = choices[rng.integers(0, len(choices))]
        r, a = self.ranges[i], out[i].reshape(-1)
        k = rng.integers(0, a.size, max(1, a.size // 64))
        move = rng.integers(0, 4)
        dt = r.np_dtype
        with np.errstate(all="ignore"):
            if move == 0:
                a[k] = a[k] * dt.type(2.0) ** rng.integers(-8, 9, k.size).astype(dt)
            elif move == 1:
                o = ordinal(a[k], dt) + rng.integers(-4, 5, k.size)
                a[k] = _from_ordinals(o, dt)
            elif move == 2:
                lo, hi = r.bounds()
                a[k] = np.where(rng.random(k.size) < 0.5, lo, hi)
            else:
                a[k] = self.sampler.draw(r).reshape(-1)[: k.size]
        out[i] = r.clip(a.reshape(r.shape))
        return out

    def best(self, n):
        """Up to ``n`` distinct candidates, worst-screened first."""
        seen, out = set(), []
        for c in sorted(self.pool, key=lambda c: -c.score):
            key = b"".join(np.ascontiguousarray(a).tobytes() for a in c.inputs)
            if key in seen:
                continue
            seen.add(key)
            out.append(c)
            if len(out) >= n:
                break
        return out


def trivial_values(r):
    """The box's simplest values, simplest first: 0, 1, -1, 0.5, 2, then its midpoint
    rounded to two digits, then its low end."""
    lo, hi = (float(v) for v in r.bounds())
    mid = 0.5 * (lo + hi) if np.isfinite(lo + hi) else 0.0
    out = []
    for v in (0.0, 1.0, -1.0, 0.5, 2.0, float(f"{mid:.2g}"), mid, lo):
        if lo <= v <= hi and r.np_dtype.type(v) not in out:
            out.append(r.np_dtype.type(v))
    return out


def trivial_value(r):
    return trivial_values(r)[0]


def quiet_trivials(graph, fixed, ranges, dtype, threshold):
    """Per Range, the simplest value whose all-trivial input the screen finds clean (so
    that shrinking does not plant failures of its own), else the simplest value."""
    choice = [None if r is None else trivial_values(r) for r in ranges]
    picked = [None if c is None else c[0] for c in choice]
    for i, c in enumerate(choice):
        if c is None:
            continue
        for v in c:
            x = [a if r is None else np.full(r.shape, v if j == i else picked[j], r.np_dtype)
                 for j, (a, r) in enumerate(zip(fixed, ranges))]
            if screen_score(graph, x, dtype)[0] <= threshold:
                picked[i] = v
                break
    return picked


def shrink(graph, inputs, ranges, dtype, still_fails, until, trivials=None, tries=600):
    """Fewest non-trivial elements: set blocks of elements to the box's simplest value
    while ``still_fails(inputs)`` holds (delta debugging on each Range input), then
    round the survivors to fewer significant digits where the failure survives.  At most
    ``tries`` calls of ``still_fails`` (and none after ``until``)."""
    cur = [a.copy() if a is not None else None for a in inputs]
    budget = [tries]
    inner = still_fails

    def still_fails(x):
        budget[0] -= 1
        return budget[0] >= 0 and inner(x)
    for i, r in enumerate(ranges):
        if r is None or not cur[i].size:
            continue
        triv = trivial_value(r) if trivials is None else trivials[i]
        flat = cur[i].reshape(-1)
        block = max(1, flat.size // 2)
        while block >= 1 and time.perf_counter() < until:
            start = 0
            while start < flat.size and time.perf_counter() < until:
                seg = slice(start, start + block)
                if np.all(flat[seg] == triv):
                    start += block
                    continue
                saved = flat[seg].copy()
                flat[seg] = triv
                if not still_fails(cur):
                    flat[seg] = saved
                start += block
            block //= 2
        for j in np.flatnonzero(flat != triv):
            if time.perf_counter() > until:
                break
            v = flat[j]
            for digits in (1, 2, 3, 6):
                w = r.clip(np.array(float(f"{float(v):.{digits}g}")))
                if w == v:
                    break
                flat[j] = w
                if still_fails(cur):
                    break
                flat[j] = v
    return cur
