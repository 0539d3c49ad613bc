"""Resumable training state without pickle: every tensor goes to safetensors, the
structure around it (optimizer/scheduler state, RNG states, step) to JSON.

A state is a directory state/step-<N>/ written atomically; the newest K are kept.
`TrainingState` says what a state holds: snapshot() and restore() walk the same table of
parts, so whatever is saved is restored.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

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


@dataclass
class Progress:
    """The trainer's own counters, saved with the state."""
    step: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    best: float = math.inf           # best validation loss so far
    stale: int = 0                   # evaluations since it improved


def _state_dicts(objects: dict) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """(get, set) over a name -> object-with-state_dict mapping."""
    def get():
        return {name: obj.state_dict() for name, obj in objects.items()}

    def put(value):
        for name, obj in objects.items():
            obj.load_state_dict(value[name])
    return get, put


class TrainingState:
    """Everything a resumed run needs to continue as if never stopped: modules, optimizers,
    schedulers, EMA weights, and the RNG states (torch's global one, which kornia and
    dropout draw from; the batch generator; CUDA's)."""

    def __init__(self, modules: dict, optimizers: dict, schedulers: dict, ema, batches: torch.Generator,
                 device: torch.device):
        cuda = device.type == "cuda"

        def set_ema(value):
            if ema is not None:
                ema.shadow = {k: v.to(device) for k, v in value.items()}

        def set_cuda(value):
            if cuda and value is not None:
                torch.cuda.set_rng_state(value)

        self.parts: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
            "modules": _state_dicts(modules),
            "optimizers": _state_dicts(optimizers),
            "schedulers": _state_dicts(schedulers),
            "ema": (lambda: ema.shadow if ema is not None else {}, set_ema),
            "rng_torch": (torch.get_rng_state, torch.set_rng_state),
            "rng_batches": (batches.get_state, batches.set_state),
            "rng_cuda": (lambda: torch.cuda.get_rng_state() if cuda else None, set_cuda),
        }

    def snapshot(self, progress: Progress) -> dict:
        return {"progress": asdict(progress), **{name: get() for name, (get, _) in self.parts.items()}}

    def restore(self, state: dict) -> Progress:
        for name, (_, put) in self.parts.items():
            put(state[name])
        return Progress(**state["progress"])
