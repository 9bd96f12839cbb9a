"""PyTorch rows for convolution and pooling (merged into torch.py's table).

Every call passes the registry's parameters explicitly (stride, padding, dilation,
groups, output_padding; pool stride = kernel_size when None, normalised by the shape
rule).  Inputs are (N, C, H, W) or unbatched (C, H, W), both accepted by torch.
smooth_max_pool2d has no torch counterpart (TorchLean only), so no row.
"""
from __future__ import annotations


def entries(torch):
    from ._base import Entry as E
    F = torch.nn.functional
    conv = ("stride", "padding", "dilation", "groups")
    pool = ("kernel_size", "stride", "padding")
    return {
        "conv2d": E(lambda x, weight, bias, stride, padding, dilation, groups:
                    F.conv2d(x, weight, bias, stride, padding, dilation, groups),
                    "F.conv2d(x, weight, bias, stride={stride}, padding={padding}, "
                    "dilation={dilation}, groups={groups})", params=conv),
        "conv_transpose2d": E(
            lambda x, weight, bias, stride, padding, output_padding, groups, dilation:
            F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation),
            "F.conv_transpose2d(x, weight, bias, stride={stride}, padding={padding}, "
            "output_padding={output_padding}, groups={groups}, dilation={dilation})",
            params=conv + ("output_padding",)),
        "max_pool2d": E(lambda x, kernel_size, stride, padding:
                        F.max_pool2d(x, kernel_size, stride, padding),
                        "F.max_pool2d(x, {kernel_size}, stride={stride}, padding={padding})",
                        params=pool),
        "avg_pool2d": E(lambda x, kernel_size, stride, padding, count_include_pad:
                        F.avg_pool2d(x, kernel_size, stride, padding,
                                     count_include_pad=count_include_pad),
                        "F.avg_pool2d(x, {kernel_size}, stride={stride}, padding={padding}, "
                        "count_include_pad={count_include_pad})",
                        params=pool + ("count_include_pad",)),
        "adaptive_avg_pool2d": E(lambda x, output_size: F.adaptive_avg_pool2d(x, output_size),
                                 "F.adaptive_avg_pool2d(x, {output_size})",
                                 params=("output_size",)),
        "adaptive_max_pool2d": E(lambda x, output_size: F.adaptive_max_pool2d(x, output_size),
                                 "F.adaptive_max_pool2d(x, {output_size})",
                                 params=("output_size",)),
    }
