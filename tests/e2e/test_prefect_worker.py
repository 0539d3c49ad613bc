"""Production Prefect, end to end: a real `prefect server`, `genloop deploy` applying
deploy/prefect.yaml (only the retraining's overrides made tiny), a real
`prefect worker start --pool genloop --type process`, and a `genloop.drift.detected` event
emitted the way the monitoring flow emits it. The deployment's trigger starts a retraining
run on the event's data version and the worker runs it, in the project folder the pull step
names, to COMPLETED."""
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import REPO, TINY_DCGAN
from tests.e2e.processes import commit_data_version, start_prefect_server, stop_processes, wait_for

pytestmark = pytest.mark.slow

GENLOOP = [sys.executable, "-c", "from flows.cli import main; main()"]
MODEL, POOL = "dcgan-digits", "genloop"


def _tiny_prefect_file(tmp_path: Path) -> Path:
    """deploy/prefect.yaml with the retraining's `overrides` set to the tiny DCGAN; nothing else changed."""
    doc = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    (retrain,) = [d for d in doc["deployments"] if d["name"] == f"retrain-{MODEL}"]
    assert retrain["parameters"]["overrides"] == {}
    retrain["parameters"]["overrides"] = dict(TINY_DCGAN)
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _triggered_run(api: str, rev: str) -> dict | None:
    """The run the drift event started (the crons' runs are scheduled hours ahead), once it is
    COMPLETED; a failed or crashed one fails the test."""
    runs = [r for r in httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
            if r["parameters"].get("data_rev") == rev]
    assert len(runs) <= 1, [r["name"] for r in runs]
    if runs and runs[0]["state"]["type"] in ("FAILED", "CRASHED", "CANCELLED"):
        pytest.fail(f"run {runs[0]['name']} ended {runs[0]['state']['type']}: {runs[0]['state']['message']}")
    return runs[0] if runs and runs[0]["state"]["type"] == "COMPLETED" else None


def _read_flow_run(api: str, flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        return run, client.read_deployment(run.deployment_id)


def test_a_worker_runs_the_deployed_retraining_when_drift_is_emitted(data_project, tmp_path):
    rev = commit_data_version(data_project, "data for the worker test")
    procs = []
    try:
        api, env, server, server_log = start_prefect_server(tmp_path)
        procs.append(server)
        started = time.time()
        out = subprocess.run([*GENLOOP, "deploy", "--prefect-file", str(_tiny_prefect_file(tmp_path))],
                             cwd=data_project, env=env, capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"work pool '{POOL}' created (type process)" in out.stdout
        assert f"no worker online; start one where the project lives: `prefect worker start --pool {POOL}`" \
            in out.stdout
        print(f"genloop deploy: {time.time() - started:.1f}s")

        pool = httpx.get(f"{api}/work_pools/{POOL}", timeout=10).json()
        assert pool["type"] == "process"
        deployments = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()}
        assert sorted(deployments) == [f"monitor-{MODEL}", f"retrain-{MODEL}"]
        for d in deployments.values():
            assert d["work_pool_name"] == POOL and d["parameters"]["root"] == str(data_project)
            assert d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory":
                                        {"directory": str(data_project)}}]
        assert [s["schedule"]["cron"] for s in deployments[f"retrain-{MODEL}"]["schedules"]] == ["0 3 * * 1"]
        assert [s["schedule"]["cron"] for s in deployments[f"monitor-{MODEL}"]["schedules"]] == ["0 * * * *"]
        wait_for(lambda: {r["deployment_id"] for r in httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json()} == {d["id"] for d in deployments.values()},
            60, "the server's scheduler: runs of both crons", [(server, server_log)])
        automations = httpx.post(f"{api}/automations/filter", json={}, timeout=10).json()
        assert [a["actions"][0]["deployment_id"] for a in automations] == [deployments[f"retrain-{MODEL}"]["id"]]

        # the worker starts outside the project: the deployment's pull step must take the run there
        worker_log = tmp_path / "worker.log"
        procs.append(worker := subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
            cwd=tmp_path, env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_for(lambda: httpx.post(f"{api}/work_pools/{POOL}/workers/filter", timeout=5,
                                    json={"workers": {"status": {"any_": ["ONLINE"]}}}).json(),
                 90, "the worker online", [(worker, worker_log), (server, server_log)])

        # emitted as flows/monitoring.py emits it: resource genloop.model.<name>, data_rev in the payload
        subprocess.run([sys.executable, "-c",
                        "from prefect.events import emit_event; emit_event("
                        "event='genloop.drift.detected', "
                        f"resource={{'prefect.resource.id': 'genloop.model.{MODEL}'}}, "
                        f"payload={{'kinds': ['data'], 'data_rev': '{rev}', 'model_tag': 'test'}})"],
                       env=env, check=True, timeout=60)
        started = time.time()
        done = wait_for(lambda: _triggered_run(api, rev), 300, "the triggered retraining run COMPLETED by the worker",
                        [(worker, worker_log), (server, server_log)])
        print(f"drift event -> COMPLETED: {time.time() - started:.1f}s")

        run, deployment = _read_flow_run(api, done["id"])
        assert run.state.is_completed(), run.state
        assert deployment.name == f"retrain-{MODEL}" and run.work_pool_name == POOL
        assert run.parameters["data_rev"] == rev                 # the event's data version
        assert run.parameters["root"] == str(data_project)
        assert run.parameters["overrides"]["train.steps"] == TINY_DCGAN["train.steps"]
        assert str(run.id) in worker_log.read_text(), "the worker did not submit this run"
        # the flow body ran to its end: its artifacts belong to this run
        found = httpx.post(f"{api}/artifacts/filter", timeout=10,
                           json={"artifacts": {"key": {"any_": [f"metrics-{MODEL}"]}}}).json()
        assert [a["flow_run_id"] for a in found] == [str(run.id)]
        summaries = [json.loads(p.read_text()) for p in (data_project / "runs").glob("*/summary.json")]
        assert rev in [s["data_rev"] for s in summaries], "no run summary names the event's data version"
    finally:
        stop_processes(procs)
