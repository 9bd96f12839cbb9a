"""Issue 10's indexing, recurrent and "other" ops against torch float64 (forward and
autograd), dropout's SplitMix64 stream against the catalog, multi-output cells through
the tape, bad input, and the reproducers of the two open hunt cases."""
import math

import numpy as np
import pytest

import refrt
from refrt import ops, oracle, sequence
from refrt.errors import RefrtError, RefrtTypeError
from refrt.metrics import ulp_distance
from refrt.registry import OPS

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
F64 = np.float64


def T(a, grad=False):
    t = torch.tensor(np.asarray(a), dtype=torch.float64)
    return t.requires_grad_(grad)


def close(got, want, rtol=1e-13, atol=1e-15):
    np.testing.assert_allclose(np.asarray(got, F64), np.asarray(want, F64), rtol=rtol, atol=atol)


def _params(cell):
    return [p.detach().numpy().copy() for p in (cell.weight_ih, cell.weight_hh,
                                                 cell.bias_ih, cell.bias_hh)]


# ---- cells against torch.nn.*Cell ------------------------------------------------------

N, I, H = 3, 4, 5


@pytest.fixture
def xh():
    rng = np.random.default_rng(7)
    return (rng.standard_normal((N, I)), rng.standard_normal((N, H)),
            rng.standard_normal((N, H)))


def _cell_grads(fn, arrays, g):
    """refrt's gradients of <fn(arrays), g> through the tape (refrt.vjp)."""
    out, vjp_fn = refrt.vjp(fn, *arrays)
    return out, (vjp_fn(*g) if isinstance(g, tuple) else vjp_fn(g))


def test_lstm_cell_matches_torch(xh):
    x, h, c = xh
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(I, H).double()
    w = _params(cell)
    tx, th, tc = T(x, True), T(h, True), T(c, True)
    hn, cn = cell(tx, (th, tc))
    gh, gc = np.random.default_rng(1).standard_normal((2, N, H))
    (hn * T(gh) + cn * T(gc)).sum().backward()
    rh, rc = ops.lstm_cell(x, h, c, *w)
    close(rh, hn.detach()), close(rc, cn.detach())
    fn = lambda x, h, c, a, b, d, e: ops.lstm_cell(x, h, c, a, b, d, e)
    _, grads = _cell_grads(fn, [x, h, c, *w], (gh, gc))
    want = [tx.grad, th.grad, tc.grad] + [p.grad for p in (cell.weight_ih, cell.weight_hh,
                                                           cell.bias_ih, cell.bias_hh)]
    for got, ref in zip(grads, want):
        close(got, ref, rtol=1e-12, atol=1e-14)


def test_gru_cell_matches_torch(xh):
    x, h, _ = xh
    torch.manual_seed(1)
    cell = torch.nn.GRUCell(I, H).double()
    w = _params(cell)
    tx, th = T(x, True), T(h, True)
    out = cell(tx, th)
    g = np.random.default_rng(2).standard_normal((N, H))
    (out * T(g)).sum().backward()
    close(ops.gru_cell(x, h, *w), out.detach())
    _, grads = _cell_grads(lambda *a: ops.gru_cell(*a), [x, h, *w], g)
    want = [tx.grad, th.grad] + [p.grad for p in (cell.weight_ih, cell.weight_hh,
                                                  cell.bias_ih, cell.bias_hh)]
    for got, ref in zip(grads, want):
        close(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell_matches_torch(xh, nonlinearity):
    x, h, _ = xh
    torch.manual_seed(2)
    cell = torch.nn.RNNCell(I, H, nonlinearity=nonlinearity).double()
    w = _params(cell)
    tx, th = T(x, True), T(h, True)
    out = cell(tx, th)
    g = np.random.default_rng(3).standard_normal((N, H))
    (out * T(g)).sum().backward()
    close(ops.rnn_cell(x, h, *w, nonlinearity=nonlinearity), out.detach())
    _, grads = _cell_grads(lambda *a: ops.rnn_cell(*a, nonlinearity=nonlinearity), [x, h, *w], g)
    for got, ref in zip(grads, [tx.grad, th.grad, cell.weight_ih.grad, cell.weight_hh.grad,
                                cell.bias_ih.grad, cell.bias_hh.grad]):
        close(got, ref, rtol=1e-12, atol=1e-14)


def test_unbatched_cells(xh):
    x, h, c = xh
    torch.manual_seed(3)
    cell = torch.nn.LSTMCell(I, H).double()
    hn, cn = cell(T(x[0]), (T(h[0]), T(c[0])))
    rh, rc = ops.lstm_cell(x[0], h[0], c[0], *_params(cell))
    assert rh.shape == (H,)
    close(rh, hn.detach()), close(rc, cn.detach())


def test_gru_differs_from_torchlean_form(xh):
    """TorchLean's gruCellSpec: n = tanh(W_n [x; r * h] + b_n) (catalog §1.9, §6.1.11);
    PyTorch's: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).  refrt is PyTorch's."""
    x, h, _ = xh
    torch.manual_seed(4)
    cell = torch.nn.GRUCell(I, H).double()
    w_ih, w_hh, b_ih, b_hh = _params(cell)
    sig = lambda u: 1 / (1 + np.exp(-u))
    r = sig(x @ w_ih[:H].T + b_ih[:H] + h @ w_hh[:H].T + b_hh[:H])
    z = sig(x @ w_ih[H:2 * H].T + b_ih[H:2 * H] + h @ w_hh[H:2 * H].T + b_hh[H:2 * H])
    n_tl = np.tanh(x @ w_ih[2 * H:].T + (r * h) @ w_hh[2 * H:].T + b_ih[2 * H:] + b_hh[2 * H:])
    torchlean = (1 - z) * n_tl + z * h
    got = ops.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)
    close(got, cell(T(x), T(h)).detach())
    assert np.abs(got - torchlean).max() > 1e-3


def test_lstm_cell_two_outputs_through_the_tape(xh):
    """ops.lstm_cell returns (h', c') as select nodes of the stacked registry result, so
    refrt.grad sees both: a loss of c' only still reaches c through f."""
    x, h, c = xh
    torch.manual_seed(5)
    cell = torch.nn.LSTMCell(I, H).double()
    w = _params(cell)

    def loss(c0):
        hn, cn = ops.lstm_cell(x, h, c0, *w)
        return ops.sum(ops.mul(cn, cn))

    g = refrt.grad(loss)(c)
    tc = T(c, True)
    _, cn = cell(T(x), (T(h), tc))
    (cn * cn).sum().backward()
    close(g, tc.grad, rtol=1e-12)
    graph = refrt.trace(lambda c0: ops.lstm_cell(x, h, c0, *w), c)
    assert [n.op for n in graph.nodes] == ["lstm_cell", "select", "select"]


# ---- unrolled forms against torch.nn.LSTM / GRU / RNN ----------------------------------

@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_unrolled_matches_torch(kind):
    Tn = 4
    rng = np.random.default_rng(11)
    x = rng.standard_normal((Tn, N, I))
    h0 = rng.standard_normal((1, N, H))
    c0 = rng.standard_normal((1, N, H))
    torch.manual_seed(6)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](I, H).double()
    w = [p.detach().numpy().copy() for p in (mod.weight_ih_l0, mod.weight_hh_l0,
                                             mod.bias_ih_l0, mod.bias_hh_l0)]
    tx = T(x, True)
    if kind == "lstm":
        out, (hT, cT) = mod(tx, (T(h0), T(c0)))
        rout, (rh, rc) = sequence.lstm(x, h0[0], c0[0], *w)
        close(rc, cT[0].detach(), rtol=1e-12)
    else:
        out, hT = mod(tx, T(h0))
        rout, rh = getattr(sequence, kind)(x, h0[0], *w)
    close(rout, out.detach(), rtol=1e-12), close(rh, hT[0].detach(), rtol=1e-12)
    # gradient of sum(outputs^2) w.r.t. the input sequence, through the tape
    (out * out).sum().backward()

    def loss(xs):
        o = (sequence.lstm(xs, h0[0], c0[0], *w)[0] if kind == "lstm"
             else getattr(sequence, kind)(xs, h0[0], *w)[0])
        return ops.sum(ops.mul(o, o))

    close(refrt.grad(loss)(x), tx.grad, rtol=1e-11, atol=1e-13)


def test_cat_and_stack():
    a, b, c = np.ones((2, 3)), np.zeros((1, 3)), np.full((3, 3), 2.0)
    np.testing.assert_array_equal(sequence.cat([a, b, c]), np.concatenate([a, b, c]))
    np.testing.assert_array_equal(sequence.stack([a, a], axis=1), np.stack([a, a], axis=1))


# ---- indexing against torch ------------------------------------------------------------

def test_embedding_forward_and_scatter_add_backward():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3))
    ids = np.array([[1, 4, 1], [0, 1, 5]])
    g = rng.standard_normal((2, 3, 3))
    tw = T(w, True)
    out = torch.nn.functional.embedding(torch.tensor(ids), tw)
    (out * T(g)).sum().backward()
    assert np.array_equal(ops.embedding(ids, w), out.detach().numpy())
    _, vjp_fn = refrt.vjp(lambda w_: ops.embedding(ids, w_), w)
    close(vjp_fn(g)[0], tw.grad)
    assert ops.embedding(ids.astype(np.int32), w).shape == (2, 3, 3)


def test_gather_scatter_add_match_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5))
    idx = rng.integers(0, 4, (3, 5))
    src = rng.standard_normal((3, 5))
    tx, ts = T(x, True), T(src, True)
    for axis in (0, 1):
        ii = idx if axis == 0 else rng.integers(0, 5, (4, 2))
        want = torch.gather(tx, axis, torch.tensor(ii))
        assert np.array_equal(ops.gather(x, ii, axis=axis), want.detach().numpy())
    y = torch.scatter_add(tx, 0, torch.tensor(idx), ts)
    close(ops.scatter_add(x, idx, src, axis=0), y.detach())
    g = rng.standard_normal(y.shape)
    (y * T(g)).sum().backward()
    _, vjp_fn = refrt.vjp(lambda a, s: ops.scatter_add(a, idx, s, axis=0), x, src)
    gx, gs = vjp_fn(g)
    close(gx, tx.grad), close(gs, ts.grad)
    tx.grad = None
    yg = torch.gather(tx, 0, torch.tensor(idx))
    (yg * T(src)).sum().backward()
    _, vjp_fn = refrt.vjp(lambda a: ops.gather(a, idx, axis=0), x)
    close(vjp_fn(src)[0], tx.grad)


def test_scatter_add_is_exact_where_torch_rounds():
    """Each slot is one exact sum rounded once: x + 1 - x keeps the 1 (torch's sequential
    adds lose it), whatever the order."""
    x = np.array([2.0 ** 60, 0.0])
    idx = np.array([0, 0, 0])
    src = np.array([1.0, -2.0 ** 60, 0.5])
    assert ops.scatter_add(x, idx, src).tolist() == [1.5, 0.0]
    t = torch.scatter_add(T(x), 0, torch.tensor(idx), T(src))
    assert t.tolist() != [1.5, 0.0]


def test_shape_ops_match_torch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    tx = torch.tensor(x)
    assert np.array_equal(ops.select(x, axis=1, index=-1), torch.select(tx, 1, -1).numpy())
    assert np.array_equal(ops.slice(x, axis=2, start=1, end=-1, step=2), tx[:, :, 1:-1:2].numpy())
    assert np.array_equal(ops.permute(x, dims=(2, 0, 1)), tx.permute(2, 0, 1).numpy())
    assert np.array_equal(ops.pad(x, pad=(1, 2, 0, 1), value=-3.0),
                          torch.nn.functional.pad(tx, (1, 2, 0, 1), value=-3.0).numpy())


def test_comparisons_match_torch_and_differ_from_torchlean_on_nan():
    x = np.array([1.0, 2.0, np.nan, -0.0, np.inf])
    y = np.array([2.0, 2.0, 1.0, 0.0, np.inf])
    tx, ty = torch.tensor(x), torch.tensor(y)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        want = getattr(torch, name)(tx, ty).double().numpy()
        assert np.array_equal(getattr(ops, name)(x, y), want), name
    # TorchLean's lessEqualSpec = not(x > y) is true at NaN; refrt (IEEE, torch) is not
    assert ops.le(np.array([np.nan]), np.array([1.0]))[0] == 0.0
    assert (not (math.nan > 1.0)) is True


def test_batched_linear():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4))
    w, b = rng.standard_normal((5, 4)), rng.standard_normal(5)
    close(ops.linear(x, w, b), torch.nn.functional.linear(T(x), T(w), T(b)).detach())


@pytest.mark.parametrize("shapes", [((2, 3, 4, 5), (2, 3, 5, 2)), ((2, 3, 4, 5), (5, 2)),
                                    ((3, 4, 5), (3, 5, 2))])
def test_batched_matmul(shapes):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    ta, tb = T(a, True), T(b, True)
    out = torch.matmul(ta, tb)
    close(ops.matmul(a, b), out.detach())
    g = rng.standard_normal(out.shape)
    (out * T(g)).sum().backward()
    _, vjp_fn = refrt.vjp(lambda p, q: ops.matmul(p, q), a, b)
    ga, gb = vjp_fn(g)
    close(ga, ta.grad, rtol=1e-12), close(gb, tb.grad, rtol=1e-12)
    want = oracle.matmul(a, b, dtype=F64)
    assert ulp_distance(ops.matmul(a, b), want, F64).max() <= OPS["matmul"].tol.float64


# ---- dropout: SplitMix64 bit-exact with the catalog --------------------------------------

M64 = (1 << 64) - 1


def splitmix64_ref(x):
    """Catalog §1.11, written out in Python integers."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def test_splitmix64_reference_values():
    from refrt._kernels import misc
    # Vigna's SplitMix64 seeded with 0: the first outputs are splitmix64(k * golden)
    golden = 0x9E3779B97F4A7C15
    assert misc.splitmix64(0) == 0xE220A8397B1DCDAF
    assert misc.splitmix64(golden) == 0x6E789E6AA1B965F4
    assert misc.splitmix64((2 * golden) & M64) == 0x06C45D188009454F
    for v in (1, 12345, 2 ** 63, M64, 0xDEADBEEF):
        assert misc.splitmix64(v) == splitmix64_ref(v)


@pytest.mark.parametrize("seed,counter,p", [(0, 0, 0.5), (42, 3, 0.1), (2 ** 64 - 1, 7, 0.9)])
def test_dropout_mask_is_the_catalogs(seed, counter, p, dtype):
    n = 257
    key = splitmix64_ref((seed + counter) & M64)
    keep = [(1.0 - p) > (splitmix64_ref((key + i) & M64) % 2 ** 32) / 2 ** 32
            for i in range(n)]
    x = np.linspace(-3, 3, n).astype(dtype)
    y = ops.dropout(x, p=p, seed=seed, counter=counter)
    scale = max(dtype.type(1) - dtype.type(p), dtype.type(1e-6))
    want = np.where(keep, x / scale, 0).astype(dtype)
    assert np.array_equal(y, want)
    assert np.array_equal(y != 0, np.array(keep) & (x != 0))


def test_dropout_replays_identically_in_a_graph():
    x = np.random.default_rng(5).standard_normal((4, 8))
    f = lambda a: ops.dropout(ops.tanh(a), p=0.3, seed=9, counter=1)
    g = refrt.trace(f, x)
    first = g.evaluate(x, backend="f64")
    assert np.array_equal(first, g.evaluate(x, backend="f64"))
    assert np.array_equal(first, f(x))
    mp = g.evaluate(x, backend="mp")
    assert np.array_equal(np.asarray(mp, F64) == 0, first == 0)
    gx = refrt.grad(lambda a: ops.sum(f(a)))(x)
    assert np.array_equal(gx == 0, first == 0)


# ---- positional encoding, RoPE, GCN against direct formulas / torch -----------------------

def test_positional_encoding_and_rope_formulas():
    L, D = 5, 6
    x = np.random.default_rng(6).standard_normal((L, D))
    pos = np.arange(L)[:, None] + 2
    j = np.arange(D)[None, :]
    ang = pos / np.exp(np.log(10000.0) * (2 * (j // 2) / D))
    pe = np.where(j % 2 == 0, np.sin(ang), np.cos(ang))
    close(ops.positional_encoding(x, start=2), x + pe, rtol=1e-14, atol=1e-15)
    rot = np.empty_like(x)
    rot[:, 0::2], rot[:, 1::2] = -x[:, 1::2], x[:, 0::2]
    close(ops.rope(x, start=2), x * np.cos(ang) + rot * np.sin(ang), rtol=1e-13, atol=1e-14)
    x7 = np.random.default_rng(7).standard_normal((3, 7))     # odd head dim: last kept
    a7 = (np.arange(3)[:, None]) / np.exp(np.log(10000.0) * (2 * (np.arange(7) // 2) / 7))
    close(ops.rope(x7)[:, -1], x7[:, -1] * (np.cos(a7[:, -1]) + np.sin(a7[:, -1])))


def test_gcn_layer_matches_torch():
    rng = np.random.default_rng(8)
    a, x = rng.random((5, 5)), rng.standard_normal((5, 3))
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    ts = [T(v, True) for v in (a, x, w, b)]
    out = ts[0] @ ts[1] @ ts[2] + ts[3]
    close(ops.gcn_layer(a, x, w, b), out.detach())
    g = rng.standard_normal(out.shape)
    (out * T(g)).sum().backward()
    _, vjp_fn = refrt.vjp(lambda *v: ops.gcn_layer(*v), a, x, w, b)
    for got, t in zip(vjp_fn(g), ts):
        close(got, t.grad, rtol=1e-12)


# ---- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("call,words", [
    (lambda: ops.embedding(np.array([0, 6]), np.ones((6, 2))),
     ["embedding", "'ids'", "[0, 6)", "index 6"]),
    (lambda: ops.embedding(np.array([-1]), np.ones((6, 2))), ["embedding", "'ids'", "index -1"]),
    (lambda: ops.embedding(np.array([0.0]), np.ones((6, 2))),
     ["embedding", "'ids'", "integer index array", "float64"]),
    (lambda: ops.embedding(np.array([0]), np.ones(6)), ["embedding", "'weight'", "2-d"]),
    (lambda: ops.gather(np.ones((3, 4)), np.array([[5]]), axis=1),
     ["gather", "'index'", "[0, 4)", "index 5"]),
    (lambda: ops.gather(np.ones((3, 4)), np.array([1]), axis=1), ["gather", "'index'", "rank"]),
    (lambda: ops.gather(np.ones((3, 4)), np.array([[1]]), axis=2), ["gather", "'axis'"]),
    (lambda: ops.scatter_add(np.ones((3, 4)), np.array([[1, 1]]), np.ones((1, 1)), axis=1),
     ["scatter_add", "'index'", "src.shape[1]"]),
    (lambda: ops.select(np.ones((3, 4)), axis=0, index=3), ["select", "'index'", "[-3, 3)"]),
    (lambda: ops.slice(np.ones(3), step=0), ["slice", "'step'", ">= 1"]),
    (lambda: ops.permute(np.ones((2, 3)), dims=(0, 0)), ["permute", "'dims'", "permutation"]),
    (lambda: ops.pad(np.ones(3), pad=(1,)), ["pad", "'pad'", "even-length"]),
    (lambda: ops.pad(np.ones(3), mode="reflect"), ["pad", "'mode'", "'constant'"]),
    (lambda: ops.lstm_cell(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 4)), np.ones((16, 3)),
                           np.ones((16, 4)), np.ones(16), np.ones(15)),
     ["lstm_cell", "'b_hh'", "(16,)", "(15,)"]),
    (lambda: ops.gru_cell(np.ones((2, 3)), np.ones((3, 4)), np.ones((12, 3)), np.ones((12, 4)),
                          np.ones(12), np.ones(12)), ["gru_cell", "'h'", "batch size 2"]),
    (lambda: ops.rnn_cell(np.ones(3), np.ones(4), np.ones((4, 3)), np.ones((4, 4)), np.ones(4),
                          np.ones(4), nonlinearity="sigmoid"), ["rnn_cell", "'nonlinearity'"]),
    (lambda: ops.dropout(np.ones(3), p=1.5), ["dropout", "'p'", "[0, 1]"]),
    (lambda: ops.dropout(np.ones(3), seed=-1), ["dropout", "'seed'", "2^64"]),
    (lambda: ops.gcn_layer(np.ones((3, 2)), np.ones((3, 2)), np.ones((2, 2)), np.ones(2)),
     ["gcn_layer", "'adj'", "square"]),
    (lambda: ops.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 5))), ["matmul", "'b'", "batch"]),
])
def test_bad_input_names_op_argument_expected_and_got(call, words):
    with pytest.raises((RefrtError, RefrtTypeError)) as err:
        call()
    msg = str(err.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "expected" in msg and "got" in msg


# ---- interval transformers: sampled soundness ----------------------------------------------

@pytest.mark.parametrize("name", ["embedding", "gather", "scatter_add", "select", "slice",
                                  "permute", "pad", "lt", "eq", "ne", "rnn_cell", "gru_cell",
                                  "lstm_cell", "dropout", "positional_encoding", "rope",
                                  "gcn_layer"])
def test_interval_transformer_contains_samples(name):
    from refrt import families
    from refrt.analysis.domain import ATensor
    from refrt.analysis.transfer import INTERVAL
    from refrt._prepare import prepare
    spec = OPS[name]
    arrays, params = families.generate(spec, "normal", F64, 0)
    prepared, full, _, shape = prepare(spec, arrays, params)
    rng = np.random.default_rng(0)
    boxes = []
    for a in prepared:
        if a.dtype.kind in "iu":
            boxes.append((a, a))
        else:
            r = np.abs(a) * 0.1 + 0.1
            boxes.append((a - r, a + r))
    ins = [ATensor(lo.astype(F64), hi.astype(F64), point=lo if lo.dtype.kind in "iu" else None)
           for lo, hi in boxes]
    lo, hi, nan = (np.asarray(v) for v in INTERVAL[name](ins, dict(full), shape)[:3])
    for _ in range(20):
        pt = [lo_ if lo_.dtype.kind in "iu" else lo_ + rng.random(lo_.shape) * (hi_ - lo_)
              for lo_, hi_ in boxes]
        y = np.asarray(ops.evaluate(name, *pt, **params), F64)
        slack = 1e-9 * (1 + np.abs(y))
        assert np.all((y >= lo - slack) & (y <= hi + slack) | nan), name


# ---- the two open hunt cases (tests/test_hunt.py KNOWN) -------------------------------------

@pytest.mark.xfail(strict=True, reason="open (issue 10 note): A X overflows to inf where its "
                   "real value exceeds the format, though A X W + b is finite")
def test_hunt_gcn_layer_intermediate_overflow():
    f = np.float32
    big = np.float32(3.4028234663852886e+38)
    a = np.array([[1.0, 1.0], [0.0, 1.0]], f)
    x = np.array([[big], [big]], f)
    w = np.array([[2.0 ** -10]], f)
    b = np.array([0.0], f)
    got = ops.gcn_layer(a, x, w, b)
    want = oracle.gcn_layer(a, x, w, b, dtype=f)
    assert ulp_distance(got, want, f).max() <= OPS["gcn_layer"].tol["float32"]


@pytest.mark.xfail(strict=True, reason="open (issue 10 note): x + PE with x close to -PE "
                   "exposes the ~10 u error of the binary64 angle table")
def test_hunt_positional_encoding_cancellation():
    pe = ops.positional_encoding(np.zeros((8, 8)), start=100)
    x = -pe + np.array(pe) * 1e-6
    got = ops.positional_encoding(x, start=100)
    want = oracle.positional_encoding(x, start=100, dtype=F64)
    assert ulp_distance(got, want, F64).max() <= OPS["positional_encoding"].tol["float64"]


# ---- the differential tester's torch rows ----------------------------------------------------

NEW_OPS = ["embedding", "gather", "scatter_add", "select", "slice", "permute", "pad", "eq", "ne",
           "lt", "le", "gt", "ge", "rnn_cell", "lstm_cell", "gru_cell", "dropout",
           "positional_encoding", "rope", "gcn_layer"]


@pytest.mark.parametrize("name", NEW_OPS)
def test_torch_adapter_row_agrees_with_refrt(name):
    from refrt import families
    from refrt.difftest.adapters import torch as TA
    ad = TA.make()
    entry = ad.entries[name]
    arrays, params = families.generate(OPS[name], "normal", F64, 0)
    out = entry.fn(*[ad.to_backend(a, "float64") for a in arrays],
                   **{k: params[k] for k in entry.params})
    close(ad.to_numpy(out), ops.evaluate(name, *arrays, **params), rtol=1e-12, atol=1e-13)


@pytest.mark.xfail(strict=True, reason="open (issue 10 note): n_h overflows to inf and r "
                   "underflows to 0, so r * n_h = NaN where the real candidate is finite")
def test_hunt_gru_cell_intermediate_overflow():
    f = np.float32
    arrays = [np.array(a, f) for a in [[[-1.0000001192092896, -0.0, -88.72286224365234],
                                    [-88.72283935546875, 2319038332010496.0, -3.4028234663852886e+38]],
                                   [[100001.1015625, 99997.640625], [99997.578125, 99999.96875]],
                                   [[-1.1754939304327482e-38, -0.5, -1.1920927533992653e-07],
                                    [-88.72282409667969, 5.605193857299268e-45, -1.1754943508222875e-38],
                                    [1.1920928955078125e-07, 1.9999996423721313, -1.1754943508222875e-38],
                                    [-1.1920928955078125e-07, -87.3365478515625, 6.103515625e-05],
                                    [-108.72283935546875, -3.5975412722958336e+16, -108.72281646728516],
                                    [7.053976548042342e+16, 108.72283172607422, -87.3365249633789]],
                                   [[1.7014117331926443e+38, -1.7014117331926443e+38],
                                    [-1.7014117331926443e+38, 1.7014117331926443e+38],
                                    [1.7014117331926443e+38, -1.7014117331926443e+38],
                                    [-3.4028234663852886e+38, 3.4028234663852886e+38],
                                    [-1.7014117331926443e+38, 1.7014117331926443e+38],
                                    [-1.7014117331926443e+38, 1.7014117331926443e+38]],
                                   [3.4028234663852886e+38, -9566018523365376.0, 2.0, -0.9999899864196777,
                                    -1.1920927533992653e-07, 0.5],
                                   [-1.4012998656232814e-39, -1.6114932339735396e-43, -4.091791515828466e-43,
                                    4.988622532996349e-43, 9.612907465268245e-43, -6.908401429121348e-43]]]
    got = ops.gru_cell(*arrays)
    want = oracle.gru_cell(*arrays, dtype=f)
    assert ulp_distance(got, want, f).max() <= OPS["gru_cell"].tol["float32"]



# The default hunt under hypothesis 6.170 (CI's version) drew this lstm_cell input: the
# float32 gradients of the forget-gate rows are 43-49 ulp from the exact ones, all of it
# the float32 rounding of the pre-activation u = 108.27 moving sigmoid'(u) = e^-u (a
# relative change of |u| times u's rounding error).  The budget allows that
# (_terms_recurrent.SP: sigmoid' (1 + U |sigmoid''/sigmoid'|)), but its float64 sigmoid
# rounded 1 - s to 0 for u > 37 and gave a zero budget; fixed, so the case passes.
_LSTM_HUNT_CASE = [[[1.9999996423721313, 0.0, 1.1754943508222875e-38], [5.605193857299268e-45, 1.899999976158142, -108.72283935546875]], [[-1.1920928955078125e-07, -108.72286224365234], [1.1920928244535389e-07, -1.401298464324817e-45]], [[87.3365478515625, 5.605193857299268e-45], [-88.72283935546875, 3.4028232635611926e+38]], [[1.1754942106924411e-38, 1.1754936501730553e-38, 1.401298464324817e-45], [-108.72283935546875, -108.72283935546875, -1.0], [1.0, 2.802596928649634e-45, 2.0038625186021376e+16], [0.0, -0.5, -1.0], [-0.0, 2.0000009536743164, 108.72284698486328], [-1.1754943508222875e-38, 3.4028232635611926e+38, 2.5545172691451904e+16], [-1.1754942106924411e-38, -0.5, 1.401298464324817e-45], [2.802596928649634e-45, 0.0, 1.1920928955078125e-07]], [[5.707800223993037e+16, -1.0], [-0.0, -0.0], [0.0, 1.0], [0.0, 108.72283935546875], [-2.451901266264064e+16, 2.0], [0.9999998211860657, -5.109530607013069e+16], [1.1754939304327482e-38, 108.72283935546875], [-4563633069621248.0, -88.72286987304688]], [1.0, 88.72283935546875, 0.0, 0.5000000596046448, 0.0, -1.175494490952134e-38, -1.1754949113416732e-38, 5.580043080267126e-22], [-0.9999999403953552, -2.220446049250313e-16, 0.5, -2.802596928649634e-45, -1.0, -1.401298464324817e-45, 1.1920927533992653e-07, -2.000000238418579]]


def test_lstm_cell_float32_vjp_on_the_hunt_input():
    from refrt.autodiff import vjp_errors, vjp_tolerance
    from refrt.registry import OPS
    spec = OPS["lstm_cell"]
    arrays = [np.array(a, np.float32) for a in _LSTM_HUNT_CASE]
    res = vjp_errors(spec, arrays, {}, np.dtype(np.float32), key="hunt")
    ulps, _ = vjp_tolerance(spec, np.float32)
    assert max(model for _, model in res.values()) <= ulps, res
