"""Run set-up: config, data version, run directory and provenance, as one typed context."""
from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.config import RunConfig, build_dataclass, load_project_config
from components.errors import GenloopError
from components.paths import ProjectPaths


def git_sha(root: Path) -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


@dataclass(frozen=True)
class DataSource:
    """The version of data/ a run reads."""
    data_dir: Path               # data/ itself, or a checked-out revision of it
    data_md5: str                # DVC's hash of that folder
    data_dvc_md5: str | None     # what data.dvc records
    data_matches_dvc: bool
    data_rev: str | None         # git commit of data.dvc


def data_source(root: Path, data_rev: str | None) -> DataSource:
    """Where the data comes from: data/ as it is, or data.dvc's version at git `data_rev`
    fetched from the DVC cache/remote. Hashes it either way."""
    from components.data.versioning import current_version, git_revision, materialize_revision

    if data_rev:
        folder, sha, md5 = materialize_revision(root, data_rev)
        return DataSource(folder, md5, md5, True, sha)
    version = current_version(root)
    return DataSource(ProjectPaths.at(root).data, version.md5, version.recorded_md5, version.matches_dvc,
                      git_revision(root))


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run reads: written once by `prepare_run` to run.json."""
    run_id: str
    root: Path
    run_dir: Path
    config: RunConfig
    data: DataSource
    dataset_dir: Path            # data_dir / config.data.dataset
    dataset_md5: str             # our hash of that dataset folder (same algorithm as DVC's)
    git_sha: str                 # the code

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(self.root)

    def provenance(self) -> dict[str, str | None]:
        """What checkpoints, models and responses carry to say where they came from."""
        return {"run_id": self.run_id, "data_md5": self.data.data_md5, "dataset_md5": self.dataset_md5,
                "data_rev": self.data.data_rev, "git_sha": self.git_sha}

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    def save(self) -> Path:
        path = self.run_dir / "run.json"
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path

    @classmethod
    def load(cls, run_dir: Path) -> "RunContext":
        """The context a run dir was prepared with (for `genloop train --resume` and torchrun ranks)."""
        path = Path(run_dir) / "run.json"
        if not path.is_file():
            raise GenloopError(f"{run_dir} is not a run dir (no run.json); pass runs/<run-id>.")
        raw = json.loads(path.read_text())
        if "data" not in raw or "config" not in raw:
            raise GenloopError(f"{path} was written by an older genloop; start a new run with `genloop train`.")
        data = raw["data"]
        return cls(run_id=raw["run_id"], root=Path(raw["root"]), run_dir=Path(raw["run_dir"]),
                   config=build_dataclass(RunConfig, raw["config"]),
                   data=DataSource(Path(data["data_dir"]), data["data_md5"], data["data_dvc_md5"],
                                   data["data_matches_dvc"], data["data_rev"]),
                   dataset_dir=Path(raw["dataset_dir"]), dataset_md5=raw["dataset_md5"],
                   git_sha=raw["git_sha"])


def prepare_run(root: Path | str, config_path: str, overrides: dict[str, Any] | None = None,
                data_rev: str | None = None) -> RunContext:
    """Load and check the config, find the data version, make runs/<run-id>/."""
    from components.data.hashing import folder_md5

    paths = ProjectPaths.at(root)
    cfg = load_project_config(paths.root, config_path, overrides)
    source = data_source(paths.root, data_rev)
    dataset_dir = source.data_dir / cfg.data.dataset
    if not dataset_dir.is_dir():
        raise GenloopError(f"dataset folder {dataset_dir} does not exist: run `genloop data init` (embedded "
                           f"datasets) or `genloop data import fashion-mnist|python-stdlib`, or set data.dataset to "
                           f"one of: "
                           f"{', '.join(sorted(p.name for p in source.data_dir.iterdir() if p.is_dir()))}.")
    paths.runs.mkdir(parents=True, exist_ok=True)
    while True:                  # runs that start in the same second (a sweep's points) never share a folder
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.name}-{secrets.token_hex(2)}"
        run_dir = paths.runs / run_id
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    ctx = RunContext(run_id, paths.root, run_dir, cfg, source, dataset_dir, folder_md5(dataset_dir),
                     git_sha(paths.root))
    ctx.save()
    return ctx
