"""The drift-monitoring flow: components/monitoring/run.py checks the champion; on drift
of a kind the config retrains on, the flow emits `genloop.drift.detected` carrying what
drifted and the data version (the retraining deployment's trigger passes it on);
output drift alone emits `genloop.drift.output` (an alert: retraining on the same data
would not change it). Every run publishes the Prefect artifacts `monitor-<model>` (markdown)
and `monitor-checks-<model>` (table, one row per check)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from components.artifacts import artifact_key, monitor_table
from components.dashboard.workspace import record_run
from components.monitoring.run import CHECKS, emit_once, monitor_model

DRIFT_EVENT = "genloop.drift.detected"
OUTPUT_EVENT = "genloop.drift.output"

check = task(monitor_model, name="check", cache_policy=NO_CACHE)
dashboard = task(record_run, name="dashboard", cache_policy=NO_CACHE)


@flow(name="genloop-monitor", log_prints=True)
def monitor(root: str, model_name: str, checks: list[str] | None = None, log_dir: str | None = None,
            data_rev: str | None = None, data_dir: str | None = None, config_path: str | None = None,
            overrides: dict | None = None) -> dict:
    result = check(root, model_name, tuple(checks or CHECKS), log_dir=log_dir, data_rev=data_rev or None,
                   data_dir=data_dir, config_path=config_path, overrides=overrides)
    about = f"genloop monitor {model_name} ({result.model_tag}): {', '.join(result.fired) or 'no drift'}"
    create_markdown_artifact(result.markdown(), key=artifact_key("monitor", model_name), description=about)
    create_table_artifact(monitor_table(result.checks), key=artifact_key("monitor-checks", model_name),
                          description=about)
    dashboard(root, Path(result.report_path).parent)     # the Evidently workspace's snapshot of this run
    for c in result.checks:
        print(f"{c.kind}: {'FIRED' if c.fired else 'ok'} - {c.summary}")
    event = DRIFT_EVENT if result.retrain else OUTPUT_EVENT if result.fired else None
    if event:
        from prefect.events import emit_event

        def emit():
            return emit_event(event=event, resource={"prefect.resource.id": f"genloop.model.{model_name}"},
                              payload=result.event_payload())
        if not emit_once(root, result, event, emit):
            print(f"{event} already emitted for {result.model_tag} on data {result.newest['data_md5'] or '-'}: "
                  f"not emitted again (a retraining that was not promoted must not restart every monitor run)")
            event = None
    return {**asdict(result), "retrain": result.retrain, "event": event, "payload": result.event_payload()}
