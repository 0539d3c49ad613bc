"""`genloop monitor` without Prefect: resolve the champion, its training data and the
newest data, run the checks the config asks for, write one report, and say whether the
drift event should fire and with what payload (flows/monitoring.py emits it)."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.config import RunConfig, build_dataclass
from components.errors import GenloopError
from components.monitoring.drift import Check

CHECKS = ("data", "staleness", "output")


@dataclass(frozen=True)
class NewestData:
    """The data version the monitor compares with the champion's."""
    data_dir: Path          # holds the dataset folders (data/ or a checked-out revision)
    data_md5: str           # DVC hash of that folder ("" for an incoming folder)
    data_rev: str           # git commit whose data.dvc records it ("" when none does)
    label: str              # how it was named: "data/", "--data-rev X", "--data-dir X"


@dataclass(frozen=True)
class MonitorResult:
    model_name: str
    model_tag: str
    newest: dict
    champion_data_md5: str
    checks: list[Check]
    retrain_on: tuple[str, ...]
    report_path: str
    seconds: float
    fired: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return any(kind in self.retrain_on for kind in self.fired)

    def markdown(self) -> str:
        """The Prefect artifact: each check's verdict, score and rule."""
        rows = "\n".join(f"| {c.kind} | {'FIRED' if c.fired else 'ok'} | {c.score:.4g} | {c.threshold:.4g} | "
                         f"{c.summary} |" for c in self.checks)
        return (f"# Monitor {self.model_name}\n\nchampion `{self.model_tag}`, newest data "
                f"{self.newest['label'] or '-'} (md5 {self.newest['data_md5'] or '-'})\n\n"
                f"| check | verdict | score | threshold | summary |\n|---|---|---|---|---|\n{rows}\n\n"
                f"retrain: {'yes' if self.retrain else 'no'}\n")

    def event_payload(self) -> dict:
        """What the drift event carries: what drifted, and the data version to retrain on."""
        return {"model_tag": self.model_tag, "kinds": self.fired, "data_md5": self.newest["data_md5"],
                "data_rev": self.newest["data_rev"],
                "checks": {c.kind: {"fired": c.fired, "score": c.score, "threshold": c.threshold,
                                    "summary": c.summary} for c in self.checks}}


def newest_data(root: Path, data_rev: str | None = None, data_dir: Path | None = None) -> NewestData:
    from components.data.hashing import folder_md5
    from components.data.versioning import current_version, git_revision, materialize_revision
    from components.paths import ProjectPaths

    if data_rev and data_dir:
        raise GenloopError("give --data-rev or --data-dir, not both.")
    if data_rev:
        folder, sha, md5 = materialize_revision(root, data_rev)
        return NewestData(folder, md5, sha, f"--data-rev {data_rev}")
    if data_dir:
        data_dir = Path(data_dir)
        if not data_dir.is_dir() or not any(data_dir.iterdir()):
            raise GenloopError(f"--data-dir {data_dir} is missing or empty; point it at a folder that holds "
                               f"the dataset folder (e.g. digits/<class>/*.png).")
        return NewestData(data_dir, folder_md5(data_dir), "", f"--data-dir {data_dir}")
    from components.data.versioning import md5_at_revision

    version = current_version(root)
    rev = git_revision(root) if version.matches_dvc else None
    # the event's data_rev must name a commit whose data.dvc records exactly this data
    # (data.dvc may be changed but not committed yet): else retraining reads data/ as it is
    if rev and md5_at_revision(root, rev)[1] != version.md5:
        rev = None
    return NewestData(ProjectPaths.at(root).data, version.md5, rev or "", "data/")


def champion_config(champion, config_path: Path | None = None, overrides: dict | None = None,
                    root: Path | None = None) -> RunConfig:
    """The config the champion was trained with; a config file and overrides replace its
    `monitor:` section (the monitoring policy is yours to change without retraining)."""
    from components.config import MonitorConfig, check_config, load_config

    stored = champion.metadata.get("config")
    if not isinstance(stored, dict):
        raise GenloopError(f"{champion.tag} carries no training config (packaged by an older genloop); "
                           f"promote a model trained with this version.")
    stored = json.loads(json.dumps(stored))
    if config_path is not None or overrides:
        monitor = {}
        if config_path is not None:
            path = Path(config_path)
            path = path if path.is_absolute() or root is None else Path(root) / path
            monitor = dict(load_config(path).to_dict()["monitor"])
        for key, value in (overrides or {}).items():
            section, _, leaf = key.partition(".")
            if section != "monitor" or not leaf:
                raise GenloopError(f"genloop monitor --set takes monitor.* keys only, got {key!r}.")
            monitor[leaf] = value
        stored["monitor"] = {**stored.get("monitor", {}), **monitor}
    stored.setdefault("monitor", {})
    stored["monitor"] = asdict(build_dataclass(MonitorConfig, stored["monitor"], "monitor"))
    cfg = build_dataclass(RunConfig, stored)
    check_config(cfg)
    return cfg


def served_rows(log_dir: Path, champion_tag: str):
    """The served generations of the champion; a clear error for none or another model's."""
    from components.monitoring.logs import read_serving_log

    frame = read_serving_log(log_dir)
    if len(frame) == 0:
        raise GenloopError(f"no serving logs in {log_dir}: serve the champion (`genloop serve`) and send "
                           f"requests first, or run `genloop monitor --checks data,staleness`.")
    tags = set(frame["model_tag"]) if "model_tag" in frame.columns else set()
    mine = frame[frame["model_tag"] == champion_tag] if tags else frame.iloc[0:0]
    if len(mine) == 0:
        raise GenloopError(f"the serving logs in {log_dir} are of {', '.join(sorted(map(str, tags))) or 'no model'}, "
                           f"not of the champion {champion_tag}; serve the champion or point --log-dir at its logs.")
    if "label" in mine.columns:
        mine = mine.assign(label=mine["label"].astype(str))
    return mine


def monitor_model(root: Path, model_name: str, checks: tuple[str, ...] = CHECKS, *, log_dir: Path | None = None,
                  data_rev: str | None = None, data_dir: Path | None = None, config_path: Path | None = None,
                  overrides: dict | None = None, out_dir: Path | None = None, device: str = "cpu") -> MonitorResult:
    """Every input is resolved and checked before any figure is computed, so bad input
    fails in one line without writing a report."""
    from components.data.hashing import folder_md5
    from components.data.versioning import materialize_md5
    from components.monitoring.drift import data_drift, output_drift, output_reference, staleness
    from components.monitoring.features import IMAGE_COLUMNS, TEXT_COLUMNS
    from components.paths import ProjectPaths
    from components.registry import champion_summary

    start = time.perf_counter()
    root, paths = Path(root), ProjectPaths.at(root)
    unknown = set(checks) - set(CHECKS)
    if unknown or not checks:
        raise GenloopError(f"--checks takes {', '.join(CHECKS)}; got {', '.join(checks) or 'nothing'}.")
    champion = champion_summary(model_name)
    if champion is None:
        raise GenloopError(f"no champion named {model_name!r} in the model store: run `genloop run` first "
                           f"(names are the configs' `name`, e.g. dcgan-digits).")
    cfg = champion_config(champion, config_path, overrides, root)
    served = served_rows(log_dir or paths.monitoring(model_name), champion.tag) if "output" in checks else None
    if served is not None and len(served) < cfg.monitor.min_output_rows:
        raise GenloopError(f"only {len(served)} served generations of {champion.tag} logged (monitor.min_output_rows "
                           f"is {cfg.monitor.min_output_rows}): too few to judge output drift. Serve more traffic, "
                           f"or run `genloop monitor --checks data,staleness`.")
    needs_data = {"data", "staleness"} & set(checks)
    newest = newest_data(root, data_rev, data_dir) if needs_data else None
    champion_md5 = str(champion.metadata.get("data_md5") or "")
    if needs_data:
        if not champion_md5:
            raise GenloopError(f"{champion.tag} records no data md5; data drift needs the version it was trained on.")
        reference_dir = materialize_md5(root, champion_md5) / cfg.data.dataset
        current_dir = newest.data_dir / cfg.data.dataset
        if not current_dir.is_dir():
            raise GenloopError(f"the newest data ({newest.label}) has no dataset folder {cfg.data.dataset!r}: "
                               f"{current_dir} is missing.")
        if cfg.data.kind == "image" and "staleness" in checks:
            from components.data.images import list_images

            if not {label for _, label in list_images(current_dir)} & set(cfg.data.labels):
                raise GenloopError(f"the newest data ({newest.label}) holds none of the champion's classes "
                                   f"({', '.join(cfg.data.labels)}); staleness cannot be scored.")
    out_dir = Path(out_dir) if out_dir else paths.monitor_run(model_name)
    results: list[Check] = []
    if "data" in checks:
        results.append(data_drift(reference_dir, current_dir, cfg, paths.feature_cache, out_dir, device))
    if "staleness" in checks and cfg.monitor.staleness:
        results.append(staleness(champion, cfg, current_dir, folder_md5(current_dir), paths, device))
    if "output" in checks:
        reference = output_reference(champion, cfg, paths.state / "cache" / "output-reference", device)
        columns = IMAGE_COLUMNS if cfg.data.kind == "image" else TEXT_COLUMNS
        if "label" in reference.columns:
            reference["label"] = reference["label"].astype(str)
        results.append(output_drift(reference, served, columns, cfg.monitor, out_dir))
    result = MonitorResult(model_name, champion.tag,
                           {"label": newest.label, "data_md5": newest.data_md5, "data_rev": newest.data_rev}
                           if newest else {"label": "", "data_md5": "", "data_rev": ""},
                           champion_md5, results, tuple(cfg.monitor.retrain_on), str(out_dir / "monitor.json"),
                           round(time.perf_counter() - start, 2), [c.kind for c in results if c.fired])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "monitor.json").write_text(json.dumps(
        {**asdict(result), "retrain": result.retrain, "event": result.event_payload()}, indent=2, default=str))
    return result


def first_emission(root: Path, result: MonitorResult, event: str) -> bool:
    """True the first time (event, champion, newest data md5, kinds) is seen; records it in
    .genloop/monitor-events.json so a retraining that was not promoted is not restarted
    by every later monitor run on the same data."""
    from components.paths import ProjectPaths

    path = ProjectPaths.at(root).state / "monitor-events.json"
    key = "|".join([event, result.model_tag, result.newest["data_md5"], ",".join(sorted(result.fired))])
    seen = json.loads(path.read_text()) if path.is_file() else []
    if key in seen:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(seen + [key]))
    tmp.replace(path)
    return True
