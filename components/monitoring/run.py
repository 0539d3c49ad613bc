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


@dataclass(frozen=True)
class MonitorInputs:
    """Everything a monitor run reads, resolved and checked before any figure is computed."""
    champion: object                 # registry.StoredModel
    cfg: RunConfig
    checks: tuple[str, ...]
    served: object = None            # pandas.DataFrame of the champion's served rows (output check)
    newest: NewestData | None = None
    champion_md5: str = ""
    reference_dir: Path | None = None
    current_dir: Path | None = None


def monitor_inputs(root: Path, model_name: str, checks: tuple[str, ...] = CHECKS, *, log_dir: Path | None = None,
                   data_rev: str | None = None, data_dir: Path | None = None, config_path: Path | None = None,
                   overrides: dict | None = None) -> MonitorInputs:
    """Resolve and check the champion, its config, the serving logs and both data versions:
    bad input fails here in one line (`genloop monitor` calls this before Prefect starts)."""
    from components.data.versioning import materialize_md5
    from components.paths import ProjectPaths
    from components.registry import champion_summary

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
    if not {"data", "staleness"} & set(checks):
        return MonitorInputs(champion, cfg, tuple(checks), served)
    newest = newest_data(root, data_rev, data_dir)
    champion_md5 = str(champion.metadata.get("data_md5") or "")
    if not champion_md5:
        raise GenloopError(f"{champion.tag} records no data md5; data drift needs the version it was trained on.")
    current_dir = newest.data_dir / cfg.data.dataset
    if not current_dir.is_dir():
        raise GenloopError(f"the newest data ({newest.label}) has no dataset folder {cfg.data.dataset!r}: "
                           f"{current_dir} is missing.")
    if cfg.data.kind == "image" and "staleness" in checks:
        from components.data.images import list_images

        if not {label for _, label in list_images(current_dir)} & set(cfg.data.labels):
            raise GenloopError(f"the newest data ({newest.label}) holds none of the champion's classes "
                               f"({', '.join(cfg.data.labels)}); staleness cannot be scored.")
    reference_dir = materialize_md5(root, champion_md5) / cfg.data.dataset
    return MonitorInputs(champion, cfg, tuple(checks), served, newest, champion_md5, reference_dir, current_dir)


def monitor_model(root: Path, model_name: str, checks: tuple[str, ...] = CHECKS, *, log_dir: Path | None = None,
                  data_rev: str | None = None, data_dir: Path | None = None, config_path: Path | None = None,
                  overrides: dict | None = None, out_dir: Path | None = None, device: str = "cpu") -> MonitorResult:
    """Run the checks and write one report folder (runs/monitor-<time>-<model>/): written
    under a temporary name and renamed when complete, so a failed check leaves nothing."""
    import shutil

    from components.data.hashing import folder_md5
    from components.monitoring.drift import data_drift, output_drift, output_reference, staleness
    from components.monitoring.features import IMAGE_COLUMNS, TEXT_COLUMNS
    from components.paths import ProjectPaths

    start = time.perf_counter()
    paths = ProjectPaths.at(root)
    inputs = monitor_inputs(root, model_name, checks, log_dir=log_dir, data_rev=data_rev, data_dir=data_dir,
                            config_path=config_path, overrides=overrides)
    champion, cfg, newest = inputs.champion, inputs.cfg, inputs.newest
    out_dir = Path(out_dir) if out_dir else paths.monitor_run(model_name)
    if out_dir.exists():
        raise GenloopError(f"{out_dir} exists already; pass another report folder.")
    work = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        results: list[Check] = []
        if "data" in checks:
            results.append(data_drift(inputs.reference_dir, inputs.current_dir, cfg, paths.feature_cache, work,
                                      device))
        if "staleness" in checks and cfg.monitor.staleness:
            results.append(staleness(champion, cfg, inputs.current_dir, folder_md5(inputs.current_dir), paths,
                                     device))
        if "output" in checks:
            reference = output_reference(champion, cfg, paths.state / "cache" / "output-reference", device)
            columns = IMAGE_COLUMNS if cfg.data.kind == "image" else TEXT_COLUMNS
            if "label" in reference.columns:
                reference["label"] = reference["label"].astype(str)
            results.append(output_drift(reference, inputs.served, columns, cfg.monitor, work))
        result = MonitorResult(model_name, champion.tag,
                               {"label": newest.label, "data_md5": newest.data_md5, "data_rev": newest.data_rev}
                               if newest else {"label": "", "data_md5": "", "data_rev": ""},
                               inputs.champion_md5, results, tuple(cfg.monitor.retrain_on),
                               str(out_dir / "monitor.json"), round(time.perf_counter() - start, 2),
                               [c.kind for c in results if c.fired])
        result = _relocated(result, work, out_dir)
        (work / "monitor.json").write_text(json.dumps(
            {**asdict(result), "retrain": result.retrain, "event": result.event_payload()}, indent=2, default=str))
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return result


def _relocated(result: MonitorResult, work: Path, out_dir: Path) -> MonitorResult:
    """The result with the checks' file paths pointing into the final report folder."""
    def move(value):
        if isinstance(value, str) and value.startswith(str(work)):
            return str(out_dir) + value[len(str(work)):]
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value
    checks = [Check(c.kind, c.fired, c.score, c.threshold, c.summary, move(c.details)) for c in result.checks]
    return MonitorResult(**{**{f: getattr(result, f) for f in result.__dataclass_fields__}, "checks": checks})


def emit_once(root: Path, result: MonitorResult, event: str, emit) -> bool:
    """Call `emit()` unless (event, champion, newest data md5, kinds) was emitted before, so
    a retraining that was not promoted is not restarted by every later monitor run on the
    same data. Recorded in .genloop/monitor-events.json only once `emit()` returned
    something (None: not emitted), under a file lock, so overlapping monitor runs emit once."""
    import fcntl
    import os

    from components.paths import ProjectPaths

    path = ProjectPaths.at(root).state / "monitor-events.json"
    key = "|".join([event, result.model_tag, result.newest["data_md5"], ",".join(sorted(result.fired))])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        seen = json.loads(path.read_text()) if path.is_file() else []
        if key in seen or emit() is None:
            return False
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(seen + [key]))
        tmp.replace(path)
        return True
