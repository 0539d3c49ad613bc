"""Evidently adapter: the only module that talks to Evidently (0.7 API)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from components.errors import GenloopError


@dataclass
class DriftResult:
    drift_share: float
    drifted_columns: list[str]
    columns: dict[str, dict]          # column -> {method, value, threshold, drifted}
    html_path: str
    json_path: str
    reference_rows: int
    current_rows: int


def drift_report(reference, current, numerical: list[str], categorical: list[str],
                 out_dir: Path) -> DriftResult:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = numerical + categorical
    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) == 0:
            raise GenloopError(f"the {name} frame is empty: no {name} generations to compare. "
                               + ("Serve the model and send requests first." if name == "current" else ""))
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise GenloopError(f"the {name} frame lacks columns {missing}; it was logged by another model kind.")
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report([DataDriftPreset()])
    snapshot = report.run(Dataset.from_pandas(current[columns], data_definition=definition),
                          Dataset.from_pandas(reference[columns], data_definition=definition))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / "drift_report.html", out_dir / "drift_report.json"
    snapshot.save_html(str(html))
    raw = snapshot.dict()
    per_column: dict[str, dict] = {}
    share = 0.0
    for metric in raw["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method, value, threshold = config["method"], float(metric["value"]), config["threshold"]
            # p-value tests flag drift below the threshold, distances above it
            drifted = value < threshold if "p_value" in method else value >= threshold
            per_column[config["column"]] = {"method": method, "value": value,
                                            "threshold": threshold, "drifted": drifted}
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    result = DriftResult(share, [c for c, v in per_column.items() if v["drifted"]], per_column,
                         str(html), str(js), len(reference), len(current))
    js.write_text(json.dumps({**asdict(result), "evidently": raw}, indent=2, default=str))
    return result
