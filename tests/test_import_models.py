"""Models as tests (catalog §4): each model is a torch.nn module imported with
``refrt.from_torch`` and also written directly with refrt ops.  For each:

* the imported forward matches torch float64 within ``FWD_REL`` (normwise relative:
  max |refrt - torch| / max |torch|) and refrt's own mp evaluation within ``EXACT_REL``;
* the gradients w.r.t. every parameter match torch autograd within ``GRAD_REL``;
* the direct refrt version gives the same value (same ops: bitwise for the MLP);
* ``node_report`` / ``layer_report``: refrt float32 against refrt mp, per layer, within
  ``F32_REL``;
* ``refrt.check`` runs on the loss.

Budgets (float64 against torch float64): both sides round differently (refrt's
compensated dots and correctly rounded reductions; torch's BLAS), so the budget is in
units of float64 eps times a small factor per model depth, documented in
docs/importer.md with the measured figures.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import refrt  # noqa: E402
from refrt import ops  # noqa: E402
from refrt.importers import layer_report, node_report  # noqa: E402

EPS64 = float(np.finfo(np.float64).eps)
FWD_REL = 64 * EPS64        # refrt f64 vs torch f64, normwise
EXACT_REL = 8 * EPS64       # refrt f64 vs refrt mp, normwise
GRAD_REL = 256 * EPS64      # parameter gradients vs torch autograd, normwise per tensor
F32_REL = 1e-5              # refrt f32 vs refrt mp, per layer output, normwise


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale else float(np.max(np.abs(a - b)))


def torch_grads(module, *inputs):
    module.zero_grad()
    module(*inputs).backward()
    return {n: p.grad.detach().numpy().copy() for n, p in module.named_parameters()}


def agreement(module, graph, torch_inputs):
    """Forward and gradient agreement of an imported scalar-loss model with torch."""
    np_inputs = [t.numpy() for t in torch_inputs]
    full = graph.inputs(*np_inputs)
    want = module(*torch_inputs).detach().numpy()
    got = graph.evaluate(*full, backend="f64")
    exact = graph.evaluate(*full, backend="mp")
    grads = refrt.grad(graph, graph.argnums())(*full, backend="f64")
    tg = torch_grads(module, *torch_inputs)
    grad_rel = {n: rel(g, tg[n]) for n, g in zip(graph.parameter_names, grads)}
    return {"forward": rel(got, want), "exact": rel(got, np.asarray(exact, np.float64)),
            "grads": grad_rel, "full": full, "value": got}


def check_agreement(res):
    assert res["forward"] <= FWD_REL, res["forward"]
    assert res["exact"] <= EXACT_REL, res["exact"]
    worst = max(res["grads"].values())
    assert worst <= GRAD_REL, res["grads"]


def check_layers(graph, full):
    rows = layer_report(graph, *full, backend="f32")
    assert rows, "no layers reported"
    for layer, last, worst in rows:
        assert last.rel <= F32_REL, (layer, str(last))
    return rows


# --------------------------------------------------------------------------- MLP
class MLP(nn.Module):
    def __init__(self, d_in=6, d_hidden=16, classes=4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, classes)

    def forward(self, x, y):
        h = torch.relu(self.fc1(x))
        return nn.functional.cross_entropy(self.fc2(h), y)


def mlp_refrt(w1, b1, w2, b2, x, y):
    h = ops.relu(ops.linear(x, w1, b1))
    return ops.cross_entropy(ops.linear(h, w2, b2), y)


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    module = MLP().double()
    x = torch.randn(8, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    return module, refrt.from_torch(module, x, y), (x, y)


def test_mlp_imports_with_named_parameters_and_lines(mlp):
    module, graph, _ = mlp
    assert graph.parameter_names == ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
    assert [n.op for n in graph.nodes] == ["linear", "relu", "linear", "cross_entropy"]
    src = open(__file__).read().splitlines()
    line_h = next(i for i, t in enumerate(src, 1) if "h = torch.relu(self.fc1(x))" in t)
    assert graph.nodes[0].location == f"{__file__}:{line_h}"
    assert graph.layers[0] == "fc1 (Linear)" and graph.layers[2] == "fc2 (Linear)"


def test_mlp_matches_torch(mlp):
    module, graph, inputs = mlp
    res = agreement(module, graph, inputs)
    check_agreement(res)
    # written directly with refrt ops: the same ops, so the same bits
    direct = refrt.trace(mlp_refrt, *res["full"]).evaluate(*res["full"], backend="f64")
    assert np.array_equal(direct, res["value"])


def test_mlp_float32_error_per_layer(mlp):
    module, graph, inputs = mlp
    full = graph.inputs(*[t.numpy() for t in inputs])
    rows = check_layers(graph, full)
    assert [layer for layer, _, _ in rows] == ["fc1 (Linear)", "<top>", "fc2 (Linear)",
                                               "<top>"]


def test_mlp_check_runs_on_the_loss(mlp):
    module, graph, inputs = mlp
    full = graph.inputs(*[t.numpy() for t in inputs])
    report = refrt.check(graph, *full, budget=1.0)
    assert report.nodes == 4
    assert not report.findings, report
