"""The drift-monitoring flow: serving logs vs the evaluation-time reference -> Evidently."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.monitoring.run import check_drift, load_frames
from components.paths import ProjectPaths

DRIFT_EVENT = "genloop.drift.detected"


@task(cache_policy=NO_CACHE)
def load(root: str, model_name: str, log_dir: str | None):
    return load_frames(Path(root), model_name, Path(log_dir) if log_dir else None)


@task(cache_policy=NO_CACHE)
def report(reference, current, columns, out_dir: str) -> dict:
    return asdict(check_drift(reference, current, columns, Path(out_dir)))


@flow(name="genloop-monitor", log_prints=True)
def monitor(root: str, model_name: str, log_dir: str | None = None,
            drift_threshold: float = 0.5) -> dict:
    reference, current, columns, tag = load(root, model_name, log_dir)
    out_dir = ProjectPaths.at(root).monitor_run(model_name)
    result = report(reference, current, columns, str(out_dir))
    result["model_tag"] = tag
    result["drift_detected"] = result["drift_share"] >= drift_threshold
    if result["drift_detected"]:
        from prefect.events import emit_event
        emit_event(event=DRIFT_EVENT, resource={"prefect.resource.id": f"genloop.model.{model_name}"},
                   payload={"drift_share": result["drift_share"], "model_tag": tag,
                            "drifted_columns": result["drifted_columns"]})
    return result
