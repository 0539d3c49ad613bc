"""Drift check of a served model: its evaluation-time reference against serving logs."""
from __future__ import annotations

from pathlib import Path

from components.errors import GenloopError
from components.monitoring.evidently_adapter import DriftResult, drift_report
from components.monitoring.features import IMAGE_COLUMNS, TEXT_COLUMNS
from components.monitoring.logs import read_serving_log


def load_frames(root: Path, model_name: str, log_dir: Path | None = None):
    """(reference, current, columns, model tag) for the champion of `model_name`."""
    import pandas as pd

    from components.paths import ProjectPaths
    from components.registry import champion_summary

    model = champion_summary(model_name)
    if model is None:
        raise GenloopError(f"no champion model named {model_name!r} in the model store: "
                           f"run `genloop run` first.")
    reference = pd.read_csv(model.path / "reference.csv")
    current = read_serving_log(log_dir or ProjectPaths.at(root).monitoring(model_name))
    if len(current) and "model_tag" in current.columns:
        current = current[current["model_tag"] == model.tag]
    columns = IMAGE_COLUMNS if model.labels["modality"] == "image" else TEXT_COLUMNS
    if "label" in reference.columns:
        reference["label"] = reference["label"].astype(str)
    if len(current) and "label" in current.columns:
        current = current.assign(label=current["label"].astype(str))
    return reference, current, columns, model.tag


def check_drift(reference, current, columns: dict, out_dir: Path) -> DriftResult:
    return drift_report(reference, current, columns["numerical"], columns["categorical"], out_dir)
