"""PyTorch on the first CUDA device: the CPU adapter's table, tensors moved to 'cuda'."""
from __future__ import annotations


def make():
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch-cuda: torch.cuda.is_available() is False on this machine")
    from .torch import build
    return build(torch, device="cuda", name="torch-cuda")
