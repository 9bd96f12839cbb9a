"""Cases: what one record of a campaign is, its content-hash key, and its inputs.

A case is (backend, op, dtype, family, seed, variant, semantics).  Its key is a SHA-256
of those fields, the case schema and refrt's version, so a store can be resumed on any
machine and by any engine (serial, process pool, Dask) without duplicating a case.

Inputs come from the registry: every family an op declares (``refrt.families``), the
op's special cases (family ``special``), and the campaign-only families below (named
``campaign_*``; they stand in until the registry declares these adversarial families
per op, and are then dropped where the registry has them).  Variants run an op the ways
a framework is called: each axis (``axis=0``, ``axis=-1``, whole-array ``axis=None``)
and class-index targets (``target=ids``) beside probability rows.
"""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from .. import families as fam
from ..registry import OPS

SCHEMA = 1
DTYPES = ("float16", "bfloat16", "float32", "float64")
SEMANTICS = ("native", "spec")


@dataclass(frozen=True)
class Case:
    backend: str
    op: str
    dtype: str
    family: str
    seed: int = 0
    variant: str = ""
    semantics: str = "native"

    @property
    def key(self) -> str:
        from .. import __version__
        blob = json.dumps(dict(asdict(self), schema=SCHEMA, refrt=__version__), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    @property
    def inputs_id(self):
        """Cases that share inputs (one oracle evaluation serves all their backends)."""
        return (self.op, self.dtype, self.family, self.seed, self.variant)

    def to_dict(self):
        return asdict(self)


def storage(dtype: str):
    """NumPy dtype the inputs are held in (bfloat16 values in float32)."""
    return np.dtype(np.float32) if dtype == "bfloat16" else np.dtype(dtype)


def _round_to(a, dtype):
    if dtype == "bfloat16" and a.dtype.kind == "f":
        import ml_dtypes
        with np.errstate(over="ignore"):
            return a.astype(ml_dtypes.bfloat16).astype(np.float32)
    return a


# ------------------------------------------------------------ campaign-only families
def _logit_op(spec):
    return spec.kind in ("softmax", "loss") and spec.args[0].name in ("x", "logits") \
        or spec.name == "logsumexp"


def _row_op(spec):
    return spec.kind in ("reduction", "softmax", "norm") or spec.name in ("mse_loss", "row_mean")


CAMPAIGN_FAMILIES = {
    # name: (applies(spec), doc)
    "campaign_inf_logits": (_logit_op, "+-inf logits among finite ones, soft targets"),
    "campaign_mean_spread": (_row_op, "rows with mean >> spread (1e3 / 1e4 / 1e8 +- 1)"),
    "campaign_subnormal_rows": (lambda s: _row_op(s) or s.kind in ("unary", "binary"),
                                "rows of subnormals"),
    "campaign_cancel_max": (lambda s: s.kind == "reduction" or s.name == "row_mean",
                            "+-max values whose sum cancels"),
    "campaign_margins": (lambda s: _logit_op(s), "one dominant logit per row at margins 1..100"),
}
MARGINS = (1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 80, 100)


def _first_arg(family, shape, dtype, rng):
    fi = np.finfo(storage(dtype) if dtype != "bfloat16" else np.float32)
    n = int(np.prod(shape))
    if family == "campaign_inf_logits":
        x = rng.standard_normal(shape) * 3
        flat = x.reshape(-1, shape[-1]) if len(shape) > 1 else x.reshape(1, -1)
        for r in range(flat.shape[0]):
            k = r % 4
            if k == 0:
                flat[r, rng.integers(flat.shape[1])] = np.inf
            elif k == 1:
                flat[r, rng.integers(flat.shape[1])] = -np.inf
            elif k == 2:
                flat[r, :2] = (np.inf, -np.inf)
        return x
    if family == "campaign_mean_spread":
        mean = {"float16": 1e3, "bfloat16": 1e3, "float32": 1e4, "float64": 1e8}[dtype]
        return mean + rng.standard_normal(shape)
    if family == "campaign_subnormal_rows":
        sub = float(np.nextafter(storage(dtype).type(0), storage(dtype).type(1)))
        tiny = float(fi.tiny) if dtype != "bfloat16" else 2.0 ** -126
        if dtype == "bfloat16":
            sub = 2.0 ** -133
        mag = np.exp(rng.uniform(math.log(sub), math.log(tiny), n))
        return (np.sign(rng.standard_normal(n)) * mag).reshape(shape)
    if family == "campaign_cancel_max":
        big = float(np.finfo(np.float32).max) if dtype == "bfloat16" else float(fi.max)
        if dtype == "bfloat16":
            big = float(np.float32(3.3895314e38))          # bfloat16's largest finite
        x = rng.standard_normal(shape)
        flat = x.reshape(-1, shape[-1]) if len(shape) > 1 else x.reshape(1, -1)
        flat[:, 0], flat[:, 1] = big, -big
        flat[1::2, 2] = big
        return x
    if family == "campaign_margins":
        rows = len(MARGINS)
        x = rng.standard_normal((rows, shape[-1])) * 0.5
        x[:, 0] = np.array(MARGINS, dtype=np.float64) + x[:, 1:].max(axis=1)
        return x
    raise KeyError(family)


def families_for(spec):
    """The families a campaign runs for ``spec``: the registry's, ``special`` when the op
    has special cases, then the campaign-only ones that apply and the registry lacks."""
    names = list(spec.families)
    if spec.special_cases:
        names.append("special")
    names += [f for f, (applies, _) in CAMPAIGN_FAMILIES.items()
              if applies(spec) and f.replace("campaign_", "") not in spec.families]
    return names


def all_family_names():
    return sorted(set(fam.FAMILIES) | {"special"} | set(CAMPAIGN_FAMILIES))


# ------------------------------------------------------------------------ variants
def variants_for(spec):
    out = [""]
    for p in spec.params:
        if p.kind == "axis_or_none":
            out += ["axis=0", "axis=-1"]
        elif p.kind == "axis":
            out.append("axis=0" if p.default in (-1, 1) else "axis=-1")
    if any(a.role == "class_target" for a in spec.args):
        out.append("target=ids")
    return out


def all_variant_names():
    return sorted({v for s in OPS.values() for v in variants_for(s)} - {""})


def apply_variant(spec, arrays, params, variant):
    if not variant:
        return arrays, params
    name, value = variant.split("=", 1)
    if name == "axis":
        # the op's axis parameter under its own name (normalize_along_dim calls it dim)
        pname = next((p.name for p in spec.params if p.kind in ("axis", "axis_or_none")), "axis")
        return arrays, dict(params, **{pname: int(value)})
    if name == "target" and value == "ids":
        arrays = list(arrays)
        i = next(k for k, a in enumerate(spec.args) if a.role == "class_target")
        t = np.asarray(arrays[i])
        if t.dtype.kind not in "iu" and t.ndim >= 1 and t.shape[-1] > 0:   # ids stay ids
            arrays[i] = np.argmax(np.nan_to_num(t.astype(np.float64)), axis=-1).astype(np.int64)
        return arrays, params
    raise ValueError(f"unknown variant {variant!r}")


# --------------------------------------------------------------------------- inputs
def _special_draws(spec, dtype):
    st = storage(dtype)
    out = []
    for case in spec.special_cases:
        if dtype in ("float32", "float64") and dtype not in case.dtypes:
            continue
        arrays = []
        for arg, v in zip(spec.args, case.inputs):
            if arg.role == "condition":          # where's selector stays bool
                arrays.append(np.array(v, dtype=bool).reshape(-1))
                continue
            if arg.role == "index":              # integer positions stay integers
                arrays.append(np.array(v, dtype=np.int64).reshape(np.shape(v) or (1,)))
                continue
            a = np.array(v, dtype=np.float64)
            if a.ndim == 0:
                a = a.reshape(1)
            if arg.role == "class_target" and a.dtype.kind == "f" and np.all(a == np.round(a)) \
                    and a.ndim == 1 and len(case.inputs[0]) and np.ndim(case.inputs[0]) > a.ndim:
                arrays.append(a.astype(np.int64))
                continue
            arrays.append(a)
        with np.errstate(all="ignore"):
            conv = [_round_to(a.astype(st), dtype) if a.dtype.kind == "f" else a for a in arrays]
            if any(a.dtype.kind == "f" and not np.array_equal(c.astype(np.float64), a, equal_nan=True)
                   for a, c in zip(arrays, conv)):
                continue     # the case's inputs are not exact in this dtype
        out.append((conv, dict(spec.param_defaults, **case.params)))
    return out


def draws(spec, family, dtype, seed=0):
    """The input sets of one (op, family, dtype, seed): a list of ``(arrays, params)``."""
    st = storage(dtype)
    if family == "special":
        return _special_draws(spec, dtype)
    gen_dtype = np.float32 if dtype == "bfloat16" else st
    if family in CAMPAIGN_FAMILIES:
        arrays, params = fam.generate(spec, "normal", gen_dtype, seed)
        rng = np.random.default_rng(zlib.crc32(f"{spec.name}/{family}/{dtype}/{seed}".encode()))
        x = _first_arg(family, arrays[0].shape if arrays[0].ndim else (1,), dtype, rng)
        if family == "campaign_margins" and len(arrays) > 1:
            arrays = [a[: x.shape[0]] if a.ndim and a.shape[0] >= x.shape[0] else a for a in arrays]
            if arrays[1].shape[0] < x.shape[0]:
                arrays[1] = np.resize(arrays[1], (x.shape[0],) + arrays[1].shape[1:])
        with np.errstate(over="ignore", invalid="ignore"):
            arrays[0] = x.astype(gen_dtype).reshape(x.shape if family == "campaign_margins" else arrays[0].shape)
    else:
        arrays, params = fam.generate(spec, family, gen_dtype, seed)
    arrays = [_round_to(np.asarray(a), dtype) for a in arrays]
    return [(arrays, params)]
