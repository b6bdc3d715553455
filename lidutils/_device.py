"""Torch device selection and array <-> tensor conversion."""
from __future__ import annotations

import numpy as np
import torch


def resolve_device(device="auto"):
    """Return a ``torch.device``; ``"auto"`` picks CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available; use 'cpu' or 'auto'.")
    return dev


def to_tensor(X, device, dtype=None):
    """numpy array -> tensor on ``device`` (float64 on CPU, float32 on CUDA unless given)."""
    if dtype is None:
        dtype = torch.float64 if device.type == "cpu" else torch.float32
    return torch.as_tensor(np.asarray(X), device=device).to(dtype)


def to_numpy(t):
    """Tensor -> numpy array on the host."""
    return t.detach().cpu().numpy()
