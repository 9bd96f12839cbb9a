"""PyTorch entries for the misc2 ops (registry/misc2.py), merged into torch.py's table.

Each is the call a torch user writes for the catalog's definition: the masks and
positions cast to the input dtype (torch returns bool / int64; refrt's are floats),
global-norm clipping written with ``torch.linalg.vector_norm`` (``nn.utils.
clip_grad_norm_`` divides by norm + 1e-6 and works in place on ``.grad``, a different
formula), the percentile clip through ``torch.sort`` and ``torch.clamp`` with tensor
bounds (the gradient flows into the bound, as refrt's VJP), the scan as the plain loop,
and the affine quantizer with ``torch.round`` (half to even) of the rounded quotient.
rand_uniform has no entry: torch's RNG is not SplitMix64 (dropout's entry shows that
applying refrt's stream through torch checks no more than a copy)."""
from __future__ import annotations

import numpy as np

from ._base import ByDesign, Entry


def entries(torch):
    u = lambda f, code, **kw: Entry(f, code, **kw)                                  # noqa: E731

    def reduce_mask(fn):
        return lambda x, axis: (fn(x) if axis is None else fn(x, dim=axis)).to(x.dtype)

    def arg(fn):
        return lambda x, axis: fn(x, dim=axis).to(x.dtype)

    def clip_norm(g, max_norm):
        n = torch.linalg.vector_norm(g)
        m = abs(max_norm)
        return torch.where(n > m, g * (m / n), g)

    def clip_pct(g, pct):
        a = torch.sort(g.abs().flatten(), stable=True).values
        b = a[(min(pct, 100) * (a.numel() - 1)) // 100]
        return torch.clamp(g, -b, b)

    def scan(a, b, h0):
        h, out = h0, []
        for t in range(a.shape[0]):
            h = a[t] * h + b[t]
            out.append(h)
        return torch.stack(out) if out else a.clone()

    nan_clamp = ByDesign(("nan", "bits"), "by design: torch.clamp propagates NaN (TorchLean's "
                         "clampSpec maps NaN to lo = -b)",
                         lambda a, p: bool(np.isnan(np.asarray(a[0], np.float64)).any()))
    return {
        "logical_not": u(lambda x: torch.logical_not(x).to(x.dtype),
                         "torch.logical_not(x).to(x.dtype)", grad=False),
        "any": u(reduce_mask(torch.any), "torch.any(x, dim={axis}).to(x.dtype)",
                 params=("axis",), grad=False),
        "all": u(reduce_mask(torch.all), "torch.all(x, dim={axis}).to(x.dtype)",
                 params=("axis",), grad=False),
        "argmax": u(arg(torch.argmax), "torch.argmax(x, dim={axis}).to(x.dtype)",
                    params=("axis",), grad=False),
        "argmin": u(arg(torch.argmin), "torch.argmin(x, dim={axis}).to(x.dtype)",
                    params=("axis",), grad=False),
        "detach": u(lambda x: x.detach().clone(), "x.detach()", grad=False),
        "clip_gradients": u(clip_norm, "n = torch.linalg.vector_norm(g); "
                            "torch.where(n > abs({max_norm}), g * (abs({max_norm}) / n), g)",
                            params=("max_norm",),
                            conventions="clipGradientsSpec in torch ops (not "
                                        "nn.utils.clip_grad_norm_, which adds 1e-6)"),
        "clip_by_percentile": u(clip_pct, "b = torch.sort(g.abs().flatten()).values[(min({pct}, "
                                "100) * (g.numel() - 1)) // 100]; torch.clamp(g, -b, b)",
                                params=("pct",), by_design=(nan_clamp,)),
        "diagonal_scan": u(scan, "h = h0; for t: h = a[t] * h + b[t] (stacked)"),
        "quantize": u(lambda x, scale, zero_point, qmin, qmax: torch.clamp(
            torch.round(x / scale) + zero_point, qmin, qmax),
            "torch.clamp(torch.round(x / {scale}) + {zero_point}, {qmin}, {qmax})",
            params=("scale", "zero_point", "qmin", "qmax"),
            conventions="round half to even of the rounded quotient x / scale"),
        "dequantize": u(lambda codes, scale, zero_point: (codes - zero_point) * scale,
                        "(codes - {zero_point}) * {scale}", params=("scale", "zero_point")),
    }
