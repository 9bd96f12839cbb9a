"""refrt.from_torch: the ATen rows added for layers, indexing, padding, masks and
dropout (nn.GRU / nn.RNN: the classifiers of tests/test_import_models.py).  Each case is a small function or module that uses the rows; the
imported graph's float64 forward must match torch float64 within ``FWD_REL`` and its
gradients w.r.t. the float inputs (or parameters) torch autograd within ``GRAD_REL``
(both normwise: max |refrt - torch| / max |torch|).  A test checks that the cases
exercise every one of those rows (``NEW_ROWS``), so a row without a test fails here.

Cases are grouped (one export each) to keep the added test time to a few seconds."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

import refrt  # noqa: E402
from refrt.importers import UnsupportedOpError  # noqa: E402
from refrt.importers.aten_table import TABLE  # noqa: E402

EPS64 = float(np.finfo(np.float64).eps)
FWD_REL = 16 * EPS64
GRAD_REL = 64 * EPS64

CMP = [f"aten.{c}.{v}" for c in ("eq", "ne", "lt", "le", "gt", "ge") for v in ("Tensor", "Scalar")]
NEW_ROWS = set(CMP) | {
    "aten.conv_transpose2d.input", "aten.adaptive_max_pool2d.default", "aten.gather.default",
    "aten.scatter_add.default", "aten.index_select.default", "aten.index.Tensor",
    "aten.constant_pad_nd.default", "aten.logical_and.default", "aten.logical_or.default",
    "aten.logical_xor.default", "aten.logical_not.default", "aten.bitwise_and.Tensor",
    "aten.bitwise_or.Tensor", "aten.bitwise_xor.Tensor", "aten.bitwise_not.default",
    "aten._to_copy.default", "aten._assert_tensor_metadata.default", "aten.full_like.default",
    "aten.prod.default", "aten.native_dropout.default", "aten.where.self",
    "aten.linalg_vector_norm.default", "aten.max.default", "aten.min.default",
    "aten.max.dim", "aten.min.dim"}
# aten.gru.input, aten.rnn_tanh.input, aten.rnn_relu.input: tests/test_import_models.py


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a - b)))


def layers_fn(x, w):
    """conv_transpose2d (stride, padding, output_padding, groups, dilation), pad, and
    adaptive max/avg pools with bins that overlap (7 -> 3, 7 x 9 -> 4 x 5)."""
    y = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2)
    y = F.pad(torch.tanh(y), (1, 2, 0, 1), value=0.25)
    z = F.conv_transpose2d(x, w[:, :1], dilation=2)                        # no bias
    return (F.adaptive_max_pool2d(y, (3, 2)).sum() + F.adaptive_max_pool2d(z, 3).pow(2).mean()
            + F.adaptive_avg_pool2d(y, (4, 5)).pow(2).sum())              # 7x9 -> 4x5 bins


def indexing_fn(x, src, index, ids, ids2, ids3):
    """gather, scatter_add (repeated targets), index_select (axes 0 and 2) and x[:, ids]."""
    g = torch.gather(x, 2, index)
    s = x.scatter_add(2, index, src)
    a = torch.index_select(x, 0, ids2) * 1.5
    b = torch.index_select(x, 2, ids)
    m = x.max(dim=1).values.sum() + x.min(2, keepdim=True)[0].pow(2).sum() + x.max() - x.min()
    return (g * s[..., :2]).sum() + a.sum() + (b * b).sum() + x[:, ids3].prod() + m


def masks_fn(x, y):
    """Comparisons (Tensor and Scalar forms) as masks: in where (masked_fill), in
    arithmetic (bool -> float casts), logical and bitwise ops, full_like."""
    m = (x > y) | torch.logical_not(x <= 0.5)
    k = torch.logical_and(x < y, y >= -0.5) ^ (x == y) & (x != 1.0)
    k = torch.logical_or(k, torch.logical_xor(x > 0, y < 0)) & ~(x >= y)
    w = torch.where(m, torch.exp(x), y * 3.0).masked_fill(x.eq(y) | x.ne(x) | y.lt(-2.0), 0.0)
    w = w + x.eq(1.0)
    v = k.to(x.dtype) * x + (y.le(x) * y) + torch.ones_like(x) * (x.ge(0.0) * y.gt(0.0))
    n = torch.linalg.vector_norm(x, dim=1, keepdim=True) + x.norm() + x.norm(p=1, dim=0).sum()
    return (w * v / n).sum() + x.prod() + F.leaky_relu(x, 0.2).sum() \
        + torch.linalg.vector_norm(y, ord=float("inf"))


def _inputs_layers():
    torch.manual_seed(5)
    return (torch.randn(2, 4, 3, 3, dtype=torch.float64),
            torch.randn(4, 3, 3, 3, dtype=torch.float64))


def _inputs_indexing():
    torch.manual_seed(6)
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    index = torch.tensor([[[0, 4], [2, 2], [1, 1], [3, 0]]] * 3)          # (3, 4, 2)
    return (x, torch.randn(3, 4, 2, dtype=torch.float64), index, torch.tensor([2, 0, 0, 4]),
            torch.tensor([1, 2]), torch.tensor([[1, 0], [2, 2]]))


def _inputs_masks():
    torch.manual_seed(7)
    x = torch.randn(4, 6, dtype=torch.float64)
    y = torch.randn(4, 6, dtype=torch.float64)
    y[0, :3] = x[0, :3]                                                    # some x == y
    x[1, 0] = 1.0
    return x, y


CASES = {"layers": (layers_fn, _inputs_layers, (0, 1)),
         "indexing": (indexing_fn, _inputs_indexing, (0, 1)),
         "masks": (masks_fn, _inputs_masks, (0, 1))}


class AsModule(nn.Module):
    """A function as a module: torch.export's non-strict mode (seconds faster than the
    TorchDynamo export used for plain functions, which only adds their lines)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _torch_grads(fn, inputs, argnums):
    ts = [t.clone().requires_grad_() if i in argnums else t for i, t in enumerate(inputs)]
    fn(*ts).backward()
    return [ts[i].grad.numpy() for i in argnums]


@pytest.fixture(scope="module")
def imported():
    out = {}
    for name, (fn, make, argnums) in CASES.items():
        inputs = make()
        out[name] = (fn, inputs, argnums, refrt.from_torch(AsModule(fn), *inputs))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_rows_match_torch_forward_and_gradients(imported, name):
    fn, inputs, argnums, graph = imported[name]
    arrays = [t.numpy() for t in inputs]
    want = fn(*inputs).item()
    got = float(graph.evaluate(*arrays))
    assert rel(got, want) <= FWD_REL, (got, want)
    assert rel(graph.evaluate(*arrays, backend="mp"), got) <= FWD_REL
    grads = refrt.grad(graph, argnums)(*arrays)
    for g, t in zip(grads, _torch_grads(fn, inputs, argnums)):
        assert rel(g, t) <= GRAD_REL, rel(g, t)


def test_cases_use_every_new_row(imported, dropout_graph):
    seen = set()
    graphs = [g for *_, g in imported.values()]
    for g in graphs + [dropout_graph]:
        seen |= {str(n.target) for n in g.exported.graph_module.graph.nodes
                 if n.op == "call_function"}
    assert NEW_ROWS <= set(TABLE)
    assert NEW_ROWS <= seen, sorted(NEW_ROWS - seen)


def test_masks_are_float_and_where_takes_them(imported):
    _, inputs, _, graph = imported["masks"]
    ops_ = [n.op for n in graph.nodes]
    assert {"gt", "le", "eq", "ne", "lt", "ge", "where", "maximum", "mul"} <= set(ops_)
    # the masks stay exact 0/1 in float32 too, and where copies the chosen branch
    arrays = [t.numpy().astype(np.float32) for t in inputs]
    got = float(graph.evaluate(*arrays, backend="f32"))
    want = masks_fn(*[t.float() for t in inputs]).item()
    assert abs(got - want) <= 1e-5 * abs(want)


def test_check_and_node_report_run_on_the_indexing_loss(imported):
    _, inputs, _, graph = imported["indexing"]
    arrays = [t.numpy() for t in inputs]
    report = refrt.check(graph, *arrays, budget=1.0)
    assert report.nodes == len(graph.nodes)
    rows = refrt.node_report(graph, *arrays, backend="f32")
    ops_ = {r.op for r in rows}
    assert {"gather", "scatter_add", "embedding"} <= ops_
    assert all(r.rel <= 1e-6 for r in rows), [str(r) for r in rows]


# ------------------------------------------------------------------------ dropout
class DropMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        return self.fc(self.drop(x))                         # DROPOUT-LINE


@pytest.fixture(scope="module")
def dropout_graph():
    torch.manual_seed(9)
    module = DropMLP().double().train()
    return refrt.from_torch(module, torch.randn(4, 6, dtype=torch.float64),
                            dropout="splitmix64", seed=11)


def test_training_dropout_is_an_error_that_says_why_with_the_line():
    module = DropMLP().double().train()
    with pytest.raises(UnsupportedOpError) as info:
        refrt.from_torch(module, torch.randn(4, 6, dtype=torch.float64))
    msg = str(info.value)
    src = open(__file__).read().splitlines()
    line = next(i for i, t in enumerate(src, 1) if "# DROPOUT-LINE" in t)
    assert f"aten.native_dropout.default at {__file__}:{line}" in msg
    assert "SplitMix64" in msg and "model.eval()" in msg and "dropout='splitmix64'" in msg
    # eval mode: the identity, no dropout node
    g = refrt.from_torch(module.eval(), torch.randn(4, 6, dtype=torch.float64))
    assert [n.op for n in g.nodes] == ["linear"]


def test_splitmix64_dropout_is_refrts_mask_and_replays(dropout_graph):
    g = dropout_graph
    node = g.nodes[0]
    assert node.op == "dropout"
    assert node.params == {"p": 0.25, "seed": 11, "counter": 0, "training": True}
    x = np.random.default_rng(0).standard_normal((4, 6))
    full = g.inputs(x)
    assert np.array_equal(g.evaluate(*full), g.evaluate(*full))          # deterministic
    mask = refrt.ops.dropout(np.ones((4, 6)), p=0.25, seed=11, counter=0) != 0
    w, b = g.state["fc.weight"], g.state["fc.bias"]
    want = (np.where(mask, x / 0.75, 0.0)) @ w.T + b
    assert np.allclose(g.evaluate(*full), want, rtol=1e-14, atol=1e-15)
    with pytest.raises(refrt.errors.RefrtError, match="argument 'dropout' expected one of"):
        refrt.from_torch(DropMLP(), torch.randn(2, 6), dropout="torch")


def test_unsupported_arguments_of_the_new_rows_are_reported_with_reasons():
    def fn(x, ids):
        a = F.pad(x, (-1, 0))                                  # cropping
        b = x[x > 0].sum()                                     # bool-mask indexing
        c = (ids > 1).float().sum()                            # integer comparison
        d = ids[:2]                                            # integer slice
        e = x.max(dim=1)                                       # indices used
        f = F.embedding(ids, x, padding_idx=0)                 # padding_idx
        return a.sum() + b + c + x[0, d].sum() + e.values.sum() * e.indices.sum() + f.sum()
    with pytest.raises(UnsupportedOpError) as info:
        refrt.from_torch(AsModule(fn), torch.randn(3, 4, dtype=torch.float64),
                         torch.tensor([0, 2, 1]))
    msg = str(info.value)
    assert "negative widths crop" in msg
    assert "a_1 of dtype torch.int64 (refrt's comparisons take float arrays" in msg or \
        "self of dtype torch.int64 (refrt's comparisons take float arrays" in msg
    assert "self is an integer tensor (torch.int64)" in msg
    assert "aten.max.dim at " in msg and "(it has no argmax op)" in msg
    assert "aten.embedding.default at " in msg and "padding_idx=0" in msg
