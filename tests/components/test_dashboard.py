"""The Evidently workspace behind `genloop dashboard`: snapshots built from run folders, one
project per model, panels over time, duplicates refused, a corrupt workspace moved aside and
rebuilt from runs/, and a clear error for a port in use."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.dashboard.server import check_port
from components.dashboard.workspace import DashboardWorkspace, figures_of
from components.errors import GenloopError

CLASSES = [str(i) for i in range(10)]


def training_run(root: Path, stamp: str, fid: float, promoted: bool, model: str = "dcgan-digits",
                 finished: bool = True) -> Path:
    """A retraining run folder as the flow writes it (the files the dashboard reads)."""
    run_id = f"{stamp}-{model}-abcd"
    run = root / "runs" / run_id
    (run / "evaluate").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": run_id, "config": {"name": model, "data": {
        "labels": CLASSES}}}))
    (run / "evaluate" / "metrics.json").write_text(json.dumps({
        "fid": fid, "kid": 0.01, "fid_interval": {"low": fid - 1, "high": fid + 1}, "precision": 0.7}))
    (run / "gate.json").write_text(json.dumps({
        "promote": promoted, "challenger": {"metric": "fid", "value": fid},
        "champion": {"metric": "fid", "value": 30.0, "tag": f"{model}:old"}}))
    (run / "bias.json").write_text(json.dumps({"audit": "class_share", "passed": True, "tv_distance": 0.05,
                                               "generated_share": [0.1] * 10}))
    if finished:
        (run / "summary.json").write_text(json.dumps({
            "run_id": run_id, "model_name": model, "promoted": promoted, "decision": "fid beats the champion",
            "model_tag": f"{model}:{stamp[-4:]}" if promoted else None, "data_md5": "m1"}))
    return run


def evidently_snapshot(path: Path, shift: float) -> Path:
    """A real Evidently drift report snapshot, as the monitor's adapter writes it."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=["x"])
    ref = pd.DataFrame({"x": [i / 50 for i in range(50)]})
    cur = pd.DataFrame({"x": [i / 50 + shift for i in range(50)]})
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=definition),
                                               Dataset.from_pandas(ref, data_definition=definition))
    path.write_text(snapshot.dumps())
    return path


def monitor_run(root: Path, stamp: str, share: float, model: str = "dcgan-digits") -> Path:
    folder = root / "runs" / f"monitor-{stamp}-{model}"
    folder.mkdir(parents=True)
    evidently_snapshot(folder / "drift_report.snapshot.json", shift=share)
    (folder / "monitor.json").write_text(json.dumps({
        "model_name": model, "model_tag": f"{model}:abcd", "fired": ["output"] if share > 0.5 else [],
        "retrain": False, "newest": {"data_md5": ""},
        "checks": [{"kind": "output", "fired": share > 0.5, "score": share, "threshold": 0.5, "summary": "",
                    "details": {}},
                   {"kind": "data", "fired": False, "score": 0.002, "threshold": 0.01, "summary": "",
                    "details": {"class_share_tv": 0.01, "current_class_share": {"0": 0.5, "1": 0.5}}}]}))
    return folder


def snapshot_files(ws: DashboardWorkspace, model: str) -> list[dict]:
    project = ws.projects()[model]["project"]
    return [json.loads(p.read_text()) for p in sorted((ws.path / project / "snapshots").glob("*.json"))]


def test_run_folders_become_snapshots_in_one_project_per_model(tmp_path):
    ws = DashboardWorkspace(tmp_path)
    first = training_run(tmp_path, "20260101-100000", 31.5, promoted=False)
    assert ws.add_run_folder(first)                  # creates the workspace
    second = training_run(tmp_path, "20260102-100000", 25.0, promoted=True)
    monitor = monitor_run(tmp_path, "20260103-100000", 0.8)
    other = training_run(tmp_path, "20260101-110000", 12.0, promoted=True, model="vae-digits")
    for folder in (second, monitor, other):
        assert ws.add_run_folder(folder)
    assert not ws.add_run_folder(second), "a run added twice must not add a second snapshot"
    projects = ws.projects()
    assert set(projects) == {"dcgan-digits", "vae-digits"}
    assert projects["dcgan-digits"]["champion"]["tag"] == "dcgan-digits:0000"
    snapshots = snapshot_files(ws, "dcgan-digits")
    # two training snapshots, one monitor summary and the monitor's Evidently report
    assert sorted(s["tags"][0] for s in snapshots) == ["drift-report", "monitor", "training", "training"]
    values = {(s["metadata"]["genloop_source"], r["metric_value_location"]["metric"]["params"]["column"]):
              r["value"] for s in snapshots if s["tags"] == ["training"] or s["tags"] == ["monitor"]
              for r in s["metric_results"].values()}
    assert values[(first.name, "fid")] == 31.5 and values[(first.name, "promoted")] == 0.0
    assert values[(second.name, "promoted_score")] == 25.0 and (first.name, "promoted_score") not in values
    assert values[(second.name, "share:3")] == 0.1
    assert values[(monitor.name, "output_drift_share")] == 0.8 and values[(monitor.name, "fired_output")] == 1.0
    assert values[(monitor.name, "data_share:1")] == 0.5
    report = next(s for s in snapshots if s["tags"] == ["drift-report"])
    assert any("DriftedColumnsCount" in r["metric_value_location"]["metric"]["params"]["type"]
               for r in report["metric_results"].values())
    # the dashboard: champion tag, FID over time with the promotion series, drift panels
    board = json.loads((ws.path / projects["dcgan-digits"]["project"] / "dashboard.json").read_text())
    titles = [p["title"] for p in board["panels"]]
    assert titles[0] == "Champion: dcgan-digits:0000"
    assert {"FID over time (lower is better)", "Data drift score", "Output drift share",
            "Class share of generated samples"} <= set(titles)
    fid_panel = next(p for p in board["panels"] if p["title"].startswith("FID over time"))
    assert {v["metric_labels"]["column"] for v in fid_panel["values"]} == {
        "fid", "champion_score", "promoted_score", "staleness_score"}


def test_the_workspace_loads_the_way_evidently_ui_loads_it(tmp_path):
    from evidently.ui.service.storage.local.base import InMemoryDataStorage, LocalState

    ws = DashboardWorkspace(tmp_path)
    ws.add_run_folder(training_run(tmp_path, "20260101-100000", 31.5, promoted=True))
    ws.add_run_folder(monitor_run(tmp_path, "20260103-100000", 0.2))
    assert ws.problem() is None
    state = LocalState.load(str(ws.path), None)
    points = InMemoryDataStorage(str(ws.path), state)._metrics_points
    (project_points,) = points.values()
    columns = {item.params.get("column") for items in project_points.values() for item in items}
    assert {"fid", "output_drift_share", "promoted_score"} <= columns


def test_an_unfinished_run_is_not_added(tmp_path):
    unfinished = training_run(tmp_path, "20260101-100000", 31.5, promoted=False, finished=False)
    assert figures_of(unfinished) is None
    assert not DashboardWorkspace(tmp_path).add_run_folder(unfinished)


def test_a_corrupt_workspace_is_moved_aside_and_rebuilt_from_runs(tmp_path):
    ws = DashboardWorkspace(tmp_path)
    ws.add_run_folder(training_run(tmp_path, "20260101-100000", 31.5, promoted=True))
    ws.add_run_folder(monitor_run(tmp_path, "20260103-100000", 0.2))
    project = ws.projects()["dcgan-digits"]["project"]
    broken = next((ws.path / project / "snapshots").glob("*.json"))
    broken.write_text('{"metric_results": ')                  # a truncated write
    assert ws.problem() is not None
    message = ws.ensure()
    assert "was corrupt" in message and "moved it to" in message and "2 run folders" in message
    aside = [p for p in tmp_path.joinpath(".genloop").iterdir() if p.name.startswith("evidently.corrupt-")]
    assert len(aside) == 1 and (aside[0] / project / "snapshots" / broken.name).read_text() == \
        '{"metric_results": '                                  # kept, not deleted
    assert ws.problem() is None and len(ws.projects()["dcgan-digits"]["sources"]) == 2
    # adding a run to a corrupt workspace repairs it first, and the new run is in it
    (ws.path / ws.projects()["dcgan-digits"]["project"] / "metadata.json").write_text("not json")
    new = training_run(tmp_path, "20260104-100000", 20.0, promoted=True)
    assert ws.add_run_folder(new)
    assert len([p for p in tmp_path.joinpath(".genloop").iterdir() if p.name.startswith("evidently.corrupt-")]) == 2
    assert ws.problem() is None and new.name in ws.projects()["dcgan-digits"]["sources"]


def test_a_missing_workspace_is_built_from_the_run_folders(tmp_path):
    training_run(tmp_path, "20260101-100000", 31.5, promoted=True)
    monitor_run(tmp_path, "20260103-100000", 0.2)
    (tmp_path / "runs" / "monitor-20260104-100000-dcgan-digits.partial").mkdir()   # a check that failed
    ws = DashboardWorkspace(tmp_path)
    assert "2 runs" in ws.ensure()
    assert len(ws.projects()["dcgan-digits"]["sources"]) == 2
    assert ws.ensure() is None                                  # nothing to repair the second time


def test_a_port_in_use_names_the_port_and_the_option(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(GenloopError, match=f"port {port} on 127.0.0.1 is in use.*--port"):
            check_port("127.0.0.1", port)
        out = subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", "dashboard",
                              "--port", str(port)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and f"port {port}" in out.stderr and "--port" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / ".genloop" / "evidently").exists()     # nothing created before the check
    with pytest.raises(GenloopError, match="not a TCP port"):
        check_port("127.0.0.1", 70000)


def test_a_text_run_draws_perplexity_and_the_audit_groups(tmp_path):
    run = training_run(tmp_path, "20260101-100000", 0.0, promoted=True, model="charlm-pydocs")
    (run / "evaluate" / "metrics.json").write_text(json.dumps({"perplexity": 5.07, "bits_per_char": 2.34}))
    (run / "gate.json").write_text(json.dumps({"challenger": {"metric": "perplexity", "value": 5.07}}))
    (run / "bias.json").write_text(json.dumps({"audit": "sentiment_gap", "passed": True, "representation": {
        "share": {"man": 0.25, "woman": 0.75}}}))
    ws = DashboardWorkspace(tmp_path)
    assert ws.add_run_folder(run)
    entry = ws.projects()["charlm-pydocs"]
    assert entry["metric"] == "perplexity" and entry["classes"] == ["man", "woman"]
    board = json.loads((ws.path / entry["project"] / "dashboard.json").read_text())
    titles = [p["title"] for p in board["panels"]]
    assert "perplexity over time (lower is better)" in titles and "KID" not in titles
    assert "perplexity 5.07" in board["panels"][0]["subtitle"]
    (snapshot,) = snapshot_files(ws, "charlm-pydocs")
    values = {r["metric_value_location"]["metric"]["params"]["column"]: r["value"]
              for r in snapshot["metric_results"].values()}
    assert values["perplexity"] == 5.07 and values["share:woman"] == 0.75 and "fid" not in values


def test_a_dashboard_failure_does_not_fail_the_run(tmp_path, caplog):
    from components.dashboard.workspace import record_run

    run = training_run(tmp_path, "20260101-100000", 31.5, promoted=True)
    (tmp_path / ".genloop").write_text("a file where the state folder belongs")
    assert record_run(tmp_path, run) is False
    assert "was not added to the Evidently workspace" in caplog.text and "--rebuild" in caplog.text


def test_an_interrupted_rebuild_leaves_the_old_workspace_whole(tmp_path, monkeypatch):
    ws = DashboardWorkspace(tmp_path)
    ws.add_run_folder(training_run(tmp_path, "20260101-100000", 31.5, promoted=True))
    ws.add_run_folder(monitor_run(tmp_path, "20260103-100000", 0.2))
    before = ws.projects()
    calls = []

    def interrupted(self, run):
        calls.append(run.source)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, run)
    original = DashboardWorkspace._add_unlocked
    monkeypatch.setattr(DashboardWorkspace, "_add_unlocked", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ws.rebuild()
    monkeypatch.setattr(DashboardWorkspace, "_add_unlocked", original)
    assert ws.projects() == before and ws.problem() is None
    assert ws.rebuild() == 2 and ws.projects()["dcgan-digits"]["sources"] == before["dcgan-digits"]["sources"]
    assert not [p for p in (tmp_path / ".genloop").iterdir() if ".corrupt-" in p.name]   # a sound one is replaced


def test_a_corrupt_dashboard_file_is_found(tmp_path):
    ws = DashboardWorkspace(tmp_path)
    ws.add_run_folder(training_run(tmp_path, "20260101-100000", 31.5, promoted=True))
    (ws.path / ws.projects()["dcgan-digits"]["project"] / "dashboard.json").write_text('{"tabs": [')
    assert ws.problem() is not None and "was corrupt" in ws.ensure() and ws.problem() is None


def test_a_retry_after_a_crash_does_not_duplicate_snapshots(tmp_path):
    ws = DashboardWorkspace(tmp_path)
    ws.add_run_folder(training_run(tmp_path, "20260101-100000", 31.5, promoted=True))
    run = monitor_run(tmp_path, "20260103-100000", 0.2)
    index = json.loads((ws.path / "genloop-index.json").read_text())
    ws.add_run_folder(run)
    (ws.path / "genloop-index.json").write_text(json.dumps(index))   # crashed before the index was written
    assert ws.add_run_folder(run)
    assert len(snapshot_files(ws, "dcgan-digits")) == 3              # training + monitor summary + its report


def test_a_port_left_in_time_wait_is_free_to_the_dashboard():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)      # as uvicorn listens
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()                     # the server side closes first: its end waits in TIME_WAIT
        client.close()
    check_port("127.0.0.1", port)        # uvicorn could bind it, so the check must not refuse it
