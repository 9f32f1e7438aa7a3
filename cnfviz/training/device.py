"""The torch device a run trains on: its choice (``auto`` = CUDA, then MPS, then CPU) and its label."""

from __future__ import annotations

import os

import torch

from .._validation import check_choice

__all__ = ["DEVICES", "cpu_cores", "device_label", "resolve_device"]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""The device choices of a run: ``auto`` (CUDA, then MPS, then CPU) or one of them by name."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device that is absent falls back to CPU.

    Example:
        >>> resolve_device("cpu").type
        'cpu'
    """
    check_choice(name, DEVICES, "device")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name in ("auto", "cuda") and cuda:
        return torch.device("cuda")
    if name in ("auto", "mps") and mps:
        return torch.device("mps")
    return torch.device("cpu")


def device_label(device: torch.device | None = None) -> str:
    """A short badge text, e.g. ``GPU · NVIDIA H200`` or ``CPU · 2 cores``."""
    device = device or resolve_device("auto")
    if device.type == "cuda":
        return f"GPU · {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU · Apple MPS"
    cores = cpu_cores()
    return f"CPU · {cores} core{'s' if cores != 1 else ''}"


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
