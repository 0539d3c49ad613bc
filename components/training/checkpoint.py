"""Checkpoint writing: safetensors weights + checkpoint.json, atomically (a temp dir
renamed into place). Loading lives in components/models/io.py, which serving imports."""
from __future__ import annotations

import json
from pathlib import Path

from components.atomic import atomic_dir
from components.models.io import META, WEIGHTS


def save_checkpoint(objective, meta: dict, dest: Path) -> Path:
    from safetensors.torch import save_model
    from torch import nn

    with atomic_dir(Path(dest)) as tmp:
        if hasattr(objective, "state_tensors"):          # count-based models (n-gram)
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in objective.state_tensors().items()}, str(tmp / WEIGHTS))
        else:
            save_model(nn.ModuleDict(objective.modules()), str(tmp / WEIGHTS))
        (tmp / META).write_text(json.dumps({**objective.describe(), **meta}, indent=2, default=str))
    return dest
