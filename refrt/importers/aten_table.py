"""The ATen -> refrt mapping used by ``refrt.from_torch``: one row per ATen overload.

A row is data: the refrt op, which ATen arguments become its arrays (in refrt's order)
and parameters, the argument values refrt supports (``require``: anything else is
reported as unsupported, with the reason), and for the few ATen ops that are not one
refrt op, the name of a lowering in ``torch_export.LOWERINGS`` (broadcasting, views,
several reduced dims, the unrolled LSTM).  Conventions that differ between PyTorch and
refrt are passed explicitly (``eps`` comes from the ATen call, never refrt's default;
``reduction`` must be the mean that the refrt loss computes).

``preserved`` ops are kept as they are when ``torch.export``'s program is lowered to
Core ATen (``run_decompositions``), because refrt has a fused, stable kernel for them
(``cross_entropy`` instead of ``log_softmax`` + ``gather`` + a masked mean, ``linear``
with a compensated dot instead of ``permute`` + ``addmm``).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fixed:
    """A refrt parameter set to a constant (not read from the ATen call)."""
    value: object


@dataclass(frozen=True)
class Row:
    aten: str                      # overload name, str(node.target): "aten.linear.default"
    op: str                        # refrt op (the lowering's main op for lowered rows)
    arrays: tuple = ("self",)      # ATen argument names -> refrt's positional arrays
    params: dict = field(default_factory=dict)    # refrt param -> ATen arg name or Fixed
    require: dict = field(default_factory=dict)   # ATen arg -> tuple of supported values
    lower: str = ""                # a lowering in torch_export.LOWERINGS
    needs: tuple = ()              # registry ops the row needs besides ``op``
    preserved: bool = False        # kept by run_decompositions (see the module docstring)
    convention: str = ""

    @property
    def ops(self):
        return (self.op,) + tuple(self.needs)


def _unary(aten, op, **kw):
    return Row(aten, op, **kw)


def _binary(aten, op, **kw):
    return Row(aten, op, arrays=("self", "other"), lower="elementwise", **kw)


MEAN = (1,)          # at::Reduction::Mean
DROPOUT = ("eval mode (train=False) or p=0: the identity.  Training mode is an error: "
           "torch's mask comes from torch's generator and refrt's dropout is TorchLean's "
           "SplitMix64 mask, which cannot match it; from_torch(..., dropout='splitmix64') "
           "maps it to refrt's dropout (seed=, counter = the call's position), a different "
           "mask")

ROWS = [
    # -- elementwise ------------------------------------------------------------------
    _binary("aten.add.Tensor", "add", require={"alpha": (1,)}),
    _binary("aten.add.Scalar", "add", require={"alpha": (1,)}),
    _binary("aten.sub.Tensor", "sub", require={"alpha": (1,)}),
    _binary("aten.sub.Scalar", "sub", require={"alpha": (1,)}),
    _binary("aten.rsub.Scalar", "sub", require={"alpha": (1,)},
            convention="other - self"),
    _binary("aten.mul.Tensor", "mul", convention="tensor * Python number -> scale"),
    _binary("aten.mul.Scalar", "mul"),
    _binary("aten.div.Tensor", "div", convention="tensor / Python number -> scale(1/c) "
            "only when 1/c is exact (a power of two), else div by a constant"),
    _binary("aten.div.Scalar", "div"),
    _binary("aten.maximum.default", "maximum"),
    _binary("aten.minimum.default", "minimum"),
    Row("aten.pow.Tensor_Tensor", "pow", arrays=("self", "exponent"), lower="elementwise"),
    Row("aten.pow.Tensor_Scalar", "pow", arrays=("self", "exponent"), lower="power",
        needs=("square",), convention="exponent 2 -> square (exact x*x), else pow"),
    Row("aten.where.self", "where", arrays=("condition", "self", "other"),
        lower="elementwise"),
    _unary("aten.neg.default", "neg"),
    _unary("aten.abs.default", "abs"),
    _unary("aten.sign.default", "sign"),
    _unary("aten.exp.default", "exp"),
    _unary("aten.log.default", "log"),
    _unary("aten.log1p.default", "log1p"),
    _unary("aten.expm1.default", "expm1"),
    _unary("aten.sqrt.default", "sqrt", convention="refrt's sqrt is IEEE (NaN below 0); "
           "TorchLean's clamped sqrtSpec is sqrt_clamp"),
    Row("aten.rsqrt.default", "inv", lower="chain", needs=("sqrt",),
        params={"ops": Fixed(("sqrt", "inv"))}, convention="1 / sqrt(x), two roundings"),
    _unary("aten.reciprocal.default", "inv"),
    _unary("aten.square.default", "square"),
    _unary("aten.sin.default", "sin"),
    _unary("aten.cos.default", "cos"),
    _unary("aten.erf.default", "erf"),
    _unary("aten.relu.default", "relu"),
    _unary("aten.sigmoid.default", "sigmoid"),
    _unary("aten.tanh.default", "tanh"),
    _unary("aten.sinh.default", "sinh"),
    _unary("aten.cosh.default", "cosh"),
    _unary("aten.silu.default", "silu"),
    _unary("aten.log_sigmoid.default", "log_sigmoid", preserved=True),
    Row("aten.gelu.default", "gelu_erf", lower="gelu", needs=("gelu",),
        convention="approximate='none' -> gelu_erf, 'tanh' -> gelu (TorchLean's form)"),
    _unary("aten.softplus.default", "softplus", require={"beta": (1,)},
           convention="refrt computes softplus exactly; PyTorch returns x above "
           "x > threshold (20), a relative difference below 2.1e-9 there"),
    _unary("aten.elu.default", "elu", params={"alpha": "alpha"},
           require={"scale": (1,), "input_scale": (1,)}),
    _unary("aten.leaky_relu.default", "leaky_relu",
           params={"negative_slope": "negative_slope"}),
    Row("aten.hardtanh.default", "clamp", params={"lo": "min_val", "hi": "max_val"}),
    Row("aten.clamp.default", "clamp", lower="clamp", needs=("maximum", "minimum"),
        convention="both bounds -> clamp; one bound -> maximum/minimum with a constant"),
    _unary("aten.clone.default", "", lower="identity"),
    _unary("aten.alias.default", "", lower="identity"),
    _unary("aten.contiguous.default", "", lower="identity"),
    _unary("aten.lift_fresh_copy.default", "", lower="identity"),
    Row("aten.dropout.default", "dropout", arrays=("input",), lower="dropout",
        preserved=True, convention=DROPOUT),
    Row("aten.native_dropout.default", "dropout", arrays=("input",), lower="dropout",
        convention=DROPOUT),
    Row("aten._to_copy.default", "", lower="to_copy", needs=("ne",),
        convention="refrt evaluates a graph in one float dtype (the backend's): a float "
        "cast (x.double()) is the identity, bool -> float too (refrt's masks are 0/1 "
        "floats); float -> bool is x != 0"),
    Row("aten._assert_tensor_metadata.default", "", arrays=("a",), lower="nothing",
        convention="export's dtype assertion: no value"),
    Row("aten.full_like.default", "", lower="full_like",
        convention="a constant of the input's shape (folded at import)"),
    # -- comparisons and masks: refrt's comparisons return 0/1 float masks --------------
    *[Row(f"aten.{c}.{v}", c, arrays=("self", "other"), lower="compare",
          convention="a 0/1 float mask (torch: bool); where() takes it as a condition, "
          "arithmetic as the numbers 0 and 1")
      for c in ("eq", "ne", "lt", "le", "gt", "ge") for v in ("Tensor", "Scalar")],
    *[Row(f"aten.{a}", op, arrays=("self", "other"), lower="mask",
          convention=f"on bool masks (refrt's 0/1 floats): {op}, exact on {{0, 1}}")
      for a, op in (("logical_and.default", "mul"), ("logical_or.default", "maximum"),
                    ("logical_xor.default", "ne"), ("bitwise_and.Tensor", "mul"),
                    ("bitwise_or.Tensor", "maximum"), ("bitwise_xor.Tensor", "ne"))],
    *[Row(f"aten.{a}", "eq", lower="mask", convention="on a bool mask: eq(m, 0)")
      for a in ("logical_not.default", "bitwise_not.default")],
    # -- reductions and softmax ------------------------------------------------------
    Row("aten.sum.dim_IntList", "sum", lower="reduce", require={"dtype": (None,)}),
    Row("aten.sum.default", "sum", lower="reduce", require={"dtype": (None,)}),
    Row("aten.mean.dim", "mean", lower="reduce", require={"dtype": (None,)}),
    Row("aten.mean.default", "mean", lower="reduce", require={"dtype": (None,)}),
    Row("aten.amax.default", "amax", lower="reduce"),
    Row("aten.amin.default", "amin", lower="reduce"),
    Row("aten.prod.dim_int", "prod", lower="reduce", require={"dtype": (None,)}),
    Row("aten.prod.default", "prod", lower="reduce", require={"dtype": (None,)}),
    Row("aten.max.default", "amax", lower="reduce",
        convention="tied maxima share the gradient equally (as torch's max())"),
    Row("aten.min.default", "amin", lower="reduce",
        convention="tied minima share the gradient equally (as torch's min())"),
    Row("aten.max.dim", "amax", lower="values_only", params={"axis": "dim"},
        convention="the values (x.max(dim).values); tied maxima share the gradient "
        "equally, where torch routes it to the one index it returns; using the indices "
        "is reported"),
    Row("aten.min.dim", "amin", lower="values_only", params={"axis": "dim"},
        convention="as max.dim"),
    Row("aten.linalg_vector_norm.default", "sum", lower="vector_norm",
        needs=("square", "sqrt", "abs", "amax", "reshape"), require={"dtype": (None,)},
        convention="ord 2 -> sqrt(sum(square(x))) (three roundings: squares, the correctly "
        "rounded sum, the root); ord 1 -> sum(abs); ord inf -> amax(abs).  torch's "
        "weight_norm parametrization exports to this norm, a div and a mul (eps = 0, not "
        "refrt's fused weight_norm with TorchLean's eps)"),
    Row("aten.logsumexp.default", "logsumexp", lower="reduce"),
    Row("aten.var.correction", "var", lower="reduce", require={"correction": (0, 0.0)},
        convention="population variance (correction=0) only: refrt's var divides by n"),
    Row("aten._softmax.default", "softmax", params={"axis": "dim"},
        require={"half_to_float": (False,)}),
    Row("aten._log_softmax.default", "log_softmax", params={"axis": "dim"},
        require={"half_to_float": (False,)}),
    Row("aten.softmax.int", "softmax", params={"axis": "dim"}, require={"dtype": (None,)}),
    Row("aten.log_softmax.int", "log_softmax", params={"axis": "dim"},
        require={"dtype": (None,)}),
    # -- linear algebra ----------------------------------------------------------------
    Row("aten.linear.default", "linear", arrays=("input", "weight", "bias"), lower="linear",
        needs=("matmul", "transpose", "reshape"), preserved=True,
        convention="leading batch dims are flattened into rows; bias=None -> x @ W^T"),
    Row("aten.addmm.default", "matmul", arrays=("self", "mat1", "mat2"), lower="addmm",
        needs=("add", "broadcast_to"), require={"beta": (1,), "alpha": (1,)}),
    Row("aten.mm.default", "matmul", arrays=("self", "mat2")),
    Row("aten.bmm.default", "matmul", arrays=("self", "mat2")),
    Row("aten.matmul.default", "matmul", arrays=("self", "other"), lower="matmul",
        needs=("reshape",), preserved=True),
    # -- shape -------------------------------------------------------------------------
    Row("aten.view.default", "reshape", lower="view"),
    Row("aten.reshape.default", "reshape", lower="view"),
    Row("aten._unsafe_view.default", "reshape", lower="view"),
    Row("aten.flatten.using_ints", "reshape", lower="view"),
    Row("aten.unsqueeze.default", "reshape", lower="view"),
    Row("aten.squeeze.dims", "reshape", lower="view"),
    Row("aten.squeeze.dim", "reshape", lower="view"),
    Row("aten.squeeze.default", "reshape", lower="view"),
    Row("aten.expand.default", "broadcast_to", lower="expand", needs=("reshape",)),
    Row("aten.permute.default", "transpose", lower="permute",
        needs=("transpose_last_two", "swap_first_two"),
        convention="2-d (1,0) -> transpose, (..., b, a) -> transpose_last_two, "
        "(1,0,...) -> swap_first_two, other orders -> permute"),
    Row("aten.t.default", "transpose"),
    Row("aten.transpose.int", "transpose", lower="permute",
        needs=("transpose_last_two", "swap_first_two")),
    Row("aten.cat.default", "concat", arrays=(), lower="cat"),
    # -- normalization -----------------------------------------------------------------
    Row("aten.layer_norm.default", "layer_norm", arrays=("input", "weight", "bias"),
        params={"eps": "eps"}, lower="layer_norm", needs=("reshape",), preserved=True,
        convention="eps from the call (PyTorch's default 1e-5, not TorchLean's 1e-6); "
        "normalized_shape of several dims -> flattened into the last axis"),
    Row("aten.batch_norm.default", "batch_norm_inference",
        arrays=("input", "running_mean", "running_var", "weight", "bias"),
        params={"eps": "eps", "channel_axis": Fixed(1)}, lower="batch_norm", preserved=True,
        convention="training=False -> batch_norm_inference with the running statistics; "
        "training=True -> batch_norm with batch statistics (the running-statistics update "
        "is a side effect, not part of the graph)"),
    Row("aten._native_batch_norm_legit_functional.default", "batch_norm",
        arrays=("input", "weight", "bias"), params={"eps": "eps", "channel_axis": Fixed(1)},
        lower="batch_norm_functional", needs=("batch_norm_inference",),
        convention="what export makes of training-mode nn.BatchNorm: batch statistics; the "
        "running-statistics update is a buffer mutation, not part of the graph"),
    Row("aten._native_batch_norm_legit_no_training.default", "batch_norm_inference",
        arrays=("input", "weight", "bias", "running_mean", "running_var"),
        params={"eps": "eps", "channel_axis": Fixed(1)}, lower="batch_norm_functional"),
    Row("aten.group_norm.default", "group_norm", arrays=("input", "weight", "bias"),
        params={"num_groups": "num_groups", "eps": "eps"}, lower="affine_norm",
        preserved=True, convention="PyTorch's channel groups (refrt's group_norm is "
        "F.group_norm; TorchLean's row-major groupNorm differs, see the registry)"),
    Row("aten.instance_norm.default", "instance_norm", arrays=("input", "weight", "bias"),
        params={"eps": "eps"}, lower="affine_norm", preserved=True,
        require={"use_input_stats": (True,)}),
    Row("aten.rms_norm.default", "rms_norm", arrays=("input", "weight"), lower="rms_norm",
        preserved=True, convention="normalized_shape = the last dim; eps=None -> "
        "torch.finfo(dtype).eps, as PyTorch"),
    # -- losses ------------------------------------------------------------------------
    Row("aten.cross_entropy_loss.default", "cross_entropy", arrays=("self", "target"),
        params={"ignore_index": "ignore_index", "label_smoothing": "label_smoothing"},
        require={"weight": (None,), "reduction": MEAN}, preserved=True,
        convention="reduction='mean' over the non-ignored rows, as PyTorch"),
    Row("aten.mse_loss.default", "mse_loss", arrays=("self", "target"),
        require={"reduction": MEAN}, preserved=True),
    Row("aten.l1_loss.default", "l1_loss", arrays=("self", "target"),
        require={"reduction": MEAN}, preserved=True),
    Row("aten.huber_loss.default", "huber_loss", arrays=("self", "target"),
        params={"delta": "delta"}, require={"reduction": MEAN}, preserved=True),
    Row("aten.smooth_l1_loss.default", "smooth_l1_loss", arrays=("self", "target"),
        params={"beta": "beta"}, require={"reduction": MEAN}, preserved=True),
    Row("aten.binary_cross_entropy_with_logits.default", "bce_with_logits",
        arrays=("self", "target"),
        require={"weight": (None,), "pos_weight": (None,), "reduction": MEAN},
        preserved=True),
    Row("aten.cosine_similarity.default", "cosine_similarity", arrays=("x1", "x2"),
        params={"axis": "dim", "eps": "eps"}, preserved=True),
    # -- layers from the op branches (conv, attention, indexing) -------------------------
    Row("aten.conv2d.default", "conv2d", arrays=("input", "weight"), lower="optional",
        params={"bias": "bias", "stride": "stride", "padding": "padding",
                "dilation": "dilation", "groups": "groups"}, preserved=True),
    Row("aten.max_pool2d.default", "max_pool2d", lower="pool", preserved=True,
        params={"kernel_size": "kernel_size", "stride": "stride", "padding": "padding"},
        require={"dilation": ([1, 1], (1, 1), 1, [1]), "ceil_mode": (False,)},
        convention="dilation 1 and floor mode only (TorchLean's output size)"),
    Row("aten.avg_pool2d.default", "avg_pool2d", lower="pool", preserved=True,
        params={"kernel_size": "kernel_size", "stride": "stride", "padding": "padding",
                "count_include_pad": "count_include_pad"},
        require={"ceil_mode": (False,), "divisor_override": (None,)}),
    Row("aten.adaptive_avg_pool2d.default", "adaptive_avg_pool2d", preserved=True,
        params={"output_size": "output_size"}),
    Row("aten.scaled_dot_product_attention.default", "scaled_dot_product_attention",
        arrays=("query", "key", "value"), lower="sdpa", preserved=True,
        params={"is_causal": "is_causal", "scale": "scale"},
        require={"dropout_p": (0.0, 0)},
        convention="a bool attn_mask (True = may attend) or an additive mask of 0 and "
        "-inf only (converted to bool); a fully masked row gives zeros (PyTorch: NaN)"),
    Row("aten.embedding.default", "embedding", arrays=("indices", "weight"),
        require={"padding_idx": (-1,)}, preserved=True),
    Row("aten.select.int", "select", lower="select", convention="select(x, dim, index)"),
    Row("aten.slice.Tensor", "slice", lower="slice"),
    *[Row(f"aten.{a}.input", cell, arrays=("input",), lower="recurrent", preserved=True,
          needs=("select", "concat", "reshape"), params=extra,
          require={"dropout": (0.0, 0), "bidirectional": (False,)},
          convention=f"unrolled over time into {cell} nodes (PyTorch's gate layout "
          f"{gates}), one per layer and step; has_biases=False -> zero biases")
      for a, cell, extra, gates in (
          ("lstm", "lstm_cell", {}, "i, f, g, o"), ("gru", "gru_cell", {}, "r, z, n"),
          ("rnn_tanh", "rnn_cell", {"nonlinearity": Fixed("tanh")}, "tanh"),
          ("rnn_relu", "rnn_cell", {"nonlinearity": Fixed("relu")}, "relu"))],
    Row("aten.conv_transpose2d.input", "conv_transpose2d", arrays=("input", "weight"),
        lower="optional", preserved=True,
        params={"bias": "bias", "stride": "stride", "padding": "padding",
                "output_padding": "output_padding", "groups": "groups",
                "dilation": "dilation"}),
    Row("aten.adaptive_max_pool2d.default", "adaptive_max_pool2d", lower="values_only",
        params={"output_size": "output_size"},
        convention="the values; the argmax indices (second result) have no refrt value"),
    Row("aten.gather.default", "gather", arrays=("self", "index"), params={"axis": "dim"},
        require={"sparse_grad": (False,)}),
    Row("aten.scatter_add.default", "scatter_add", arrays=("self", "index", "src"),
        params={"axis": "dim"}),
    Row("aten.index_select.default", "embedding", arrays=("self", "index"),
        lower="index_select", needs=("reshape", "permute", "transpose"),
        convention="the indexed axis moved to the front and the rest flattened: refrt's "
        "embedding row lookup (exact), axes put back"),
    Row("aten.index.Tensor", "embedding", arrays=("self",), lower="index",
        needs=("reshape", "permute", "transpose"),
        convention="x[..., ids, ...] with one integer index tensor (any shape) as "
        "index_select; bool masks (data-dependent sizes) are not supported"),
    Row("aten.constant_pad_nd.default", "pad", lower="pad",
        convention="F.pad constant mode (torch's pad order: last axis first); negative "
        "widths (cropping) are not supported"),
]

TABLE = {row.aten: row for row in ROWS}
if len(TABLE) != len(ROWS):
    raise RuntimeError("refrt.importers.aten_table: an ATen op has two rows")
