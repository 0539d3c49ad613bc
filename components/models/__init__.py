"""Model families: one file each, the network(s) plus an objective with
`train_step(batch, optimizers)` and `sample(n, seed, **controls)`.

Importing this package is cheap; `build_model` imports the family's module.
"""
from __future__ import annotations

import importlib
from typing import Any

from components.config import build_dataclass
from components.errors import GenloopError

FAMILIES = {"dcgan": "components.models.dcgan", "vae": "components.models.vae",
            "charlm": "components.models.charlm", "lstm": "components.models.lstm",
            "ngram": "components.models.ngram"}


def build_model(family: str, args: dict[str, Any]):
    if family not in FAMILIES:
        raise GenloopError(f"config: unknown model.family {family!r}; valid: {', '.join(FAMILIES)}.")
    module = importlib.import_module(FAMILIES[family])
    return module.Objective(build_dataclass(module.Args, dict(args), "model.args"))
