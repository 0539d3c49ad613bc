"""`genloop dashboard` end to end: two real monitor flow runs and a real retraining run land
in the Evidently workspace; `genloop dashboard` serves it with `evidently ui`; headless
Chromium opens the model's project page and counts the points each panel draws; Ctrl-C
stops the UI and frees the port."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.components.test_dashboard import monitor_run
from tests.e2e.browser import chromium, screenshot, wait_in_page
from tests.e2e.processes import free_port, wait_for

pytestmark = pytest.mark.slow

# the series of one panel, found by its title: {series id: number of points drawn}
PANEL_POINTS = """
const title = arguments[0];
const heading = Array.from(document.querySelectorAll('h5, h6, span, div'))
  .find(e => e.childElementCount === 0 && e.textContent.trim() === title);
if (!heading) return null;
let card = heading;
while (card && !card.querySelector('svg .MuiMarkElement-root, svg .MuiBarElement-root')) {
  card = card.parentElement;
  if (card === document.body) return null;
}
const counts = {};
card.querySelectorAll('.MuiMarkElement-root, .MuiBarElement-root').forEach(e => {
  const series = Array.from(e.classList).find(c => /-series-/.test(c)) || 'series';
  counts[series] = (counts[series] || 0) + 1;
});
return counts;
"""


def _drifted_rows(model_tag: str, n: int = 240) -> str:
    """A drifted generator's served rows: brighter, inkier images of one class."""
    return "\n".join(json.dumps({"label": "1", "mean_intensity": 0.9, "std_intensity": 0.05 + i * 1e-3,
                                 "ink_fraction": 0.95, "model_tag": model_tag}) for i in range(n))


def _undrifted_rows(root: Path, model_tag: str, n: int = 240) -> str:
    """Served rows that look like the champion's own output: the first rows of its output
    reference (what the monitor compares against), tagged as served by the champion."""
    from components.monitoring.drift import output_reference
    from components.monitoring.run import champion_config
    from components.registry import champion_summary

    champion = champion_summary("dcgan-digits")
    reference = output_reference(champion, champion_config(champion), root / ".genloop" / "cache" /
                                 "output-reference")
    frame = reference.sample(n, random_state=1).assign(model_tag=model_tag)
    return "\n".join(json.dumps({k: (str(v) if k == "label" else v) for k, v in row.items()})
                     for row in frame.to_dict("records"))


def test_dashboard_draws_the_monitor_and_retraining_runs(trained_dcgan, data_project, tmp_path):
    from flows.monitoring import monitor

    root = tmp_path / "project"
    (root / "runs").mkdir(parents=True)
    tag = trained_dcgan["model_tag"]
    # the retraining run the session fixture made, as this project's first run
    shutil.copytree(trained_dcgan["run_dir"], root / "runs" / Path(trained_dcgan["run_dir"]).name)
    small = {"monitor.min_output_rows": 200, "monitor.output_reference_samples": 600}
    shares = []
    for name, rows in (("calm", _undrifted_rows(root, tag)), ("drifted", _drifted_rows(tag))):
        logs = tmp_path / name / "genloop_generations" / "data"
        logs.mkdir(parents=True)
        (logs / "data.0.log").write_text(rows)
        result = monitor(str(root), "dcgan-digits", ["output"], str(tmp_path / name), overrides=small)
        shares.append(result["checks"][0]["score"])
    assert shares[0] < 0.5 <= shares[1], shares
    from components.dashboard.workspace import DashboardWorkspace

    entry = DashboardWorkspace(root).projects()["dcgan-digits"]
    assert len([s for s in entry["sources"] if s.startswith("monitor-")]) == 2, entry["sources"]

    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    log = tmp_path / "dashboard.log"
    proc = subprocess.Popen([sys.executable, "-u", "-c", "from flows.cli import main; main()", "dashboard",
                             "--port", str(port)], cwd=root, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ctrl-C stops" in log.read_text(), 120, "genloop dashboard", [(proc, log)])
        printed = log.read_text()
        url = f"http://127.0.0.1:{port}"
        assert f"Evidently UI: {url}" in printed and "Prefect UI:   http://127.0.0.1:4200" in printed
        project_url = f"{url}/projects/{entry['project']}"
        assert project_url in printed
        projects = httpx.get(f"{url}/api/projects", timeout=10).json()
        assert [p["name"] for p in projects] == ["dcgan-digits"]

        with chromium(1400, 2400) as driver:
            driver.get(project_url)
            output = wait_in_page(driver, lambda d: d.execute_script(PANEL_POINTS, "Output drift share"), 60,
                                  "the output drift panel's points")
            # two monitor runs: two points for the share and two for its threshold
            assert sorted(output.values()) == [2, 2], output
            # the retraining run: its FID, the champion's it was compared with (if there was
            # one), its promotion (if promoted); one gate-decision bar; a bar per class
            gate = json.loads((root / "runs" / Path(trained_dcgan["run_dir"]).name / "gate.json").read_text())
            expected = sorted([1] + [1] * (gate.get("champion") is not None) + [1] * bool(trained_dcgan["promoted"]))
            fid = wait_in_page(driver, lambda d: d.execute_script(PANEL_POINTS, "FID over time (lower is better)"),
                               30, "the FID panel's points")
            assert sorted(fid.values()) == expected, (fid, expected)
            assert list(driver.execute_script(PANEL_POINTS, "Gate decisions").values()) == [1]
            shares = driver.execute_script(PANEL_POINTS, "Class share of generated samples")
            assert sorted(shares.values()) == [1] * 10, shares
            body = driver.execute_script("return document.body.innerText")
            assert f"Champion: {tag}" in body
            screenshot(driver, "evidently-dashboard")
            # a run added while the UI runs shows on the next page load
            assert DashboardWorkspace(root).add_run_folder(monitor_run(root, "20991231-235959", 0.9))
            driver.refresh()
            wait_in_page(driver, lambda d: sorted((d.execute_script(PANEL_POINTS, "Output drift share") or {})
                                                  .values()) == [3, 3], 30, "the third monitor run's points")
            # that run also checked the data: the data drift panel's first points (score, threshold)
            assert sorted(driver.execute_script(PANEL_POINTS, "Data drift score").values()) == [1, 1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0 and "dashboard stopped" in log.read_text()
    with socket.socket() as s:          # the UI process is gone with it
        s.bind(("127.0.0.1", port))
