"""refrt.from_torch: the ATen table, broadcasting and views, functions and loss=, and the
errors (unsupported ops listed together with their lines, data-dependent control flow
rephrased with its line, bad arguments)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import refrt  # noqa: E402
from refrt.errors import RefrtError  # noqa: E402
from refrt.importers import DataDependentError, UnsupportedOpError  # noqa: E402
from refrt.importers.aten_table import ROWS, TABLE  # noqa: E402
from refrt.registry import OPS  # noqa: E402

SRC = open(__file__).read().splitlines()


def line(text):
    return f"{__file__}:{next(i for i, t in enumerate(SRC, 1) if text in t)}"


def test_table_rows_name_real_aten_ops_and_refrt_ops():
    from refrt.importers.torch_export import LOWERINGS, _aten
    for row in ROWS:
        assert _aten(row.aten) is not None, row.aten
        assert row.lower in LOWERINGS, row.aten
        schema = {a.name for a in _aten(row.aten)._schema.arguments}
        named = set(row.arrays) | set(row.require) | {
            v for v in row.params.values() if isinstance(v, str)}
        assert named <= schema, (row.aten, named - schema)
    # every row whose refrt ops exist today is usable; the others wait for their op
    assert sum(all(op in OPS for op in r.ops if op) for r in ROWS) >= 60


def shapes_fn(x, b):
    y = (x * 2.0 + b).mean(dim=(0, 2), keepdim=True)           # broadcast, two dims
    z = x.permute(1, 0, 2).reshape(3, 8).t()                     # views and transposes
    return torch.tanh(y).sum() + torch.exp(-z).sum() / 4 + torch.clamp(x, min=0.0).sum()


def test_function_with_broadcasting_views_and_scalars():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    g = refrt.from_torch(shapes_fn, x, b)
    assert g.input_names == ["x", "b"] and g.parameter_names == ()
    got = g.evaluate(x.numpy(), b.numpy())
    assert abs(got - shapes_fn(x, b).item()) <= 1e-14 * abs(got)
    xg, bg = refrt.grad(g, (0, 1))(x.numpy(), b.numpy())
    xt, bt = x.clone().requires_grad_(), b.clone().requires_grad_()
    shapes_fn(xt, bt).backward()
    assert np.allclose(xg, xt.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert np.allclose(bg, bt.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert np.isclose(g.evaluate(x.numpy(), b.numpy(), backend="mp"), got, rtol=1e-14)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def test_loss_argument_and_float32_model():
    torch.manual_seed(2)
    model = Tiny()
    x, t = torch.randn(4, 3), torch.randn(4, 2)
    g = refrt.from_torch(model, x, t, loss=nn.MSELoss())
    assert [n.op for n in g.nodes] == ["linear", "mse_loss"]
    assert g.parameter_names == ("fc.weight", "fc.bias")
    full = g.inputs(x.numpy(), t.numpy())
    assert full[0].dtype == np.float32
    want = nn.MSELoss()(model(x), t).item()
    assert abs(float(g.evaluate(*full)) - want) <= 4e-7 * abs(want)
    out, vjp_fn = refrt.vjp(g, *full)
    dw, db, dx, dt = vjp_fn(np.float32(1.0))
    assert dw.shape == (2, 3) and dx.shape == (4, 3)


class Unsupported(nn.Module):
    def forward(self, x):
        a = torch.cumsum(x, 0)            # UNSUPPORTED-1
        b = torch.sort(x, dim=0).values   # UNSUPPORTED-2
        return torch.relu(a + b)


def test_unsupported_ops_are_listed_together_with_lines():
    with pytest.raises(UnsupportedOpError) as info:
        refrt.from_torch(Unsupported(), torch.randn(4, 3))
    msg = str(info.value)
    assert "aten.cumsum.default at " + line("# UNSUPPORTED-1") in msg
    assert "aten.sort.default at " + line("# UNSUPPORTED-2") in msg
    assert "2 call(s) of 2 ATen op(s)" in msg
    assert [e[0] for e in info.value.ops] == ["aten.cumsum.default", "aten.sort.default"]


class Reduction(nn.Module):
    def forward(self, x, t):
        return nn.functional.mse_loss(x, t, reduction="sum")   # SUM-REDUCTION


def test_unsupported_convention_names_the_argument():
    with pytest.raises(UnsupportedOpError, match=r"reduction='sum' \(refrt supports 'mean'\)") as info:
        refrt.from_torch(Reduction(), torch.randn(3), torch.randn(3))
    assert line("# SUM-REDUCTION") in str(info.value)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:                   # DATA-DEPENDENT
            return x * 2
        return x


def test_data_dependent_control_flow_is_rephrased_with_the_line():
    with pytest.raises(DataDependentError) as info:
        refrt.from_torch(Branchy(), torch.randn(3))
    msg = str(info.value)
    assert line("# DATA-DEPENDENT") in msg
    assert "control flow depends on the value of a tensor" in msg
    assert "if x.sum() > 0:" in msg


def test_bad_arguments():
    with pytest.raises(RefrtError, match="argument 'module_or_fn' expected"):
        refrt.from_torch(3, torch.randn(2))
    with pytest.raises(RefrtError, match=r"argument 'example_inputs\[0\]' expected a "
                       r"torch.Tensor, got ndarray"):
        refrt.from_torch(Tiny(), np.zeros((2, 3)))
    with pytest.raises(RefrtError, match="float32 or float64 tensor"):
        refrt.from_torch(Tiny(), torch.zeros(2, 3, dtype=torch.float16))
    with pytest.raises(RefrtError, match="argument 'loss' expected a callable"):
        refrt.from_torch(Tiny(), torch.zeros(2, 3), torch.zeros(2, 2), loss="mse")
    with pytest.raises(RefrtError, match="followed by the target"):
        refrt.from_torch(Tiny(), torch.zeros(2, 3), loss=nn.MSELoss())
    g = refrt.from_torch(Tiny(), torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"expected 1 input\(s\) \(x\), got 2"):
        g.inputs(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(KeyError, match="no input named 'fc.w'"):
        g.argnums("fc.w")


def test_core_does_not_import_the_importers(tmp_path):
    import os
    import subprocess
    import sys
    import refrt
    code = ("import sys, refrt, refrt.ops, refrt.tester, refrt.analysis; "
            "print('refrt.importers' in sys.modules, 'torch' in sys.modules)")
    # the refrt under test (an installed package or the source tree built in place), run
    # from an empty directory so a checkout without kernels cannot shadow it
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(refrt.__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=env, check=True).stdout.split()
    assert out == ["False", "False"]


def test_every_table_row_is_keyed_once():
    assert len(TABLE) == len(ROWS)


def layers_fn(x, ids, emb, w, q):
    h = nn.functional.conv2d(x, w, padding=1, stride=2)                    # no bias
    h = nn.functional.group_norm(h, 2, eps=1e-5)
    h = nn.functional.avg_pool2d(torch.tanh(h), 2, stride=1)
    h = nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)                 # (N, C)
    e = nn.functional.embedding(ids, emb)                                  # (N, L, C)
    e = nn.functional.rms_norm(e, (e.shape[-1],), eps=1e-6)
    a = nn.functional.scaled_dot_product_attention(q, e, e, is_causal=True)
    return (a.sum(dim=1) * h).sum() + nn.functional.layer_norm(e, e.shape[-2:]).pow(2).mean()


def test_more_layers_match_torch():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    ids = torch.tensor([[0, 2, 1], [3, 3, 0]])
    emb = torch.randn(4, 4, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    q = torch.randn(2, 3, 4, dtype=torch.float64)
    g = refrt.from_torch(layers_fn, x, ids, emb, w, q)
    ops_ = {n.op for n in g.nodes}
    assert {"conv2d", "group_norm", "avg_pool2d", "adaptive_avg_pool2d", "embedding",
            "rms_norm", "scaled_dot_product_attention", "layer_norm"} <= ops_, ops_
    inputs = [t.numpy() for t in (x, ids, emb, w, q)]
    want = layers_fn(x, ids, emb, w, q).item()
    assert abs(float(g.evaluate(*inputs)) - want) <= 1e-13 * abs(want)
    grads = refrt.grad(g, (0, 2, 3, 4))(*inputs)
    ts = [t.clone().requires_grad_() for t in (x, emb, w, q)]
    layers_fn(ts[0], ids, *ts[1:]).backward()
    for got, t in zip(grads, ts):
        assert np.allclose(got, t.grad.numpy(), rtol=1e-12, atol=1e-13)
