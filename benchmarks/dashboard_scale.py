"""The dashboard at 100 snapshots (issue 9): time to add one run's snapshot, and the model's
project page load time in headless Chromium, each beside Evidently's bare baseline measured
in the same run.

Builds a project with RUNS run folders (half retraining runs, half monitor runs with a real
Evidently drift report each; the folder builders of tests/components/test_dashboard.py),
then:
  add:   genloop's `add_run_folder` (read the folder, build the snapshot, the index, rewrite
         the dashboard; median of 5 per kind) vs Evidently's bare `Workspace.add_run` of an
         already-built snapshot (median of 5, into a copy of the workspace);
  start: `genloop dashboard`'s workspace check (loads every snapshot, as `evidently ui` does);
  page:  the model's dashboard until the output-drift panel has drawn all its points (one
         per monitor run and series), vs Evidently's own projects page (/, no charts), same
         server, same browser session, median of 5.
Usage: .venv/bin/python benchmarks/dashboard_scale.py [RUNS]   (needs chromium + chromedriver)
"""
from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.components.test_dashboard import monitor_run, training_run  # noqa: E402  (shared builders)
from tests.e2e.test_dashboard_ui import PANEL_POINTS  # noqa: E402


def build(root: Path, runs: int) -> list[Path]:
    folders = []
    for i in range(runs):
        day, hour = 1 + i // 24, i % 24
        stamp = f"202601{day:02d}-{hour:02d}0000"
        folders.append(training_run(root, stamp, 30 - i * 0.1, promoted=i % 5 == 0) if i % 2 == 0 else
                       monitor_run(root, stamp, 0.2 + (i % 7) / 10))
    return folders


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main(runs: int = 100) -> dict:
    from evidently.ui.workspace import Workspace

    from components.dashboard.server import start
    from components.dashboard.workspace import DashboardWorkspace, figures_of, summary_snapshot
    from tests.e2e.browser import chromium
    from tests.e2e.processes import free_port

    root = Path(tempfile.mkdtemp(prefix="genloop-dashboard-bench-"))
    folders = build(root, runs)
    ws = DashboardWorkspace(root)
    build_s, _ = timed(ws.ensure)                                   # the workspace from runs/
    # five more runs of each kind, each added to the (growing) 100-run workspace: medians
    extra_train = [training_run(root, f"20260201-00000{i}", 20.0, promoted=True) for i in range(5)]
    extra_monitor = [monitor_run(root, f"20260201-01000{i}", 0.9) for i in range(5)]
    add_train_s = statistics.median(timed(lambda f=f: ws.add_run_folder(f))[0] for f in extra_train)
    add_monitor_s = statistics.median(timed(lambda f=f: ws.add_run_folder(f))[0] for f in extra_monitor)
    snapshots = sum(1 for _ in ws.path.glob("*/snapshots/*.json"))
    check_s, problem = timed(ws.problem)
    assert problem is None, problem
    # bare Evidently: add the same kind of snapshot, already built, to a copy of the workspace
    bare_path = root / "bare-workspace"
    shutil.copytree(ws.path, bare_path)
    bare = Workspace(str(bare_path))
    project = ws.projects()["dcgan-digits"]["project"]
    snapshot = summary_snapshot(figures_of(extra_train[0]))
    bare_add_s, _ = timed(lambda: bare.add_run(project, snapshot), repeat=5)

    entry = ws.projects()["dcgan-digits"]
    monitors = len([s for s in entry["sources"] if s.startswith("monitor-")])
    port = free_port()
    ui = start(ws.path, "127.0.0.1", port, log=root / "ui.log")
    page, home = [], []
    try:
        with chromium(1400, 2400) as driver:
            def until(predicate, what: str):
                deadline = time.time() + 120
                while time.time() < deadline:
                    if predicate():
                        return
                    time.sleep(0.02)
                raise TimeoutError(f"{what} did not render in 120 s")

            def dashboard_page():
                driver.get(f"{ui.url}/projects/{entry['project']}")
                until(lambda: sorted((driver.execute_script(PANEL_POINTS, "Output drift share") or {}).values())
                      == [monitors, monitors], "the output drift panel")

            def projects_page():
                driver.get(f"{ui.url}/")
                until(lambda: "dcgan-digits" in (driver.execute_script("return document.body.innerText") or ""),
                      "the projects page")

            dashboard_page(), projects_page()                       # warm the browser cache once
            for _ in range(5):
                page.append(timed(dashboard_page)[0])
                home.append(timed(projects_page)[0])
    finally:
        ui.stop()
    result = {
        "runs": runs + 10, "snapshots": snapshots,
        "build_from_runs_s": round(build_s, 2),
        "add_training_run_s": round(add_train_s, 3), "add_monitor_run_s": round(add_monitor_s, 3),
        "bare_evidently_add_run_s": round(bare_add_s, 3),
        "add_ratio_vs_bare": round(add_train_s / bare_add_s, 1),
        "workspace_check_s": round(check_s, 2),
        "dashboard_page_s": round(statistics.median(page), 2), "projects_page_s": round(statistics.median(home), 2),
        "page_ratio_vs_projects_page": round(statistics.median(page) / statistics.median(home), 2),
        "output_panel_points_per_series": monitors,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
