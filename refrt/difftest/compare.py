"""One case: run the backend on each input set, compare with the oracle element by
element, classify, shrink the worst witness of each kind, write its reproducer, check
the framework-level fix on it, and compare the VJP through the framework's autograd."""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

import numpy as np

from .. import backends
from ..accuracy import MEASURE_MAX_PREC
from ..errors import RefrtError
from ..metrics import ulp_distance
from ..registry import OPS
from ..rounding import format_of
from . import classes as C
from .cases import apply_variant, draws, storage

VJP_PREC = 256
_ORACLE: "OrderedDict[str, np.ndarray]" = OrderedDict()
_ORACLE_MAX = 4096


def _digest(op, dtype, params, arrays, tag=""):
    h = hashlib.sha1(f"{tag}/{op}/{dtype}/{json.dumps(params, sort_keys=True, default=repr)}".encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def oracle(op, arrays, params, dtype):
    """Correctly rounded exact value in ``dtype`` (float64 storage; NaN: undefined or
    undecided), memoised on the inputs' bytes so backends sharing inputs share it."""
    key = _digest(op, dtype, params, arrays)
    hit = _ORACLE.get(key)
    if hit is not None:
        _ORACLE.move_to_end(key)
        return hit
    from ..oracle import evaluate
    with np.errstate(all="ignore"):
        want = np.asarray(evaluate(op, *arrays, dtype=dtype, on_undecided="nan",
                                   max_prec=MEASURE_MAX_PREC, **params)).astype(np.float64)
    _ORACLE[key] = want
    if len(_ORACLE) > _ORACLE_MAX:
        _ORACLE.popitem(last=False)
    return want


def exact_vjp(op, arrays, params, g, dtype):
    """The mp VJP rule at ``VJP_PREC`` bits on the exact float inputs, rounded once to
    ``dtype`` (a high-precision reference, not a certified enclosure)."""
    key = _digest(op, dtype, params, list(arrays) + [np.asarray(g)], "vjp")
    hit = _ORACLE.get(key)
    if hit is not None:
        return hit
    from ..autodiff import vjp_op
    from ..rounding import round_array
    wide = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    res = vjp_op(op, wide, params, None, np.asarray(g, dtype=np.float64), "mp", prec=VJP_PREC)
    out = [None if r is None else round_array(r, dtype).astype(np.float64) for r in res]
    _ORACLE[key] = out
    return out


def call_params(adapter, entry, params):
    return {k: params[k] for k in entry.params if k in params}


def effective_params(adapter, entry, params, semantics):
    """The params the oracle computes with: the registry's (spec) or the framework's
    implicit defaults (native)."""
    p = dict(params)
    if semantics == "native":
        p.update(entry.native)
    return p


def run_forward(adapter, entry, arrays, params, dtype, semantics):
    fn = entry.spec if (semantics == "spec" and entry.spec is not None) else entry.fn
    ins = [adapter.to_backend(a, dtype) for a in arrays]
    with np.errstate(all="ignore"):
        out = fn(*ins, **call_params(adapter, entry, params))
    got = adapter.to_numpy(out).astype(np.float64)
    return got


def _store_round(got, dtype):
    """A backend result stored in the case's dtype (a wider result is rounded, as a user
    storing it would)."""
    st = storage(dtype)
    with np.errstate(all="ignore"):
        g = got.astype(st)
        if dtype == "bfloat16":
            import ml_dtypes
            g = g.astype(ml_dtypes.bfloat16).astype(np.float32)
    return g.astype(np.float64)


def compare(got, want, dtype, arrays):
    ulps, bits = C.errors(got, want, dtype, arrays)
    cls = C.classify(got, want, dtype, arrays, bits)
    return ulps, bits, cls


# --------------------------------------------------------------------- shrinking
def _candidates(spec, arrays, params, flat, out_shape):
    """Smaller input sets that should still show the element ``flat`` of the output."""
    x = arrays[0]
    idx = np.unravel_index(flat, out_shape) if out_shape else ()
    same = [a.shape == tuple(out_shape) for a in arrays]
    if spec.kind in ("unary", "binary") and all(same):
        yield [a.reshape(-1)[flat:flat + 1] for a in arrays], params
        return
    axis = params.get("axis")
    if spec.kind in ("softmax", "reduction") and x.ndim == 2 and axis is not None and len(arrays) == 1:
        ax = axis % 2
        if spec.kind == "softmax":
            r = idx[1 - ax]
        else:
            r = idx[0] if out_shape else 0
        yield [x[r:r + 1] if ax == 1 else x[:, r:r + 1]], params
        return
    if spec.name == "layer_norm" and x.ndim == 2:
        yield [x[idx[0]:idx[0] + 1]] + list(arrays[1:]), params
        return
    if spec.name == "matmul" and x.ndim == 2:
        yield [x[idx[0]:idx[0] + 1], arrays[1][:, idx[1]:idx[1] + 1]], params
        return
    if spec.name == "linear" and x.ndim == 2:
        i, j = idx
        yield [x[i:i + 1], arrays[1][j:j + 1], arrays[2][j:j + 1]], params
        return
    if spec.kind == "loss" and x.ndim >= 1 and x.shape[0] > 1:
        rows = x.shape[0]
        for r in range(rows):
            yield [a[r:r + 1] if a.ndim and a.shape[0] == rows else a for a in arrays], params
        if all(a.shape == x.shape for a in arrays) and x.ndim == 2:
            for r in range(rows):
                for c in range(x.shape[1]):
                    yield [a[r:r + 1, c:c + 1] for a in arrays], params


def shrink(adapter, entry, spec, arrays, params, eff, dtype, semantics, flat, out_shape, kind):
    """The smallest candidate input on which the backend still shows ``kind`` (the worst
    such), or the whole input.  Returns (arrays, got, want, bits, flat index)."""
    best = None
    for cand, p in _candidates(spec, arrays, params, flat, out_shape):
        try:
            got = _store_round(run_forward(adapter, entry, cand, p, dtype, semantics), dtype)
            want = oracle(spec.name, cand, effective_params(adapter, entry, p, semantics), dtype)
            got = got.reshape(want.shape)
        except Exception:
            continue
        _, bits, cls = compare(got, want, dtype, cand)
        hit = np.flatnonzero(cls.reshape(-1) == kind)
        if hit.size:
            i = int(hit[np.argmax(bits.reshape(-1)[hit])])
            b = float(bits.reshape(-1)[i])
            size = sum(a.size for a in cand)
            if best is None or (size, -b) < (best[0], -best[1]):
                best = (size, b, cand, got, want, i)
    return best


# ------------------------------------------------------------------- reproducers
def reproducer(adapter, entry, spec, arrays, params, dtype, semantics, got, want, grad=None):
    code = entry.spec_code if (semantics == "spec" and entry.spec is not None) else entry.code
    p = call_params(adapter, entry, params)
    call = code.format(**{k: repr(v) for k, v in p.items()})
    lines = [adapter.header] + [src for name, src in adapter.helpers.items() if f"{name}(" in call]
    for arg, a in zip(spec.args, arrays):
        lines.append(f"{arg.name} = {adapter.literal(a, dtype)}")
    exact = f"# exact value, correctly rounded to {dtype} (refrt.oracle): {_fmt(want)}"
    if grad is None:
        lines += [f"print({call})", f"# got:  {_fmt(got)}", exact]
        return "\n".join(lines)
    wrt, g = grad
    if adapter.name.startswith("torch"):
        for i in wrt:
            lines.append(f"{spec.args[i].name}.requires_grad_(True)")
        lines.append(f"out = {call}")
        lines.append(f"out.backward({adapter.literal(g, dtype)}.reshape(out.shape))")
        lines += [f"print({spec.args[i].name}.grad)" for i in wrt]
    elif adapter.name == "jax":
        names = ", ".join(spec.args[i].name for i in wrt)
        lines.append(f"out, back = jax.vjp(lambda {names}: {call}, {names})")
        lines.append(f"print(back({adapter.literal(g, dtype)}.reshape(out.shape)))")
    else:
        lines.append(f"print(refrt.autodiff.vjp_op({spec.name!r}, [{', '.join(spec.arg_names)}], "
                     f"{params!r}, None, {adapter.literal(g, dtype)}))")
    lines += [f"# got:  {_fmt(got)}", exact.replace("exact value", "exact gradient")]
    return "\n".join(lines)


def _fmt(a):
    a = np.asarray(a, dtype=np.float64).ravel()
    s = ", ".join(repr(float(v)) for v in a[:12])
    return f"[{s}{', ...' if a.size > 12 else ''}]"


def _verify_fix(adapter, entry, spec, arrays, params, eff, dtype, kind):
    for fix in entry.fixes:
        try:
            ins = [adapter.to_backend(a, dtype) for a in arrays]
            with np.errstate(all="ignore"):
                out = fix.fn(*ins, **call_params(adapter, entry, params))
            got = _store_round(adapter.to_numpy(out).astype(np.float64), dtype)
            want = oracle(spec.name, arrays, eff, dtype)
            got = got.reshape(want.shape)
        except Exception:
            continue
        _, bits, cls = compare(got, want, dtype, arrays)
        code = fix.code.format(**{k: repr(v) for k, v in call_params(adapter, entry, params).items()})
        ok = not any(cls.ravel())
        return {"code": code, "bits": float(bits.max()) if bits.size else 0.0, "verified": ok}
    return None


def _by_design(entry, kind, arrays, params, phase, want=None, dtype="float64"):
    from .adapters._base import subnormal_involved
    for b in entry.by_design:
        if kind not in b.kinds or b.phase not in (phase, "both"):
            continue
        if b.ftz:
            if subnormal_involved(arrays, want if want is not None else [], dtype):
                return b.note
        elif b.where is None or b.where(arrays, params):
            return b.note
    return None


# ----------------------------------------------------------------- one case, all draws
def _grad_wrt(spec, arrays):
    return [i for i, (a, x) in enumerate(zip(spec.args, arrays))
            if a.differentiable and a.role == "float" and x.dtype.kind == "f"]


# A framework's VJP of a cancelling kind (reductions, softmax, norms, losses) is compared
# with an absolute floor of 16 eps * max|exact|: its formulas are not refrt's stable ones,
# and components far below the terms they cancel from are ill-conditioned (refrt's own
# kernels are held to the registry's condition-number budgets instead, autodiff.vjp_error).
CANCELLING_FLOOR = 16.0


def _grad_errors(spec, got, want, g, dtype, arrays=(), terms=None):
    """ulps of a cotangent under the registry's VJP model: components within an absolute
    floor of 16 eps * max|exact| are accepted for ops whose VJP cancels by construction
    (reductions, softmax, norms, losses); elementwise VJPs are compared strictly.
    ``terms`` (this input's entry of the op's ``vjp_terms``): a component a - b whose
    error is within the op's VJP budget times eps (|a| + |b|) is accepted too, as for
    refrt's own kernels: that much error is the problem's conditioning (the inputs'
    rounding alone moves the exact value by it), not a fault of the backend."""
    from ..autodiff import ELEMENTWISE_KINDS, vjp_tolerance
    d = ulp_distance(got, want, dtype)
    d = np.where(np.isnan(want) | C.pole_sign_only(got, want, arrays), 0.0, d)
    if terms is not None and d.size:
        # the registry budgets float32 and float64; narrower formats take float32's
        # (the budget is in units of the format's own eps)
        name = format_of(dtype).name
        ulps, _ = vjp_tolerance(spec, name if name in ("float32", "float64") else "float32")
        eps = 2.0 ** (1 - format_of(dtype).prec)
        t = np.broadcast_to(np.asarray(terms, dtype=np.float64), d.shape)
        with np.errstate(all="ignore"):
            ok = (np.isfinite(want) & np.isfinite(got) & np.isfinite(t)
                  & (np.abs(got - want) <= ulps * eps * t))
        d = np.where(ok, 0.0, d)
    if spec.kind not in ELEMENTWISE_KINDS and d.size:
        eps = 2.0 ** (1 - format_of(dtype).prec)
        fin = np.isfinite(want)
        scale = float(np.max(np.abs(want[fin]))) if fin.any() else 0.0
        if spec.kind == "softmax":
            gf = np.abs(np.asarray(g, np.float64))
            scale = max(scale, float(gf[np.isfinite(gf)].max()) if np.isfinite(gf).any() else 0.0)
        with np.errstate(all="ignore"):
            ok = fin & np.isfinite(got) & (np.abs(got - want) <= CANCELLING_FLOOR * eps * scale)
        d = np.where(ok, 0.0, d)
    return d


def _budget_terms(spec, arrays, params, g, dtype):
    """The op's condition-number terms (registry ``vjp_terms``) on the case's inputs, one
    entry per input (None where the op declares none or they cannot be formed)."""
    from ..autodiff import vjp_terms
    if spec.vjp_terms is None:
        return (None,) * len(spec.args)
    try:
        cast = [np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
                for a in arrays]
        # the budgets read validated params (pairs, resolved strides, non-negative axes),
        # as the kernels do: the raw campaign params raised there and left no budget
        try:
            from .._prepare import prepare
            cast, params = prepare(spec, cast, params)[:2]
        except Exception:
            pass
        with np.errstate(all="ignore"):
            return vjp_terms(spec, cast, params, np.asarray(g, dtype))
    except Exception:                        # a budget is an allowance, never a failure
        return (None,) * len(spec.args)


class Stats:
    def __init__(self):
        self.n, self.max_bits, self.max_ulp = 0, 0.0, 0.0
        self.classes = {}
        self.worst = {}         # kind -> (bits, payload)
        self.xla = {}
        self.points = []

    def add(self, ulps, bits, cls, xla=None):
        self.n += int(bits.size)
        if bits.size:
            self.max_bits = max(self.max_bits, float(bits.max()))
            self.max_ulp = max(self.max_ulp, float(ulps.max()))
        for k in C.KINDS:
            c = int(np.count_nonzero(cls == k))
            if c:
                self.classes[k] = self.classes.get(k, 0) + c
        if xla is not None:
            for name in C.XLA_CLASSES:
                m = xla == name
                if m.any():
                    self.xla[name] = max(self.xla.get(name, 0.0), float(ulps[m].max()))

    def to_dict(self):
        return {"n": self.n, "classes": self.classes, "max_bits": round(self.max_bits, 3),
                "max_ulp": self.max_ulp}


def run_case(case, adapter=None):
    """The record of one case (a JSON-serialisable dict)."""
    import time
    from . import adapters as A
    from .. import __version__
    t0 = time.perf_counter()
    backends.load()
    spec = OPS[case.op]
    adapter = adapter or A.load(case.backend)
    entry = adapter.entries[case.op]
    rec = dict(case.to_dict(), key=case.key, schema=1, refrt_version=__version__,
               backend_version=adapter.version(), conventions=entry.conventions,
               error=None, findings=[])
    fwd, grad = Stats(), Stats()
    grad_ran = False
    worst_fwd, worst_grad = {}, {}
    params0 = None
    for arrays, params in draws(spec, case.family, case.dtype, case.seed):
        arrays, params = apply_variant(spec, arrays, params, case.variant)
        eff = effective_params(adapter, entry, params, case.semantics)
        params = eff            # the framework gets the same explicit values as the oracle
        params0 = params0 or eff
        try:
            want = oracle(spec.name, arrays, eff, case.dtype)
        except RefrtError as err:
            # a variant that does not apply to this draw (axis=0 of a special case whose
            # axis 0 has extent 1 makes its indices out of range): the op refuses the
            # input with its own error, so there is nothing to compare
            if case.variant:
                continue
            rec["error"] = f"oracle: {type(err).__name__}: {err}"[:300]
            continue
        except Exception as err:     # the inputs/params are invalid for the op itself
            rec["error"] = f"oracle: {type(err).__name__}: {err}"[:300]
            continue
        try:
            got = _store_round(run_forward(adapter, entry, arrays, params, case.dtype, case.semantics),
                               case.dtype).reshape(want.shape)
        except Exception as err:
            rec["error"] = f"{type(err).__name__}: {err}"[:300]
            continue
        ulps, bits, cls = compare(got, want, case.dtype, arrays)
        fwd.add(ulps, bits, cls, C.xla_class(arrays, want.shape, case.dtype))
        _points(fwd, spec, arrays, bits, want.shape)
        for k in set(cls.ravel()) - {""}:
            hit = np.flatnonzero(cls.ravel() == k)
            i = int(hit[np.argmax(bits.ravel()[hit])])
            b = float(bits.ravel()[i])
            if k not in worst_fwd or b > worst_fwd[k][0]:
                worst_fwd[k] = (b, arrays, params, eff, i, want.shape, got, want, int(hit.size))
        # gradients through the framework's autograd
        wrt = _grad_wrt(spec, arrays)
        if (adapter.vjp is None or not entry.grad or spec.vjp is None or spec.name not in backends.MP_VJP
                or not wrt or want.size == 0 or not np.isfinite(got).all()):
            continue
        from ..autodiff import cotangent
        g = _store_round(cotangent(spec.name, want.shape, np.float64, f"{case.family}/{case.seed}"),
                         case.dtype).reshape(want.shape)
        try:
            exact = exact_vjp(spec.name, arrays, eff, g, case.dtype)
            fn = entry.spec if (case.semantics == "spec" and entry.spec is not None) else entry.fn
            gots = adapter.vjp(entry, spec.name, arrays, call_params(adapter, entry, params), g, wrt,
                               case.dtype, fn)
        except Exception as err:
            rec.setdefault("grad_error", f"{type(err).__name__}: {err}"[:300])
            continue
        grad_ran = True
        terms = _budget_terms(spec, arrays, eff, g, case.dtype)
        for i, gi in zip(wrt, gots):
            w = exact[i]
            if w is None:
                continue
            gi = _store_round(np.asarray(gi, np.float64), case.dtype).reshape(w.shape)
            d = _grad_errors(spec, gi, w, g, case.dtype, arrays, terms[i])
            b = np.log2(1.0 + d)
            cls_g = C.classify(gi, w, case.dtype, arrays, b)
            grad.add(d, b, cls_g)
            for k in set(cls_g.ravel()) - {""}:
                hit = np.flatnonzero(cls_g.ravel() == k)
                j = int(hit[np.argmax(b.ravel()[hit])])
                bb = float(b.ravel()[j])
                if k not in worst_grad or bb > worst_grad[k][0]:
                    worst_grad[k] = (bb, arrays, params, eff, j, w.shape, gi, w, int(hit.size), i, g, wrt)
    rec["params"] = _jsonable(params0 or {})
    rec.update(fwd.to_dict())
    rec["xla"] = fwd.xla
    rec["points"] = fwd.points[:64]
    rec["grad"] = grad.to_dict() if grad_ran else None
    for k, (b, arrays, params, eff, i, shape, got, want, count) in sorted(worst_fwd.items()):
        rec["findings"].append(_finding(adapter, entry, spec, case, k, b, count, arrays, params,
                                        eff, i, shape, got, want))
    for k, item in sorted(worst_grad.items()):
        b, arrays, params, eff, j, shape, gi, w, count, argi, g, wrt = item
        rec["findings"].append(_grad_finding(adapter, entry, spec, case, k, b, count, arrays, params,
                                             eff, j, gi, w, argi, g, wrt))
    rec["elapsed_s"] = round(time.perf_counter() - t0, 4)
    return rec


def _points(stats, spec, arrays, bits, shape):
    """Herbie's plot data: (log2 |input|, bits) for some elements of this draw."""
    x = np.asarray(arrays[0], np.float64)
    if len(stats.points) >= 64 or not bits.size:
        return
    with np.errstate(divide="ignore"):
        if x.shape == tuple(shape):
            mags, bb = np.abs(x).ravel(), bits.ravel()
        else:
            mags, bb = np.array([np.max(np.abs(x)) if x.size else 0.0]), np.array([bits.max()])
        step = max(1, mags.size // 16)
        for m, b in zip(mags[::step], bb[::step]):
            if np.isfinite(m) and m > 0:
                stats.points.append([round(float(np.log2(m)), 3), round(float(b), 3)])


def _jsonable(params):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def _arrays_dict(spec, arrays):
    from ._base_json import array_json
    return {a.name: array_json(x) for a, x in zip(spec.args, arrays)}


def _finding(adapter, entry, spec, case, kind, bits, count, arrays, params, eff, i, shape, got, want):
    small = shrink(adapter, entry, spec, arrays, params, eff, case.dtype, case.semantics, i, shape, kind)
    shrunk = small is not None
    if shrunk:
        _, bits_s, arrays, got, want, i = small
        bits = max(bits, bits_s) if False else bits_s
    f = {"phase": "forward", "kind": kind, "count": count, "bits": round(bits, 3),
         "shrunk": shrunk, "input": _arrays_dict(spec, arrays), "params": _jsonable(eff),
         "element": int(i), "got": float(got.ravel()[i]), "want": float(want.ravel()[i]),
         "reproducer": reproducer(adapter, entry, spec, arrays, params, case.dtype, case.semantics, got, want),
         "by_design": _by_design(entry, kind, arrays, params, "forward", want, case.dtype)
         if case.semantics == "native" else None,
         "fix": _verify_fix(adapter, entry, spec, arrays, params, eff, case.dtype, kind)}
    return f


def _grad_of(adapter, entry, spec, arrays, params, eff, g, wrt, argi, dtype, semantics):
    fn = entry.spec if (semantics == "spec" and entry.spec is not None) else entry.fn
    gots = adapter.vjp(entry, spec.name, arrays, call_params(adapter, entry, params), g, wrt, dtype, fn)
    w = exact_vjp(spec.name, arrays, eff, g, dtype)[argi]
    gi = _store_round(np.asarray(gots[wrt.index(argi)], np.float64), dtype).reshape(w.shape)
    d = _grad_errors(spec, gi, w, g, dtype, arrays)
    b = np.log2(1.0 + d)
    return gi, w, b, C.classify(gi, w, dtype, arrays, b)


def shrink_grad(adapter, entry, spec, arrays, params, eff, g, wrt, argi, j, kind, dtype, semantics):
    """One element (elementwise ops: its inputs and cotangent; losses: the one input
    element, same cotangent) that still shows ``kind`` in the gradient, or None."""
    shape = arrays[argi].shape
    if not all(a.shape == shape for a in arrays):
        return None
    if spec.kind in ("unary", "binary") and np.shape(g) == shape:
        cand, gc = [a.reshape(-1)[j:j + 1] for a in arrays], np.asarray(g).reshape(-1)[j:j + 1]
    elif np.ndim(g) == 0 and spec.kind == "loss" and len(shape) == 2:
        r, c = np.unravel_index(j, shape)
        cand, gc = [a[r:r + 1, c:c + 1] for a in arrays], g
    else:
        return None
    try:
        gi, w, b, cls = _grad_of(adapter, entry, spec, cand, params, eff, gc, wrt, argi, dtype, semantics)
    except Exception:
        return None
    if not (cls.reshape(-1) == kind).any():
        return None
    return cand, gc, gi, w, float(b.max())


def _grad_finding(adapter, entry, spec, case, kind, bits, count, arrays, params, eff, j, gi, w, argi, g, wrt):
    small = shrink_grad(adapter, entry, spec, arrays, params, eff, g, wrt, argi, j, kind, case.dtype,
                        case.semantics)
    if small is not None:
        arrays, g, gi, w, bits = small
        j = 0
    return {"phase": "gradient", "kind": kind, "count": count, "bits": round(bits, 3), "shrunk": small is not None,
            "wrt": spec.args[argi].name, "input": _arrays_dict(spec, arrays), "params": _jsonable(eff),
            "element": int(j), "got": float(gi.ravel()[j]), "want": float(w.ravel()[j]),
            "cotangent": np.asarray(g, np.float64).ravel().tolist()[:64],
            "reproducer": reproducer(adapter, entry, spec, arrays, params, case.dtype, case.semantics,
                                     gi, w, grad=(wrt, g)),
            "by_design": _by_design(entry, kind, arrays, params, "gradient", w, case.dtype)
            if case.semantics == "native" else None,
            "fix": None}
