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
    snapshot_path: str = ""           # the Evidently snapshot (the dashboard workspace adds it)


def _save(snapshot, out_dir: Path, stem: str) -> tuple[Path, Path, Path, dict]:
    """The report as HTML, its snapshot (for the dashboard workspace), and its dict; returns
    (html, json path still to write, snapshot path, dict)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js, snap = out_dir / f"{stem}.html", out_dir / f"{stem}.json", out_dir / f"{stem}.snapshot.json"
    snapshot.save_html(str(html))
    snap.write_text(snapshot.dumps())
    return html, js, snap, snapshot.dict()


def _column_drift(raw: dict) -> dict[str, dict]:
    """Per column: method, value, threshold and whether it drifted (p-value tests flag drift
    below the threshold, distances above it)."""
    columns = {}
    for metric in raw["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method, value, threshold = config["method"], float(metric["value"]), config["threshold"]
            drifted = value < threshold if "p_value" in method else value >= threshold
            columns[config["column"]] = {"method": method, "value": value, "threshold": threshold,
                                         "drifted": drifted}
    return columns


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
    html, js, snap, raw = _save(snapshot, out_dir, "drift_report")
    per_column = _column_drift(raw)
    share = next((float(m["value"]["share"]) for m in raw["metrics"]
                  if m["config"]["type"].endswith("DriftedColumnsCount")), 0.0)
    result = DriftResult(share, [c for c, v in per_column.items() if v["drifted"]], per_column,
                         str(html), str(js), len(reference), len(current), str(snap))
    js.write_text(json.dumps({**asdict(result), "evidently": raw}, indent=2, default=str))
    return result


def embedding_drift_report(reference_emb, current_emb, reference_desc, current_desc, numerical: list[str],
                           categorical: list[str], monitor_cfg, out_dir: Path) -> dict:
    """Evidently's embedding drift (MMD or classifier) on content features, and its column
    drift on scalar descriptors, in one report. The embedding rule is the method's own
    non-bootstrap rule (score above `embedding_threshold`), decided here from the score
    because Evidently's v2 metric returns only the score."""
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import MMDDriftMethod, ModelDriftMethod
    from evidently.presets import DataDriftPreset

    m = monitor_cfg
    names = [f"emb_{i}" for i in range(reference_emb.shape[1])]
    if not np.isfinite(reference_emb).all() or not np.isfinite(current_emb).all():
        raise GenloopError("content features hold NaN or inf: a file decodes to garbage; check the data "
                           "with `genloop validate`.")
    frames = [pd.concat([pd.DataFrame(emb, columns=names), desc.reset_index(drop=True)], axis=1)
              for emb, desc in ((reference_emb, reference_desc), (current_emb, current_desc))]
    components = min(m.pca_components, reference_emb.shape[1], len(reference_emb) - 1)
    method = (MMDDriftMethod(threshold=m.embedding_threshold, pca_components=components)
              if m.embedding_method == "mmd" else
              ModelDriftMethod(threshold=m.embedding_threshold, pca_components=components))
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical,
                                embeddings={"content": names})
    report = Report([EmbeddingsDrift(embeddings_name="content", drift_method=method),
                     DataDriftPreset(columns=numerical + categorical)])
    snapshot = report.run(Dataset.from_pandas(frames[1], data_definition=definition),
                          Dataset.from_pandas(frames[0], data_definition=definition))
    html, js, snap, raw = _save(snapshot, out_dir, "data_drift")
    columns = _column_drift(raw)
    score = next((float(m["value"]) for m in raw["metrics"] if m["config"]["type"].endswith("EmbeddingsDrift")),
                 float("nan"))
    result = {"embedding_drift_score": score, "embedding_method": m.embedding_method,
              "descriptor_columns": columns, "drifted_descriptors": [c for c, v in columns.items() if v["drifted"]],
              "html_path": str(html), "json_path": str(js),
              "snapshot_path": str(snap),
              "reference_rows": len(reference_emb), "current_rows": len(current_emb)}
    js.write_text(json.dumps({**result, "evidently": raw}, indent=2, default=str))
    return result
