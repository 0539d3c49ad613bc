"""The Prefect UI in a real browser: one tiny retraining with gate.require_approval against a
real `prefect server`; headless Chromium finds the paused run in the flow runs list, approves
it through the run's Resume form, then opens its Artifacts tab, the history of
`metrics-<model>`, the table itself and the report with its embedded sample grid.

Routes are those of the UI that Prefect 3.8.8 serves by default (the React UI shipped in
prefect/server/ui-v2, mounted under /v2; the older Vue UI stays at /): /v2/runs,
/v2/runs/flow-run/<id>, /v2/artifacts/key/<key>, /v2/artifacts/artifact/<id>."""
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TINY_DCGAN
from tests.e2e.browser import chromium, screenshot, wait_in_page
from tests.e2e.processes import start_prefect_server, stop_processes, wait_for

pytestmark = pytest.mark.slow

GENLOOP = [sys.executable, "-c", "from flows.cli import main; main()"]
TINY = [f"--set={k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in TINY_DCGAN.items()]
MODEL = "dcgan-digits"
REVIEWER, COMMENT = "carol", "grid looks right in the UI"


def _runs(api: str) -> list[dict]:
    return httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()


def _artifact(api: str, key: str) -> dict:
    found = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}}, timeout=10).json()
    assert len(found) == 1, found
    return found[0]


def _text(d) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.TAG_NAME, "body").text


def _cell(d, quantity: str):
    """The value cell of a row of a table artifact, by its `quantity`."""
    from selenium.webdriver.common.by import By

    return d.find_element(By.XPATH, f"//td[normalize-space()='{quantity}']/following-sibling::td[1]")


def _resume_form(d, approve: bool, reviewer: str, comment: str):
    """Fill in and send the Resume form of the paused flow run open in the browser: the
    fields Prefect draws from flows/approval.py ApprovalInput."""
    from selenium.webdriver.common.by import By

    wait_in_page(d, lambda d: d.find_element(By.XPATH, "//button[normalize-space()='Open menu']"), 30,
                 "the flow run's menu").click()
    wait_in_page(d, lambda d: d.find_element(By.XPATH, "//*[@role='menuitem'][normalize-space()='Resume']"), 10,
                 "Resume in the flow run's menu").click()
    dialog = wait_in_page(d, lambda d: d.find_element(By.XPATH, "//*[@role='dialog'][.//label]"), 30,
                          "the Resume form")

    def field(label: str):
        return dialog.find_element(By.ID, dialog.find_element(
            By.XPATH, f".//label[starts-with(normalize-space(), '{label}')]").get_attribute("for"))

    switch = field("Approve")
    if (switch.get_attribute("aria-checked") == "true") != approve:
        switch.click()
    assert switch.get_attribute("aria-checked") == ("true" if approve else "false")
    field("Reviewer").send_keys(reviewer)
    field("Comment").send_keys(comment)
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Resume']").click()


def test_the_prefect_ui_resumes_the_run_and_shows_its_artifacts(data_project, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By

    # start_prefect_server sets PREFECT_UI_API_URL=/api: else the UI calls port 4200, not the server's
    procs = []
    try:
        api, env, server, _ = start_prefect_server(tmp_path)
        procs.append(server)
        base = api.removesuffix("/api")
        log = tmp_path / "run.log"
        procs.append(proc := subprocess.Popen(GENLOOP + ["run", *TINY, "--set=gate.require_approval=true"],
                                              cwd=data_project, env=env, stdout=log.open("w"),
                                              stderr=subprocess.STDOUT, start_new_session=True))
        run = wait_for(lambda: next((r for r in _runs(api) if r["state"]["type"] == "PAUSED"), None), 180,
                       "the retraining paused for approval", [(proc, log)])

        with chromium() as d:
            # the flow runs page lists the retraining run by name; its page has the Resume form
            d.get(f"{base}/v2/runs")
            wait_in_page(d, lambda d: d.find_element(By.XPATH, f"//a[normalize-space()='{run['name']}']"),
                         60, f"flow run {run['name']} in the runs list")
            # the flow's name comes from a request of its own, after the run's row (it was
            # missing from the row once, under load)
            wait_in_page(d, lambda d: "genloop-retrain" in _text(d), 60, "the flow name genloop-retrain in the runs list")
            # found again: the row may have been drawn anew meanwhile
            d.find_element(By.XPATH, f"//a[normalize-space()='{run['name']}']").click()
            wait_in_page(d, lambda d: f"/runs/flow-run/{run['id']}" in d.current_url, 30, "the flow run page")
            _resume_form(d, True, REVIEWER, COMMENT)
            try:
                rc = proc.wait(120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the run did not finish after the UI resumed it:\n{log.read_text()[-3000:]}")
            out = log.read_text()
            assert rc == 0, out[-3000:]
            run_dir = Path(out.rsplit("everything is under ", 1)[1].split()[0])
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["promoted"] and summary["decision"].endswith(f"approved by {REVIEWER}: {COMMENT}")
            approval = json.loads((run_dir / "approval.json").read_text())
            assert (approval["decision"], approval["reviewer"], approval["comment"]) == ("approve", REVIEWER, COMMENT)
            assert httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()["state"]["type"] == "COMPLETED"

            # its Artifacts tab: the approval page, the metrics table and the report, by key
            d.refresh()
            wait_in_page(d, lambda d: d.find_element(By.XPATH, "//*[@role='tab'][normalize-space()='Artifacts']"),
                         30, "the Artifacts tab").click()
            keys = [f"approval-{MODEL}", f"metrics-{MODEL}", f"report-{MODEL}"]
            wait_in_page(d, lambda d: all(d.find_elements(By.XPATH, f"//*[normalize-space(text())='{k}']")
                                          for k in keys), 30, f"{', '.join(keys)} in the Artifacts tab")
            assert "Completed" in _text(d)
            screenshot(d, "prefect-run-artifacts")

            d.get(f"{base}/v2/runs")
            wait_in_page(d, lambda d: run["name"] in _text(d) and "Completed" in _text(d), 30,
                         f"{run['name']} Completed in the runs list")
            screenshot(d, "prefect-flow-runs")

            # the key's history lists this run's version; the version's table shows the FID
            table, report = _artifact(api, f"metrics-{MODEL}"), _artifact(api, f"report-{MODEL}")
            assert table["flow_run_id"] == report["flow_run_id"] == run["id"]
            d.get(f"{base}/v2/artifacts/key/metrics-{MODEL}")
            version = wait_in_page(d, lambda d: d.find_element(
                By.XPATH, f"//a[contains(@href, '/artifacts/artifact/{table['id']}')]"), 30,
                f"this run's version in the history of metrics-{MODEL}")
            assert run["name"] in _text(d)
            version.click()
            fid = json.loads((run_dir / "evaluate" / "metrics.json").read_text())["fid"]
            cell = wait_in_page(d, lambda d: _cell(d, "fid"), 30, "the fid row of the table")
            assert cell.text.strip() == str(float(f"{fid:.5g}"))          # the table's rounding
            assert " .. " in _cell(d, "fid 95% interval").text and _cell(d, "promoted").text.strip() == "yes"
            screenshot(d, "prefect-metrics-table")

            # the report renders the sample grid from its data URI (no local file behind it)
            d.get(f"{base}/v2/artifacts/artifact/{report['id']}")
            size = wait_in_page(d, lambda d: d.execute_script(
                "const i = [...document.images].find(i => i.alt === 'samples' && i.src.startsWith('data:image/png'));"
                "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;"),
                30, "the embedded sample grid, decoded")
            assert tuple(size) == Image.open(run_dir / "evaluate" / "samples.png").size    # the run's grid
            assert f"approved by {REVIEWER}" in _text(d)
            screenshot(d, "prefect-report-artifact")
    finally:
        stop_processes(procs)
