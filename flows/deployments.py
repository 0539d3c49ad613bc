"""Schedules and the drift trigger: retraining on a cron schedule and whenever the
monitoring flow emits `genloop.drift.detected` for the model, on the data version the
event names (`data_rev`; empty: data/ as it is); monitoring on its own cron.

Served with `prefect.serve` by `genloop schedule`; needs a Prefect server
(`prefect server start`, PREFECT_API_URL) because the ephemeral API has no scheduler.
"""
from __future__ import annotations

from prefect.events import DeploymentEventTrigger

from flows.monitoring import DRIFT_EVENT, monitor
from flows.training import retrain


def drift_trigger(model_name: str, parameters: dict) -> DeploymentEventTrigger:
    """Runs the retraining deployment with its parameters plus the event's data version."""
    return DeploymentEventTrigger(name=f"retrain {model_name} on drift", expect={DRIFT_EVENT},
                                  match={"prefect.resource.id": f"genloop.model.{model_name}"},
                                  posture="Reactive", threshold=1,
                                  parameters={**parameters,
                                              "data_rev": "{{ event.payload.data_rev | default('') }}"})


def build_deployments(root: str, config_path: str, model_name: str, overrides: dict,
                      retrain_cron: str, monitor_cron: str | None,
                      monitor_checks: tuple[str, ...] = ("data", "staleness")) -> list:
    parameters = {"root": root, "config_path": config_path, "overrides": overrides}
    deployments = [retrain.to_deployment(
        name=f"retrain-{model_name}", cron=retrain_cron, triggers=[drift_trigger(model_name, parameters)],
        parameters=parameters,
        description=f"Retrain {model_name} on '{retrain_cron}' and on {DRIFT_EVENT}.")]
    if monitor_cron:
        deployments.append(monitor.to_deployment(
            name=f"monitor-{model_name}", cron=monitor_cron,
            parameters={"root": root, "model_name": model_name, "config_path": config_path,
                        "checks": list(monitor_checks),
                        "overrides": {k: v for k, v in overrides.items() if k.startswith("monitor.")}}))
    return deployments


def serve_deployments(deployments: list) -> None:
    from prefect import serve

    serve(*deployments, print_starting_message=True)
