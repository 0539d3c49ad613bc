"""Human approval before packaging on a real `prefect server`: `genloop run` with
gate.require_approval pauses after the gate; `genloop approve` resumes it; an approval
promotes (reviewer and decision in the model's metadata), a rejection and a timeout do not."""
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TINY_DCGAN
from tests.e2e.processes import free_port, start_prefect_server, stop_processes, wait_for

pytestmark = pytest.mark.slow

GENLOOP = [sys.executable, "-c", "from flows.cli import main; main()"]
TINY = [f"--set={k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in TINY_DCGAN.items()]
APPROVAL = ["--set=gate.require_approval=true"]


def _genloop(args, cwd, env, timeout=120):
    return subprocess.run(GENLOOP + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _start_run(args, cwd, env, log: Path):
    """`genloop run` in the background, its output in `log`."""
    return subprocess.Popen(GENLOOP + ["run", *TINY, *APPROVAL, *args], cwd=cwd, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _runs(api: str, state: str | None = None) -> list[dict]:
    body = {"flow_runs": {"state": {"type": {"any_": [state]}}}} if state else {}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def _paused(api: str, name: str) -> dict | None:
    """The flow run of model `name` once it is paused for approval."""
    for run in _runs(api, "PAUSED"):
        if (run["parameters"].get("overrides") or {}).get("name", "dcgan-digits") == name:
            return run
    return None


def _state(api: str, run_id: str) -> str:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]["type"]


def _finish(proc, log: Path, seconds: float = 180) -> str:
    """Wait for a `genloop run` to exit 0; return its output."""
    try:
        rc = proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"genloop run did not finish in {seconds} s:\n{log.read_text()[-3000:]}")
    out = log.read_text()
    assert rc == 0, out[-3000:]
    return out


def _summary(out: str) -> dict:
    run_dir = out.rsplit("everything is under ", 1)[1].split()[0]
    return json.loads((Path(run_dir) / "summary.json").read_text())


def _store(env, root) -> dict:
    """Model name -> metadata of every model in the test's BentoML store, and the champions."""
    code = ("import json, bentoml\nfrom components.registry import champion_tag\n"
            "models = {str(m.tag): m.info.metadata for m in bentoml.models.list()}\n"
            "names = {t.split(':')[0] for t in models}\n"
            "print(json.dumps({'models': models, 'champions': {n: champion_tag(n) for n in names}}, default=str))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _one_error_line(out) -> str:
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def test_approve_promotes_while_reject_and_timeout_do_not(data_project, tmp_path):
    procs = []
    try:
        api, env, server, _ = start_prefect_server(tmp_path)
        procs.append(server)
        # 1. approve: the run pauses after the gate, with the approval page as an artifact
        log_a = tmp_path / "a.log"
        procs.append(run_a := _start_run([], data_project, env, log_a))
        paused = wait_for(lambda: _paused(api, "dcgan-digits"), 150, "run A paused for approval", [(run_a, log_a)])
        assert f"genloop approve {paused['id']}" in log_a.read_text()
        artifact = httpx.post(f"{api}/artifacts/filter", timeout=10,
                              json={"artifacts": {"key": {"any_": ["approval-dcgan-digits"]}}}).json()
        assert len(artifact) == 1 and artifact[0]["flow_run_id"] == paused["id"]
        assert "| fid |" in artifact[0]["data"] and "![samples](data:image/png;base64," in artifact[0]["data"]

        # the other two runs train while A waits (the FID and domain caches are warm now)
        slim = {**env, "OMP_NUM_THREADS": "1"}
        log_b, log_c = tmp_path / "b.log", tmp_path / "c.log"
        procs.append(run_b := _start_run(["--set=name=dcgan-reject"], data_project, slim, log_b))
        procs.append(run_c := _start_run(["--set=name=dcgan-timeout", "--set=gate.approval_timeout=5"],
                                         data_project, slim, log_c))
        assert _store(env, data_project)["models"] == {}                 # nothing packaged while paused
        assert _state(api, paused["id"]) == "PAUSED" and run_a.poll() is None       # still waiting
        out = _genloop(["approve", paused["id"], "--reviewer", "alice", "--comment", "looks good"],
                       data_project, env)
        assert out.returncode == 0 and "approved flow run" in out.stdout, out.stderr
        summary_a = _summary(_finish(run_a, log_a))
        assert summary_a["promoted"] and summary_a["decision"].endswith("approved by alice: looks good")
        assert _state(api, paused["id"]) == "COMPLETED"
        store = _store(env, data_project)
        champion = store["champions"]["dcgan-digits"]
        assert champion == summary_a["model_tag"]
        approval = store["models"][champion]["approval"]
        assert approval["reviewer"] == "alice" and approval["decision"] == "approve"
        assert approval["comment"] == "looks good" and approval["approved"] is True
        gate_json = json.loads((Path(summary_a["run_dir"]) / "gate.json").read_text())
        assert gate_json["approval"]["reviewer"] == "alice"

        # approving it again: it is not paused any more
        line = _one_error_line(_genloop(["approve", paused["id"]], data_project, env))
        assert "is Completed, not paused" in line
        # unknown and malformed ids
        line = _one_error_line(_genloop(["approve", "00000000-0000-0000-0000-000000000000"], data_project, env))
        assert "no flow run 00000000-0000-0000-0000-000000000000" in line
        assert "not a flow run id" in _one_error_line(_genloop(["approve", "run-42"], data_project, env))

        # 2. reject: nothing new is promoted
        paused_b = wait_for(lambda: _paused(api, "dcgan-reject"), 150, "run B paused for approval", [(run_b, log_b)])
        out = _genloop(["approve", paused_b["id"], "--reject", "--reviewer", "bob", "--comment", "too blurry"],
                       data_project, env)
        assert out.returncode == 0 and "rejected flow run" in out.stdout, out.stderr
        summary_b = _summary(_finish(run_b, log_b))
        assert not summary_b["promoted"] and summary_b["model_tag"] is None
        assert summary_b["decision"].startswith("rejected by bob: too blurry; not promoted")
        assert _state(api, paused_b["id"]) == "COMPLETED"
        approval_b = json.loads((Path(summary_b["run_dir"]) / "approval.json").read_text())
        assert approval_b["decision"] == "reject" and approval_b["reviewer"] == "bob"

        # 3. no decision within gate.approval_timeout: not promoted; Prefect fails the paused run
        summary_c = _summary(_finish(run_c, log_c))
        assert not summary_c["promoted"] and summary_c["model_tag"] is None
        assert summary_c["decision"].startswith("no decision within 5 s: not promoted")
        run_c_id = next(r["id"] for r in _runs(api) if r["parameters"]["overrides"].get("name") == "dcgan-timeout")
        # Prefect ends a run whose pause expired Failed ("never resumed") or, seen with
        # SQLAlchemy 2.0, Completed; either way it is no longer paused and nothing was promoted
        assert _state(api, run_c_id) in ("FAILED", "COMPLETED")
        assert "not paused" in _one_error_line(_genloop(["approve", run_c_id], data_project, env))

        store = _store(env, data_project)
        assert {tag.split(":")[0] for tag in store["models"]} == {"dcgan-digits"}     # only A was stored
        assert store["champions"] == {"dcgan-digits": champion}
    finally:
        stop_processes(procs)


def test_approval_without_a_server_says_what_to_start(data_project):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    before = set((data_project / "runs").glob("*")) if (data_project / "runs").is_dir() else set()
    line = _one_error_line(_genloop(["run", *APPROVAL], data_project, env))
    assert "prefect server start" in line and "PREFECT_API_URL" in line
    after = set((data_project / "runs").glob("*")) if (data_project / "runs").is_dir() else set()
    assert after == before                                    # refused before any run dir, let alone training
    line = _one_error_line(_genloop(["approve", "00000000-0000-0000-0000-000000000000"], data_project, env))
    assert "PREFECT_API_URL" in line


def test_approve_says_when_the_server_is_unreachable_or_the_reviewer_empty(data_project):
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    run_id = "00000000-0000-0000-0000-000000000000"
    assert "cannot reach the Prefect server" in _one_error_line(_genloop(["approve", run_id], data_project, env))
    assert "--reviewer" in _one_error_line(_genloop(["approve", run_id, "--reviewer", " "], data_project, env))
