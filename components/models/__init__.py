"""Model families, one file each: `Args` (hyper-parameters) and `Model`, which follows the
interface written down in components/models/base.py.

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


def family_module(family: str):
    """The module of `family`: its `Args` and `Model` classes."""
    if family not in FAMILIES:
        raise GenloopError(f"config: unknown model.family {family!r}; valid: {', '.join(FAMILIES)}.")
    return importlib.import_module(FAMILIES[family])


def model_args(family: str, args: dict[str, Any]):
    """The family's `Args` from the config's model.args (unknown keys are an error)."""
    return build_dataclass(family_module(family).Args, dict(args), "model.args")


def build_model(family: str, args: dict[str, Any]):
    """A fresh `Model` of `family` (a TrainedModel or CountedModel, see models/base.py)."""
    return family_module(family).Model(model_args(family, args))
