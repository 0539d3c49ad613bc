"""One code path for CPU and GPU: CUDA with bf16 autocast when present, else CPU."""
from __future__ import annotations

import contextlib
import os


def pick_device(preferred: str | None = None) -> "torch.device":  # noqa: F821
    import torch

    name = preferred or os.environ.get("GENLOOP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device) -> contextlib.AbstractContextManager:
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
