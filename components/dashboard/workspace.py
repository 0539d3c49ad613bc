"""The Evidently workspace at .genloop/evidently: one project per model; each retraining run
and each monitor run adds a snapshot of its figures (metrics.py), and a monitor run also adds
its Evidently drift reports, so a person can open them from the dashboard. The dashboard's
panels are rewritten with every snapshot (the champion's tag is one of them).

The run folders under runs/ stay the source of truth: every snapshot is built from the files
a run wrote (summary.json, gate.json, evaluate/metrics.json, bias.json; monitor.json and the
reports' snapshot files), so a missing workspace is rebuilt from them, and a corrupt one is
moved aside (kept, not deleted) and rebuilt."""
from __future__ import annotations

import fcntl
import json
import logging
import math
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from components.errors import GenloopError
from components.paths import ProjectPaths

log = logging.getLogger(__name__)

SOURCE = "genloop_source"           # snapshot metadata: the run folder it was built from
INDEX = "genloop-index.json"        # {model: {"project": id, "sources": [...]}}: Evidently ignores files here
TRAINING, MONITOR, REPORT = "training", "monitor", "drift-report"


# ---------------------------------------------------------------- figures from run folders

@dataclass
class RunFigures:
    """What one snapshot holds: the figures of one run folder, and where they came from."""
    model_name: str
    source: str                       # the run folder's name (unique per run)
    tag: str                          # TRAINING | MONITOR
    timestamp: datetime
    figures: dict[str, float]
    metadata: dict[str, str]
    reports: list[Path] = field(default_factory=list)     # Evidently snapshots of the monitor's reports
    classes: list[str] = field(default_factory=list)


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d-%H%M%S")


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GenloopError(f"cannot read {path}: {exc}") from exc


def training_figures(run_dir: Path) -> RunFigures | None:
    """The figures of a finished retraining run; None for a run that did not finish (no summary.json)."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        return None
    summary, run = _read(run_dir / "summary.json"), _read(run_dir / "run.json")
    gate = _read(run_dir / "gate.json") if (run_dir / "gate.json").is_file() else {}
    metrics_path = run_dir / "evaluate" / "metrics.json"
    metrics = _read(metrics_path) if metrics_path.is_file() else {}
    bias = _read(run_dir / "bias.json") if (run_dir / "bias.json").is_file() else {}
    challenger = gate.get("challenger") or {}
    metric = challenger.get("metric") or ("fid" if "fid" in metrics else "perplexity")
    figures: dict[str, float | None] = {metric: _number(metrics.get(metric, challenger.get("value")))}
    interval = metrics.get("fid_interval") or {}
    figures.update(fid_low=_number(interval.get("low")), fid_high=_number(interval.get("high")))
    for key in ("kid", "precision", "recall", "density", "coverage", "bits_per_char"):
        figures[key] = _number(metrics.get(key))
    champion = gate.get("champion") or {}
    figures["champion_score"] = _number(champion.get("value"))
    promoted = bool(summary.get("promoted"))
    figures["promoted"] = 1.0 if promoted else 0.0
    if promoted:
        figures["promoted_score"] = figures[metric]
    memorisation = _read(run_dir / "memorisation.json") if (run_dir / "memorisation.json").is_file() else {}
    audits = [a for a in (bias, memorisation) if "passed" in a]
    if audits:
        figures["audit_passed"] = 1.0 if all(a["passed"] for a in audits) else 0.0
    classes: list[str] = []
    if bias.get("audit") == "class_share":
        classes = [str(c) for c in run["config"]["data"]["labels"]]
        figures["tv_distance"] = _number(bias.get("tv_distance"))
        for name, share in zip(classes, bias.get("generated_share") or []):
            figures[f"share:{name}"] = _number(share)
    elif bias.get("audit") == "sentiment_gap":
        shares = (bias.get("representation") or {}).get("share") or {}
        classes = [str(g) for g in shares]
        figures.update({f"share:{g}": _number(v) for g, v in shares.items()})
    metadata = {"run_id": summary["run_id"], "kind": TRAINING, "metric": metric,
                "promoted": str(promoted).lower(), "decision": str(summary.get("decision", ""))[:300],
                "model_tag": str(summary.get("model_tag") or ""), "data_md5": str(summary.get("data_md5") or ""),
                "champion_tag": str(champion.get("tag") or "")}
    # drawn at the run's end (its start plus its stages' seconds): a promotion is placed after
    # the monitor runs that still checked the old champion
    finished = _stamp(summary["run_id"][:15]) + timedelta(
        seconds=sum(float(stage.get("seconds") or 0) for stage in summary.get("stages", [])))
    return RunFigures(summary.get("model_name") or run["config"]["name"], run_dir.name, TRAINING, finished,
                      {k: v for k, v in figures.items() if v is not None}, metadata, classes=classes)


def monitor_figures(report_dir: Path) -> RunFigures | None:
    """The figures of a finished monitor run (runs/monitor-<time>-<model>/monitor.json)."""
    report_dir = Path(report_dir)
    if not (report_dir / "monitor.json").is_file() or report_dir.name.endswith(".partial"):
        return None
    result = _read(report_dir / "monitor.json")
    figures: dict[str, float | None] = {}
    reports: list[Path] = []
    classes: list[str] = []
    for check in result.get("checks", []):
        kind, details = check["kind"], check.get("details") or {}
        figures[f"fired_{kind}"] = 1.0 if check.get("fired") else 0.0
        if kind == "data":
            figures.update(data_drift_score=_number(check.get("score")),
                           data_drift_threshold=_number(check.get("threshold")),
                           class_share_tv=_number(details.get("class_share_tv")))
            shares = details.get("current_class_share") or {}
            classes = sorted(shares)
            figures.update({f"data_share:{c}": _number(v) for c, v in shares.items()})
            snapshot = report_dir / "data_drift.snapshot.json"
        elif kind == "staleness":
            figures.update(staleness_score=_number(check.get("score")),
                           staleness_limit=_number(check.get("threshold")))
            snapshot = None
        else:
            figures.update(output_drift_share=_number(check.get("score")),
                           output_drift_threshold=_number(check.get("threshold")))
            snapshot = report_dir / "drift_report.snapshot.json"
        if snapshot is not None and snapshot.is_file():
            reports.append(snapshot)
    stamp = report_dir.name.split("-", 1)[1][:15] if report_dir.name.startswith("monitor-") else ""
    try:
        when = _stamp(stamp) + timedelta(seconds=float(result.get("seconds") or 0))     # its end
    except ValueError:
        when = datetime.fromtimestamp((report_dir / "monitor.json").stat().st_mtime)
    metadata = {"kind": MONITOR, "model_tag": str(result.get("model_tag", "")),
                "fired": ",".join(result.get("fired") or []) or "none",
                "retrain": str(bool(result.get("retrain"))).lower(),
                "data_md5": str((result.get("newest") or {}).get("data_md5") or "")}
    return RunFigures(result["model_name"], report_dir.name, MONITOR, when,
                      {k: v for k, v in figures.items() if v is not None}, metadata, reports, classes)


def figures_of(folder: Path) -> RunFigures | None:
    folder = Path(folder)
    return monitor_figures(folder) if (folder / "monitor.json").is_file() else training_figures(folder)


# ---------------------------------------------------------------- the workspace

@contextmanager
def _locked(path: Path):
    """One writer at a time (overlapping monitor runs, a retraining run, a rebuild)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class DashboardWorkspace:
    """genloop's view of the Evidently workspace of one project root."""

    def __init__(self, root: Path | str, path: Path | None = None):
        self.paths = ProjectPaths.at(root)
        self.path = Path(path) if path else self.paths.evidently

    # -- checks and repair

    def problem(self) -> str | None:
        """Why the workspace cannot be served as it is (None: it can). Loads it the way
        `evidently ui` does, every snapshot included, and each project's dashboard."""
        if not self.path.exists():
            return None
        if not self.path.is_dir():
            return f"{self.path} is a file, not a folder"
        try:
            from evidently.sdk.models import DashboardModel
            from evidently.ui.service.storage.local.base import LocalState
            from evidently.ui.storage.local.base import DASHBOARD_FILE_NAME

            state = LocalState.load(str(self.path), None)
            for project_id in state.projects:
                board = self.path / str(project_id) / DASHBOARD_FILE_NAME
                if board.exists():
                    DashboardModel.parse_raw(board.read_text())
            index = self.path / INDEX
            if index.exists():
                json.loads(index.read_text())
        except Exception as exc:             # any parse failure means the UI would fail on it
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return None

    def ensure(self) -> str | None:
        """A workspace that loads: built from runs/ when missing; when corrupt, moved aside
        (kept) and rebuilt. Returns a message for the person when it did either."""
        with _locked(self.path):
            if not self.path.exists():
                count, _ = self._rebuild_unlocked()
                return f"created the Evidently workspace {self.path} ({count} runs from runs/)" if count else None
            reason = self.problem()
            if reason is None:
                return None
            count, aside = self._rebuild_unlocked()
            return (f"the Evidently workspace {self.path} was corrupt ({reason}); moved it to {aside} and built "
                    f"a fresh one from {count} run folders under runs/ (restart `genloop dashboard` if it is "
                    f"running: the projects have new ids)")

    def rebuild(self) -> int:
        """Rebuild from runs/. The old workspace is replaced only once the new one is built;
        a corrupt one is kept aside, a sound one removed (it holds only derived data)."""
        with _locked(self.path):
            keep = self.path.exists() and self.problem() is not None
            count, aside = self._rebuild_unlocked()
            if aside is not None and not keep:
                shutil.rmtree(aside) if aside.is_dir() else aside.unlink()
            return count

    def _rebuild_unlocked(self) -> tuple[int, Path | None]:
        """Build a workspace from runs/ in a staging folder and move it into place: an error
        or an interruption midway leaves the old workspace (or none), never half a new one.
        Returns the number of runs and where the old workspace went (None: there was none)."""
        staging = self.path.with_name(self.path.name + ".rebuild")
        if staging.exists():
            shutil.rmtree(staging)
        fresh = DashboardWorkspace(self.paths.root, staging)
        staging.mkdir(parents=True)
        runs = []
        folders = [p for p in self.paths.runs.iterdir() if p.is_dir()] if self.paths.runs.is_dir() else []
        for folder in folders:
            try:
                run = figures_of(folder)
            except Exception as exc:          # one unreadable folder must not stop the others
                log.warning("dashboard: skipped %s: %s", folder, exc)
                continue
            if run is not None:
                runs.append(run)
        for run in sorted(runs, key=lambda r: (r.timestamp, r.source)):
            try:
                fresh._add_unlocked(run)
            except Exception as exc:
                log.warning("dashboard: skipped %s: %s", run.source, exc)
                runs.remove(run)
        aside = None
        if self.path.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            number = 1
            while aside.exists():
                number += 1
                aside = aside.with_name(f"{aside.name.rsplit('~', 1)[0]}~{number}")
            self.path.rename(aside)
        staging.rename(self.path)
        return len(runs), aside

    # -- adding runs

    def add_run_folder(self, folder: Path | str) -> bool:
        """Add the snapshot of one finished run folder (a retraining run or a monitor run).
        False when the folder is not a finished run or was added before."""
        run = figures_of(Path(folder))
        if run is None:
            return False
        if not self.path.exists():
            message = self.ensure()          # built from runs/, which includes this folder
            if message:
                log.info(message)
            return True
        try:
            with _locked(self.path):
                return self._add_unlocked(run)
        except Exception:
            if self.problem() is None:       # not the workspace's fault
                raise
        message = self.ensure()              # moved aside and rebuilt from runs/, this folder included
        log.warning(message)
        return True

    def _index(self) -> dict:
        path = self.path / INDEX
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_index(self, index: dict) -> None:
        self._write(INDEX, index)

    def _write(self, relative: str, payload: dict) -> None:
        """One file of Evidently's local workspace layout, written whole or not at all: a
        running `evidently ui` watches the folder and must never read half a snapshot. The
        file is written next to the workspace and moved in: the UI's watcher sees a move
        from outside its folder as a new file (a rename inside it is ignored)."""
        import os

        from evidently.legacy.utils import NumpyEncoder

        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.paths.evidently.with_name(self.paths.evidently.name + ".staging")
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / f"{os.getpid()}-{path.name}"
        tmp.write_text(json.dumps(payload, cls=NumpyEncoder))
        tmp.replace(path)

    def _add_unlocked(self, run: RunFigures) -> bool:
        # Evidently's `Workspace` object would do these writes, but constructing one loads
        # every snapshot of the workspace (its dataset manager), which made each add O(runs):
        # 0.9 s at 100 runs. The files and their layout are those of its LocalState.
        from evidently.sdk.models import ProjectModel
        from evidently.ui.storage.local.base import DASHBOARD_FILE_NAME, PROJECT_FILE_NAME, SNAPSHOTS_DIR_NAME

        index = self._index()
        entry = index.get(run.model_name)
        if entry is not None and (self.path / entry["project"] / PROJECT_FILE_NAME).is_file():
            ProjectModel.parse_raw((self.path / entry["project"] / PROJECT_FILE_NAME).read_text())  # corrupt: raises
        if entry is None or not (self.path / entry["project"] / PROJECT_FILE_NAME).is_file():
            project = ProjectModel(name=run.model_name,
                                   description=f"genloop model {run.model_name}: retraining and monitor runs")
            self._write(f"{project.id}/{PROJECT_FILE_NAME}", json.loads(project.json()))
            entry = index[run.model_name] = {"project": str(project.id), "sources": [], "classes": []}
        if run.source in entry["sources"]:
            return False
        project_id = entry["project"]
        snapshots = [(f"{run.tag} {run.source}", summary_snapshot(run))]
        snapshots += [(f"{report.stem.split('.')[0]} {run.source}", report_snapshot(report, run))
                      for report in run.reports]
        for name, snapshot in snapshots:
            snapshot.set_name(name)
            # the same run always gets the same id: a retry after a crash rewrites, not duplicates
            snapshot_id = uuid.uuid5(uuid.NAMESPACE_URL, f"genloop/{project_id}/{name}")
            self._write(f"{project_id}/{SNAPSHOTS_DIR_NAME}/{snapshot_id}.json", snapshot.to_snapshot_model().dict())
        entry["sources"].append(run.source)
        key = "classes" if run.tag == TRAINING else "data_classes"
        entry[key] = sorted(set(entry.get(key, [])) | set(run.classes), key=_class_order)
        if run.tag == TRAINING:
            entry["metric"] = run.metadata["metric"]
            if run.metadata["promoted"] == "true":
                entry["champion"] = {"tag": run.metadata["model_tag"], "score": run.figures.get("promoted_score"),
                                     "at": run.timestamp.isoformat(sep=" ")}
        self._write(f"{project_id}/{DASHBOARD_FILE_NAME}", dashboard(run.model_name, entry).dict())
        self._write_index(index)
        return True

    # -- reading (for `genloop dashboard` and the tests)

    def projects(self) -> dict[str, dict]:
        """model name -> its index entry (project id, sources, champion)."""
        return self._index() if self.path.is_dir() else {}


def _class_order(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def summary_snapshot(run: RunFigures):
    """An Evidently snapshot of the run's figures: one GenloopValue per figure."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report

    from components.dashboard.metrics import GenloopValue

    frame = pd.DataFrame({k: [v] for k, v in run.figures.items()})
    data = Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns=list(frame.columns)))
    report = Report([GenloopValue(column=c) for c in frame.columns])
    return report.run(data, None, timestamp=run.timestamp, tags=[run.tag],
                      metadata={**run.metadata, SOURCE: run.source})


def report_snapshot(path: Path, run: RunFigures):
    """A monitor's Evidently report snapshot, tagged so the figure panels skip it."""
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

    model = SnapshotModel.parse_obj(json.loads(path.read_text()))
    model.timestamp = run.timestamp
    model.tags = [REPORT]
    model.metadata = {**run.metadata, SOURCE: run.source}
    return Snapshot.load_model(model)


# ---------------------------------------------------------------- the dashboard

def _panel_id(model: str, title: str) -> uuid.UUID:
    """Stable ids: the same panel keeps its id when the dashboard is rewritten."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"genloop/{model}/{title}")


def dashboard(model: str, entry: dict):
    """The model's dashboard: quality and promotions, drift, class shares, the champion."""
    from evidently.sdk.models import DashboardModel, DashboardPanelPlot, DashboardTabModel, PanelMetric

    metric = entry.get("metric", "fid")
    name = "FID" if metric == "fid" else metric

    def value(column: str, legend: str, tag: str) -> PanelMetric:
        return PanelMetric(metric="GenloopValue", metric_labels={"column": column}, legend=legend, tags=[tag])

    def panel(title: str, kind: str, values: list, subtitle: str = "", size: str = "full", **params):
        return DashboardPanelPlot(id=_panel_id(model, title), title=title, subtitle=subtitle, size=size,
                                  values=values, plot_params={"plot_type": kind, **params})

    champion = entry.get("champion")
    champion_text = (f"{champion['tag']} ({name} {champion['score']:.4g}, promoted {champion['at']})"
                     if champion and champion.get("score") is not None else
                     "none yet: no retraining run of this model was promoted")
    quality = [
        panel(f"Champion: {champion['tag'] if champion else 'none'}", "text", [], champion_text),
        panel(f"{name} over time (lower is better)", "line", [
            value(metric, f"{name} of each retraining run's model", TRAINING),
            value("champion_score", f"champion's {name} the gate compared with", TRAINING),
            value("promoted_score", "promotion (the new champion's score)", TRAINING),
            value("staleness_score", f"champion's {name} on the newest data (monitor)", MONITOR),
        ], "retraining runs and monitor runs; a point on the promotion line marks each promotion"),
        panel("Gate decisions", "bar", [value("promoted", "promoted (1) / kept the champion (0)", TRAINING)],
              "one bar per retraining run", size="half"),
    ]
    if metric == "fid":
        quality.append(panel("KID", "line", [value("kid", "KID of each retraining run's model", TRAINING)],
                             "kernel inception distance, per retraining run", size="half"))
    drift = [
        panel("Data drift score", "line", [value("data_drift_score", "embedding drift score", MONITOR),
                                            value("data_drift_threshold", "threshold", MONITOR)],
              "newest data vs the champion's training data, one point per monitor run", size="half"),
        panel("Output drift share", "line", [value("output_drift_share", "share of drifted output columns", MONITOR),
                                              value("output_drift_threshold", "threshold", MONITOR)],
              "served generations vs the champion's own, one point per monitor run", size="half"),
    ]
    classes = entry.get("classes") or []
    if classes:
        drift.append(panel("Class share of generated samples", "bar",
                           [value(f"share:{c}", c, TRAINING) for c in classes],
                           "per retraining run: the bias audit's share of each class (or group)", is_stacked=True))
    data_classes = entry.get("data_classes") or []
    if data_classes:
        drift.append(panel("Class share of the newest data", "bar",
                           [value(f"data_share:{c}", c, MONITOR) for c in data_classes],
                           "per monitor run", is_stacked=True))
    tabs = [DashboardTabModel(id=_panel_id(model, "tab:quality"), title="Quality",
                              panels=[p.id for p in quality]),
            DashboardTabModel(id=_panel_id(model, "tab:drift"), title="Drift", panels=[p.id for p in drift])]
    return DashboardModel(tabs=tabs, panels=quality + drift)


def record_run(root: Path | str, folder: Path | str) -> bool:
    """What the flows call when a run has finished: add its folder to the dashboard. A
    failure is logged, not raised: the run's own result (a promoted model, a drift event)
    stands, and `genloop dashboard --rebuild` adds the folder later."""
    try:
        return DashboardWorkspace(root).add_run_folder(folder)
    except Exception as exc:
        log.warning("dashboard: %s was not added to the Evidently workspace (%s: %s); "
                    "`genloop dashboard --rebuild` adds it", folder, type(exc).__name__, exc)
        return False
