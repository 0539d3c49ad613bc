"""A real `prefect server`: `genloop schedule` serves the retraining deployment, and a
`genloop.drift.detected` event for the model starts a retraining run that completes."""
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.conftest import TINY_DCGAN
from tests.e2e.processes import commit_data_version, start_prefect_server, wait_for

pytestmark = pytest.mark.slow


def _completed_runs(api: str) -> list[dict]:
    """Deployment runs that completed; a failed or crashed one fails the test at once."""
    body = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}}}
    runs = [r for r in httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json() if r["deployment_id"]]
    for run in runs:
        if run["state"]["type"] != "COMPLETED":
            pytest.fail(f"triggered run {run['name']} ended {run['state']['type']}: {run['state']['message']}")
    return runs


def test_drift_event_starts_retraining_on_its_data_version(data_project, tmp_path):
    rev = commit_data_version(data_project, "data v1")
    procs = []
    try:
        api, env, server, _ = start_prefect_server(tmp_path)
        procs.append(server)
        overrides = [f"--set={k}={v}" for k, v in TINY_DCGAN.items() if k != "model.args"]
        # a cron two days ahead: the server's scheduler must create its run (it did not with
        # SQLAlchemy 2.1), and it never starts during the test
        soon = datetime.now(timezone.utc) + timedelta(days=2)
        scheduler = subprocess.Popen(
            [sys.executable, "-c", "from flows.cli import main; main()", "schedule", "--cron",
             f"0 0 {soon.day} {soon.month} *",
             "--monitor-cron", "", *overrides], cwd=data_project, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(scheduler)
        wait_for(lambda: httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json(), 120,
              "the retraining deployment", procs)
        scheduled = wait_for(lambda: httpx.post(f"{api}/flow_runs/filter", timeout=5, json={
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json(), 90, "the scheduler's cron run", procs)
        assert scheduled[0]["expected_start_time"].startswith(soon.strftime("%Y-%m-%dT00:00:00"))
        time.sleep(3)       # let the trigger's automation register
        subprocess.run([sys.executable, "-c",
                        "from prefect.events import emit_event; emit_event("
                        "event='genloop.drift.detected', "
                        "resource={'prefect.resource.id': 'genloop.model.dcgan-digits'}, "
                        f"payload={{'kinds': ['data'], 'data_rev': '{rev}'}})"],
                       env=env, check=True, timeout=60)
        runs = wait_for(lambda: _completed_runs(api), 240, "a triggered retraining run", procs)
        deployment = httpx.get(f"{api}/deployments/{runs[0]['deployment_id']}", timeout=5).json()
        assert deployment["name"] == "retrain-dcgan-digits"
        assert runs[0]["parameters"]["overrides"]["train.steps"] == TINY_DCGAN["train.steps"]
        assert runs[0]["parameters"]["data_rev"] == rev          # retrained on the event's data version
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_schedule_without_a_server_says_what_to_start(data_project):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", "schedule"],
                         cwd=data_project, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "prefect server start" in out.stderr
