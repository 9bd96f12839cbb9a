"""Models as tests (catalog §4): each model is a torch.nn module imported with
``refrt.from_torch`` and also written directly with refrt ops.  For each:

* the imported forward matches torch float64 within ``FWD_REL`` (normwise relative:
  max |refrt - torch| / max |torch|) and refrt's own mp evaluation within ``EXACT_REL``;
* the gradients w.r.t. every parameter match torch autograd within ``GRAD_REL``
  (max |refrt - torch| over each tensor / the largest |torch gradient| of the model);
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
GRAD_REL = 64 * EPS64       # parameter gradients vs torch autograd, normwise per tensor
F32_REL = 1e-6              # refrt f32 vs refrt mp, per layer output, normwise (8 float32 eps)


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
    # normwise over the whole parameter gradient: a tensor whose exact gradient is 0
    # (the conv bias before a training-mode batch norm) has only rounding noise on both
    # sides, which a per-tensor relative error would compare with itself
    scale = max(float(np.max(np.abs(t))) for t in tg.values())
    grad_rel = {n: float(np.max(np.abs(np.asarray(g) - tg[n]))) / scale
                for n, g in zip(graph.parameter_names, grads)}
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


# --------------------------------------------------------------------------- CNN
class CNN(nn.Module):
    """conv -> batch norm (training mode: batch statistics) -> relu -> max pool -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x, y):
        h = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return nn.functional.cross_entropy(self.fc(h.flatten(1)), y)


def cnn_refrt(cw, cb, gamma, beta, fw, fb, x, y):
    # bias positionally: with bias= as a keyword, conv2d fails inside a trace (i-conv's
    # refrt._prepare.bind_optional calls np.shape on the traced input; reported)
    h = ops.conv2d(x, cw, cb, padding=1)
    h = ops.relu(ops.batch_norm(h, gamma, beta, eps=1e-5, channel_axis=1))
    h = ops.max_pool2d(h, kernel_size=2)
    return ops.cross_entropy(ops.linear(ops.reshape(h, shape=(h.shape[0], -1)), fw, fb), y)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(1)
    module = CNN().double().train()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    return module, refrt.from_torch(module, x, y), (x, y)


def test_cnn_matches_torch(cnn):
    module, graph, inputs = cnn
    ops_ = [n.op for n in graph.nodes]
    assert ops_[:4] == ["conv2d", "batch_norm", "relu", "max_pool2d"], ops_
    res = agreement(module, graph, inputs)
    check_agreement(res)
    # batch statistics remove the conv bias: its exact gradient is 0
    gb = refrt.grad(graph, graph.argnums("conv.bias"))(*res["full"])
    assert np.max(np.abs(gb)) <= 1e-14
    params = [a for a, k in zip(res["full"], graph.input_kinds) if k == "parameter"]
    direct = refrt.trace(cnn_refrt, *params, *res["full"][-2:])
    assert rel(direct.evaluate(*params, *res["full"][-2:], backend="f64"), res["value"]) \
        <= EXACT_REL


def test_cnn_float32_error_per_layer_and_check(cnn):
    module, graph, inputs = cnn
    full = graph.inputs(*[t.numpy() for t in inputs])
    rows = check_layers(graph, full)
    assert {"conv (Conv2d)", "bn (BatchNorm2d)", "fc (Linear)"} <= {r[0] for r in rows}
    report = refrt.check(graph, *full, budget=1.0)
    assert report.nodes == len(graph.nodes)


# ------------------------------------------------------------------- transformer
SEQ = 5


class Encoder(nn.Module):
    """nn.TransformerEncoderLayer in eval mode with a causal mask built in forward;
    ``blocked`` also masks every key for query 0 (a fully masked row)."""

    def __init__(self, blocked):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.blocked = blocked

    def forward(self, x, t):
        mask = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1)   # True = masked
        if self.blocked:
            mask = mask.clone()
            mask[0, :] = True
        out = self.layer(x, src_mask=mask)
        return nn.functional.mse_loss(out[:, 1:], t[:, 1:])


def encoder_refrt(w_in, b_in, w_out, b_out, w1, b1, w2, b2, g1, be1, g2, be2, x, t,
                  blocked=False):
    n, L, d = x.shape
    heads, hd = 2, d // 2
    allowed = np.tril(np.ones((L, L), bool))
    if blocked:
        allowed[0, :] = False
    qkv = ops.linear(ops.reshape(x, shape=(n * L, d)), w_in, b_in)          # (nL, 3d)
    qkv = ops.permute(ops.reshape(qkv, shape=(n, L, 3, heads, hd)), dims=(2, 0, 3, 1, 4))
    q, k, v = (ops.select(qkv, axis=0, index=i) for i in range(3))         # (n, h, L, hd)
    a = ops.scaled_dot_product_attention(q, k, v, mask=allowed)
    a = ops.reshape(ops.permute(a, dims=(0, 2, 1, 3)), shape=(n * L, d))
    h = ops.add(ops.reshape(x, shape=(n * L, d)), ops.linear(a, w_out, b_out))
    h = ops.layer_norm(h, g1, be1, eps=1e-5)
    f = ops.linear(ops.relu(ops.linear(h, w1, b1)), w2, b2)
    out = ops.reshape(ops.layer_norm(ops.add(h, f), g2, be2, eps=1e-5), shape=(n, L, d))
    return ops.mse_loss(ops.slice(out, axis=1, start=1), ops.slice(t, axis=1, start=1))


def _encoder(blocked):
    torch.manual_seed(2)
    module = Encoder(blocked).double().eval()
    x = torch.randn(2, SEQ, 8, dtype=torch.float64)
    t = torch.randn(2, SEQ, 8, dtype=torch.float64)
    return module, refrt.from_torch(module, x, t), (x, t)


@pytest.fixture(scope="module")
def encoder():
    return _encoder(False)


def test_transformer_encoder_layer_matches_torch(encoder):
    module, graph, inputs = encoder
    assert "scaled_dot_product_attention" in [n.op for n in graph.nodes]
    res = agreement(module, graph, inputs)
    check_agreement(res)
    params = [a for a, k in zip(res["full"], graph.input_kinds) if k == "parameter"]
    direct = refrt.trace(encoder_refrt, *params, *res["full"][-2:])
    assert rel(direct.evaluate(*params, *res["full"][-2:], backend="f64"), res["value"]) \
        <= EXACT_REL
    rows = check_layers(graph, res["full"])
    assert any(r[0].startswith("layer.self_attn") for r in rows)
    report = refrt.check(graph, *res["full"], budget=1.0)
    assert report.nodes == len(graph.nodes)


def test_transformer_fully_masked_row_gives_zero_attention_not_nan():
    module, graph, (x, t) = _encoder(True)
    full = graph.inputs(x.numpy(), t.numpy())
    loss = graph.evaluate(*full, backend="f64")
    assert np.isfinite(loss)
    # PyTorch: the fully masked query row is NaN (softmax of all -inf), so its loss is NaN
    # once the masked token reaches it; the attention output of query 0 in refrt is 0,
    # so token 0 is LayerNorm(x_0 + out_proj.bias) ...
    with torch.no_grad():
        sa = module.layer.self_attn
        mask = torch.triu(torch.ones(SEQ, SEQ, dtype=torch.bool), 1)
        mask[0, :] = True
        attn, _ = sa(x, x, x, attn_mask=mask, need_weights=False)
    assert torch.isnan(attn[:, 0]).all() and torch.isfinite(attn[:, 1:]).all()
    # ... and the other tokens are those of the unblocked computation where the keys they
    # see are the same: tokens 1.. attend to key 0 as before, so the loss over tokens 1..
    # equals torch's with the blocked row's output replaced by refrt's zero row
    params = [a for a, k in zip(full, graph.input_kinds) if k == "parameter"]
    direct = refrt.trace(encoder_refrt, *params, *full[-2:], blocked=True)
    assert rel(direct.evaluate(*params, *full[-2:], backend="f64"), loss) <= EXACT_REL
    gr = refrt.grad(graph, graph.argnums())(*full)
    assert all(np.isfinite(g).all() for g in gr)


# ------------------------------------------------------------------ LSTM classifier
class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x, y):
        _, (h, _) = self.lstm(x)
        return nn.functional.cross_entropy(self.fc(h[-1]), y)


def lstm_refrt(w_ih, w_hh, b_ih, b_hh, fw, fb, x, y):
    n, steps, _ = x.shape
    h = c = np.zeros((n, w_hh.shape[1]), x.dtype)
    for t in range(steps):
        h, c = ops.lstm_cell(ops.select(x, axis=1, index=t), h, c, w_ih, w_hh, b_ih, b_hh)
    return ops.cross_entropy(ops.linear(h, fw, fb), y)


@pytest.fixture(scope="module")
def lstm():
    torch.manual_seed(3)
    module = LSTMClassifier().double()
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    return module, refrt.from_torch(module, x, y), (x, y)


def test_lstm_classifier_matches_torch(lstm):
    module, graph, inputs = lstm
    assert [n.op for n in graph.nodes].count("lstm_cell") == 4
    res = agreement(module, graph, inputs)
    check_agreement(res)
    params = [a for a, k in zip(res["full"], graph.input_kinds) if k == "parameter"]
    direct = refrt.trace(lstm_refrt, *params, *res["full"][-2:])
    assert rel(direct.evaluate(*params, *res["full"][-2:], backend="f64"), res["value"]) \
        <= EXACT_REL
    check_layers(graph, res["full"])
    report = refrt.check(graph, *res["full"], budget=1.0)
    assert report.nodes == len(graph.nodes)


# ------------------------------------------------------- GRU and RNN classifiers
class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x, y):
        _, h = self.gru(x)
        return nn.functional.cross_entropy(self.fc(h[-1]), y)


def gru_refrt(w_ih, w_hh, b_ih, b_hh, fw, fb, x, y):
    n, steps, _ = x.shape
    h = np.zeros((n, w_hh.shape[1]), x.dtype)
    for t in range(steps):
        h = ops.gru_cell(ops.select(x, axis=1, index=t), h, w_ih, w_hh, b_ih, b_hh)
    return ops.cross_entropy(ops.linear(h, fw, fb), y)


class RNNClassifier(nn.Module):
    """A 2-layer tanh RNN (sequence first) feeding a relu RNN without biases."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 4, num_layers=2)
        self.rnn_relu = nn.RNN(4, 4, nonlinearity="relu", bias=False)
        self.fc = nn.Linear(4, 2)

    def forward(self, x, y):
        out, _ = self.rnn(x)
        _, h = self.rnn_relu(out)
        return nn.functional.cross_entropy(self.fc(h[-1]), y)


def rnn_refrt(w_ih0, w_hh0, b_ih0, b_hh0, w_ih1, w_hh1, b_ih1, b_hh1, r_ih, r_hh, fw, fb,
              x, y):
    steps, n, _ = x.shape
    seq = [ops.select(x, axis=0, index=t) for t in range(steps)]
    for w_ih, w_hh, b_ih, b_hh, act in ((w_ih0, w_hh0, b_ih0, b_hh0, "tanh"),
                                        (w_ih1, w_hh1, b_ih1, b_hh1, "tanh"),
                                        (r_ih, r_hh, None, None, "relu")):
        h = np.zeros((n, w_hh.shape[1]), x.dtype)
        zero = np.zeros(w_hh.shape[0], x.dtype)
        out = []
        for t in range(steps):
            h = ops.rnn_cell(seq[t], h, w_ih, w_hh, zero if b_ih is None else b_ih,
                             zero if b_hh is None else b_hh, nonlinearity=act)
            out.append(h)
        seq = out
    return ops.cross_entropy(ops.linear(h, fw, fb), y)


@pytest.fixture(scope="module")
def gru():
    torch.manual_seed(5)
    module = GRUClassifier().double()
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    return module, refrt.from_torch(module, x, y), (x, y)


@pytest.fixture(scope="module")
def rnn():
    torch.manual_seed(6)
    module = RNNClassifier().double()
    x = torch.randn(4, 3, 3, dtype=torch.float64)                 # (steps, batch, features)
    y = torch.tensor([1, 0, 1])
    return module, refrt.from_torch(module, x, y), (x, y)


@pytest.mark.parametrize("case", ["gru", "rnn"])
def test_gru_and_rnn_classifiers_match_torch(case, request):
    module, graph, inputs = request.getfixturevalue(case)
    cells = [n for n in graph.nodes if n.op.endswith("_cell")]
    if case == "gru":
        assert [n.op for n in cells] == ["gru_cell"] * 4
    else:            # 2 tanh layers x 4 steps, then the relu RNN's 4 steps
        assert [n.params["nonlinearity"] for n in cells] == ["tanh"] * 8 + ["relu"] * 4
        assert graph.parameter_names[8:10] == ("rnn_relu.weight_ih_l0",
                                               "rnn_relu.weight_hh_l0")
    res = agreement(module, graph, inputs)
    check_agreement(res)
    params = [a for a, k in zip(res["full"], graph.input_kinds) if k == "parameter"]
    direct = refrt.trace(gru_refrt if case == "gru" else rnn_refrt, *params, *res["full"][-2:])
    assert rel(direct.evaluate(*params, *res["full"][-2:], backend="f64"), res["value"]) \
        <= EXACT_REL
    check_layers(graph, res["full"])
    report = refrt.check(graph, *res["full"], budget=1.0)
    assert report.nodes == len(graph.nodes)


# ------------------------------------------------------- conv autoencoder
class ConvAutoencoder(nn.Module):
    """conv (stride 2) -> relu -> conv transpose (stride 2, output_padding 1) -> sigmoid,
    reconstruction MSE."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.dec = nn.ConvTranspose2d(3, 1, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        z = torch.relu(self.enc(x))
        return nn.functional.mse_loss(torch.sigmoid(self.dec(z)), x)


def autoencoder_refrt(ew, eb, dw, db, x):
    z = ops.relu(ops.conv2d(x, ew, eb, stride=2, padding=1))
    y = ops.conv_transpose2d(z, dw, db, stride=2, padding=1, output_padding=1)
    return ops.mse_loss(ops.sigmoid(y), x)


@pytest.fixture(scope="module")
def autoencoder():
    torch.manual_seed(7)
    module = ConvAutoencoder().double()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    return module, refrt.from_torch(module, x), (x,)


def test_conv_autoencoder_matches_torch(autoencoder):
    module, graph, inputs = autoencoder
    assert [n.op for n in graph.nodes] == ["conv2d", "relu", "conv_transpose2d", "sigmoid",
                                           "mse_loss"]
    assert graph.layers[2] == "dec (ConvTranspose2d)"
    res = agreement(module, graph, inputs)
    check_agreement(res)
    direct = refrt.trace(autoencoder_refrt, *res["full"])
    assert rel(direct.evaluate(*res["full"], backend="f64"), res["value"]) <= EXACT_REL
    check_layers(graph, res["full"])
    report = refrt.check(graph, *res["full"], budget=1.0)
    assert report.nodes == len(graph.nodes)


# ------------------------------------------------------------------------ GCN
class GCN(nn.Module):
    """Two GCN layers A relu(A X W1 + b1) W2 + b2 (A: the symmetric-normalised adjacency
    with self loops, a buffer) and node classification."""

    def __init__(self, adjacency):
        super().__init__()
        self.register_buffer("adj", adjacency)
        self.lin1 = nn.Linear(4, 8)
        self.lin2 = nn.Linear(8, 3)

    def forward(self, x, y):
        h = torch.relu(self.adj @ self.lin1(x))
        return nn.functional.cross_entropy(self.adj @ self.lin2(h), y)


def normalised_adjacency(n, edges):
    a = np.eye(n)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    d = 1.0 / np.sqrt(a.sum(1))
    return a * d[:, None] * d[None, :]


def gcn_refrt(w1, b1, w2, b2, adj, x, y):
    h = ops.relu(ops.matmul(adj, ops.linear(x, w1, b1)))
    return ops.cross_entropy(ops.matmul(adj, ops.linear(h, w2, b2)), y)


@pytest.fixture(scope="module")
def gcn():
    torch.manual_seed(4)
    adj = torch.tensor(normalised_adjacency(6, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5)]))
    module = GCN(adj).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return module, refrt.from_torch(module, x, y), (x, y)


def test_gcn_matches_torch(gcn):
    module, graph, inputs = gcn
    assert graph.input_kinds[graph.input_names.index("adj")] == "buffer"
    res = agreement(module, graph, inputs)
    check_agreement(res)
    direct = refrt.trace(gcn_refrt, *res["full"])
    assert rel(direct.evaluate(*res["full"], backend="f64"), res["value"]) <= EXACT_REL
    check_layers(graph, res["full"])
    report = refrt.check(graph, *res["full"], budget=1.0)
    assert report.nodes == len(graph.nodes)


def figures():
    """The measured figures of docs/importer.md: ``python tests/test_import_models.py``."""
    cases = [("MLP", mlp.__wrapped__), ("CNN", cnn.__wrapped__),
             ("TransformerEncoderLayer", encoder.__wrapped__), ("LSTM classifier",
                                                                lstm.__wrapped__),
             ("GCN (2 layers)", gcn.__wrapped__), ("GRU classifier", gru.__wrapped__),
             ("RNN classifier (tanh x2, relu)", rnn.__wrapped__),
             ("Conv autoencoder", autoencoder.__wrapped__)]
    for name, make in cases:
        module, graph, inputs = make()
        res = agreement(module, graph, inputs)
        print(f"{name}: {len(graph.nodes)} nodes; forward vs torch f64 "
              f"{res['forward'] / EPS64:.1f} eps, vs mp {res['exact'] / EPS64:.1f} eps; "
              f"worst parameter gradient vs torch autograd "
              f"{max(res['grads'].values()) / EPS64:.1f} eps")
        for layer, last, worst in layer_report(graph, *res["full"], backend="f32"):
            print(f"    f32 {layer:<28} {last.op:<30} {last.max_ulp:8.1f} ulp  rel {last.rel:.1e}")


if __name__ == "__main__":
    figures()
