"""Checkpoints: weights (safetensors) + checkpoint.json, written atomically (a temp dir
renamed into place) and loaded without unpickling anything. Imported by deploy/."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from components.errors import GenloopError

if TYPE_CHECKING:
    from components.models.base import GenerativeModel

WEIGHTS = "weights.safetensors"
META = "checkpoint.json"


def save_checkpoint(model: GenerativeModel, meta: dict, dest: Path) -> Path:
    from components.atomic import atomic_dir

    with atomic_dir(Path(dest)) as tmp:
        model.save_weights(tmp / WEIGHTS)
        (tmp / META).write_text(json.dumps({**model.describe(), **meta}, indent=2, default=str))
    return Path(dest)


def read_meta(path: Path) -> dict:
    meta = Path(path) / META
    if not meta.is_file():
        raise GenloopError(f"{path} is not a genloop checkpoint (no {META}).")
    return json.loads(meta.read_text())


def load_checkpoint(path: Path, device: str = "cpu"):
    """Rebuild the model from checkpoint.json and load its weights; returns (model, meta)."""
    from components.models import build_model

    meta = read_meta(path)
    model = build_model(meta["family"], meta["args"])
    try:
        model.load_weights(Path(path) / WEIGHTS, device=device)
    except Exception as exc:
        raise GenloopError(f"checkpoint {path} has unreadable or mismatched weights ({exc}); "
                           f"retrain or restore it from the model store.") from None
    for module in model.modules().values():
        module.to(device).eval()            # loaded for inference; the trainer sets train() itself
    return model, meta
