"""Recurrent cells (issue 10, "Recurrent layers"): rnn_cell, gru_cell, lstm_cell in
PyTorch's gate layout (torch.nn.RNNCell / GRUCell / LSTMCell: weight_ih (G H, I),
weight_hh (G H, H), bias_ih, bias_hh (G H,), gates stacked in blocks of H rows: LSTM
(i, f, g, o), GRU (r, z, n)).  x is (N, I) or unbatched (I,), h and c (N, H) or (H,).

lstm_cell has two results (h', c'): the registry op returns them stacked, shape
(2, N, H); ``refrt.ops.lstm_cell`` returns the tuple (h', c'), each taken by the traced
``select`` op, so refrt.grad and the tape see both (docs/architecture.md).

TorchLean (catalog §1.9) writes the cells with one W on [x; h] and one bias: the same
function with W = [W_ih | W_hh], b = b_ih + b_hh, for RNN and LSTM.  Its GRU differs:
the candidate is n = tanh(W_n [x; r * h] + b_n) (reset applied *before* the matrix
product), PyTorch's is n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) (after, and inside
the bias).  They differ in general (r * (W_hn h) is not W_hn (r * h) unless r is constant
across the hidden units, and TorchLean's r does not scale b_hn); refrt's gru_cell is
PyTorch's form (the importer's target), and a test shows the two disagree.
The unrolled forms over a sequence are refrt.sequence.rnn / gru / lstm (traced
compositions of the cells).
"""
from __future__ import annotations

import math

from . import _shapes, _terms_recurrent as _terms
from ._spec import Arg, Case, OpSpec, Param, Tol
from ..errors import bad_value

INF, NAN = math.inf, math.nan
# gates (real-valued compositions of a Dot2 pre-activation, sigmoid/tanh and a
# compensated c' = f c + i g): see refrt/_kernels/recurrent.pyx for the error sources
CELL_TOL = Tol(float32=8, float64=8)
CELL_VJP_TOL = Tol(float32=16, float64=16)
FAMILIES = ("normal", "large_mean", "subnormal")


def cell_shape(gates, with_c=False):
    """Shape rule for a cell with ``gates`` blocks of H rows."""
    def rule(spec, arrays, params):
        if with_c:
            x, h, c, w_ih, w_hh, b_ih, b_hh = arrays
        else:
            x, h, w_ih, w_hh, b_ih, b_hh = arrays
        if x.ndim not in (1, 2):
            raise bad_value(spec.name, "x", "a 2-d (batch, input_size) or 1-d (input_size,) "
                            "array", f"shape {x.shape}")
        if h.ndim != x.ndim:
            raise bad_value(spec.name, "h", f"a {x.ndim}-d array like x ((batch, hidden) or "
                            "(hidden,))", f"shape {h.shape}")
        if x.ndim == 2 and h.shape[0] != x.shape[0]:
            raise bad_value(spec.name, "h", f"batch size {x.shape[0]} (x's)", f"shape {h.shape}")
        hid, inp = h.shape[-1], x.shape[-1]
        if with_c and c.shape != h.shape:
            raise bad_value(spec.name, "c", f"shape {h.shape} (h's)", f"shape {c.shape}")
        want = {"w_ih": (gates * hid, inp), "w_hh": (gates * hid, hid),
                "b_ih": (gates * hid,), "b_hh": (gates * hid,)}
        for name, a in zip(("w_ih", "w_hh", "b_ih", "b_hh"), (w_ih, w_hh, b_ih, b_hh)):
            if a.shape != want[name]:
                raise bad_value(spec.name, name, f"shape {want[name]} ({gates} gate blocks "
                                f"of hidden size {hid}, input size {inp})", f"shape {a.shape}")
        if spec.name == "rnn_cell" and params["nonlinearity"] not in ("tanh", "relu"):
            raise bad_value(spec.name, "nonlinearity", "'tanh' or 'relu'",
                            repr(params["nonlinearity"]))
        return ((2,) if with_c else ()) + h.shape
    return rule


def _args(with_c):
    return ((Arg("x"), Arg("h")) + ((Arg("c"),) if with_c else ())
            + (Arg("w_ih"), Arg("w_hh"), Arg("b_ih"), Arg("b_hh")))


def _shapes_for(gates, with_c, n=2, i=3, hid=2):
    return ((n, i), (n, hid)) + (((n, hid),) if with_c else ()) + (
        (gates * hid, i), (gates * hid, hid), (gates * hid,), (gates * hid,))


Z1 = ((0.0,),)
SPECS = [
    OpSpec(name="rnn_cell",
           signature="rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh, nonlinearity='tanh') -> h_next",
           kind="recurrent", args=_args(False),
           doc="torch.nn.RNNCell: act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu; "
               "the pre-activation is one compensated dot product rounded once",
           tol=CELL_TOL, vjp_tol=CELL_VJP_TOL,
           params=(Param("nonlinearity", "tanh", "str", "'tanh' or 'relu' (torch's)"),),
           vjp="u = pre-activation, du = g * act'(u) (tanh' = sech^2(u), relu'(0) = 0); "
               "x: du W_ih; h: du W_hh; w_ih: du^T x; w_hh: du^T h; b_ih, b_hh: sum(du, 0)",
           special_cases=(Case(((1.0,), (0.0,), ((1.0,),), ((1.0,),), (0.0,), (0.0,)),
                               0.7615941559557649),
                          Case(((-1.0,), (0.0,), ((1.0,),), ((1.0,),), (0.0,), (0.0,)), 0.0,
                               params={"nonlinearity": "relu"}),
                          Case(((NAN,), (0.0,), ((1.0,),), ((1.0,),), (0.0,), (0.0,)), NAN),
                          Case(((2.0 ** 60,), (1.0,), ((1.0,),), ((1.0,),), (-2.0 ** 60,),
                                (0.0,)), 0.7615941559557649,
                               note="2^60 + 1 - 2^60 inside the pre-activation: kept")),
           vjp_terms=_terms.rnn_cell, shape=cell_shape(1), families=FAMILIES, example_shapes=_shapes_for(1, False),
           torchlean="RNNSpec / rnnCellSpec (+ rnnCellBackwardSpec)"),
    OpSpec(name="lstm_cell",
           signature="lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh) -> (h_next, c_next)",
           kind="recurrent", args=_args(True),
           doc="torch.nn.LSTMCell: gates (i, f, g, o) = (s, s, tanh, s)(x W_ih^T + b_ih + "
               "h W_hh^T + b_hh), c' = f c + i g, h' = o tanh(c'); the registry result "
               "stacks (h', c') along a new first axis, refrt.ops.lstm_cell returns the pair",
           tol=CELL_TOL, vjp_tol=CELL_VJP_TOL, outputs=("h_next", "c_next"),
           vjp="dc' = g_c + g_h o sech^2(c'); d(i, f, g, o) = (dc' g, dc' c, dc' i, "
               "g_h tanh(c')) times (s s(-), s s(-), sech^2, s s(-)) of the pre-activations "
               "= du; c: dc' f; x: du W_ih; h: du W_hh; w_ih: du^T x; w_hh: du^T h; "
               "b_ih, b_hh: sum(du, 0)",
           special_cases=(Case(((0.0,), (0.0,), (2.0,), Z1 * 4, Z1 * 4, (0.0,) * 4,
                                (0.0,) * 4), 0.5 * math.tanh(1.0),
                               note="gates 1/2, g = 0: c' = c / 2 = 1, h' = tanh(1) / 2"),
                          Case(((0.0,), (0.0,), (NAN,), Z1 * 4, Z1 * 4, (0.0,) * 4,
                                (0.0,) * 4), NAN),
                          Case(((0.0,), (0.0,), (1.0,), Z1 * 4, Z1 * 4,
                                (0.0, -INF, 0.0, INF), (0.0,) * 4), 0.0,
                               note="f = 0, g = 0: c' = 0, h' = tanh(0) = 0")),
           vjp_terms=_terms.lstm_cell, shape=cell_shape(4, with_c=True), families=FAMILIES,
           example_shapes=_shapes_for(4, True),
           torchlean="LSTMSpec / lstmCellSpec (+ lstmCellBackwardSpec); TorchLean's 4 "
                     "matrices on [x; h] = [W_ih | W_hh] per gate"),
    OpSpec(name="gru_cell", signature="gru_cell(x, h, w_ih, w_hh, b_ih, b_hh) -> h_next",
           kind="recurrent", args=_args(False),
           doc="torch.nn.GRUCell: r, z = s(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z}), "
               "n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)), h' = (1 - z) n + z h "
               "(PyTorch's form; TorchLean's gruCellSpec applies r before W_hn, see the "
               "module docstring)",
           tol=CELL_TOL, vjp_tol=CELL_VJP_TOL,
           vjp="dn = g (1 - z), d n_pre = dn sech^2(n_pre), du_z = g (h - n) s s(-), "
               "du_r = d n_pre n_h s s(-); x: [du_r, du_z, d n_pre] W_ih; h: [du_r, du_z, "
               "r d n_pre] W_hh + g z; weights: outer products; biases: column sums",
           special_cases=(Case(((0.0,), (2.0,), Z1 * 3, Z1 * 3, (0.0,) * 3, (0.0,) * 3), 1.0,
                               note="r = z = 1/2, n = 0: h' = h / 2"),
                          Case(((0.0,), (2.0,), Z1 * 3, Z1 * 3, (0.0, INF, 0.0), (0.0,) * 3),
                               2.0, note="z = 1: h' = h"),
                          Case(((NAN,), (2.0,), ((1.0,),) * 3, Z1 * 3, (0.0,) * 3,
                                (0.0,) * 3), NAN)),
           vjp_terms=_terms.gru_cell, shape=cell_shape(3), families=FAMILIES, example_shapes=_shapes_for(3, False),
           conventions="PyTorch's candidate r * (W_hn h + b_hn); TorchLean's is "
                       "W_n [x; r * h] + b_n",
           torchlean="GRUSpec / gruCellSpec (differs: reset before the matrix product)"),
]
