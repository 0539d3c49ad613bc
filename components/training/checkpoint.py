"""Checkpoint writing: safetensors weights + checkpoint.json, atomically (a temp dir
renamed into place). Loading lives in components/models/io.py, which serving imports."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from components.models.io import META, WEIGHTS


def save_checkpoint(objective, meta: dict, dest: Path) -> Path:
    from safetensors.torch import save_model
    from torch import nn

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        save_model(nn.ModuleDict(objective.modules()), str(tmp / WEIGHTS))
        (tmp / META).write_text(json.dumps({**objective.describe(), **meta}, indent=2, default=str))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
