"""Resumable training state without pickle: every tensor goes to safetensors, the
structure around it (optimizer/scheduler state, RNG states, step) to JSON.

A state is a directory state/step-<N>/ written atomically; the newest K are kept.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from components.atomic import atomic_dir

TENSOR_KEY = "__tensor__"


def flatten(obj, tensors: dict[str, torch.Tensor], prefix: str = "t"):
    """Replace tensors in a nested dict/list by references into `tensors`."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {TENSOR_KEY: key}
    if isinstance(obj, dict):
        # JSON keys are strings: keep the original key types (optimizer state uses ints)
        return {"__dict__": [[k, flatten(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [flatten(v, tensors, prefix) for v in obj], "tuple": isinstance(obj, tuple)}
    return obj


def unflatten(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if TENSOR_KEY in obj:
            return tensors[obj[TENSOR_KEY]]
        if "__dict__" in obj:
            return {k: unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


def save_state(state_root: Path, step: int, state: dict, keep: int) -> Path:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    dest = Path(state_root) / f"step-{step:08d}"
    with atomic_dir(dest) as tmp:
        save_file(tensors, str(tmp / "tensors.safetensors"))
        (tmp / "state.json").write_text(json.dumps(skeleton))
    for old in sorted(Path(state_root).glob("step-*"))[:-max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def latest_state(state_root: Path) -> Path | None:
    states = sorted(p for p in Path(state_root).glob("step-*") if (p / "state.json").is_file())
    return states[-1] if states else None


def load_state(path: Path) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(str(Path(path) / "tensors.safetensors"))
    return unflatten(json.loads((Path(path) / "state.json").read_text()), tensors)
