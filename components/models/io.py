"""Loading checkpoints for sampling (imported by deploy/): never unpickles."""
from __future__ import annotations

import json
from pathlib import Path

from components.errors import GenloopError

WEIGHTS = "weights.safetensors"
META = "checkpoint.json"


def read_meta(path: Path) -> dict:
    meta = Path(path) / META
    if not meta.is_file():
        raise GenloopError(f"{path} is not a genloop checkpoint (no {META}).")
    return json.loads(meta.read_text())


def load_checkpoint(path: Path, device: str = "cpu"):
    """Rebuild the objective from checkpoint.json and load its weights."""
    from safetensors.torch import load_model
    from torch import nn

    from components.models import build_model

    meta = read_meta(path)
    objective = build_model(meta["family"], meta["args"])
    try:
        if hasattr(objective, "load_tensors"):
            from safetensors.torch import load_file
            objective.load_tensors(load_file(str(Path(path) / WEIGHTS)))
        else:
            load_model(nn.ModuleDict(objective.modules()), str(Path(path) / WEIGHTS), device=device)
    except Exception as exc:
        raise GenloopError(f"checkpoint {path} has unreadable or mismatched weights ({exc}); "
                           f"retrain or restore it from the model store.") from None
    for module in objective.modules().values():
        module.to(device)
    return objective, meta
