"""Where genloop keeps its state in a project: every `.genloop/*` path in one place."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".genloop"


@dataclass(frozen=True)
class ProjectPaths:
    """The paths of one project root (a git checkout with data/ and configs/)."""
    root: Path

    @classmethod
    def at(cls, root: Path | str) -> "ProjectPaths":
        return cls(Path(root).resolve())

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def monitor_run(self, model_name: str) -> Path:
        """A new folder for one drift check of `model_name` (under runs/)."""
        import time

        return self.runs / f"monitor-{time.strftime('%Y%m%d-%H%M%S')}-{model_name}"

    @property
    def bentoml_home(self) -> Path:
        """Default model and bento store (BENTOML_HOME overrides it)."""
        return self.state / "bentoml"

    @property
    def dvc_remote(self) -> Path:
        return self.state / "dvc-remote"

    @property
    def dvc_lock(self) -> Path:
        return self.state / "dvc.lock"

    def data_revision(self, md5: str) -> Path:
        """data/ as data.dvc had it at some git revision, checked out by md5."""
        return self.state / "data-revs" / md5

    @property
    def fid_cache(self) -> Path:
        return self.state / "cache" / "fid"

    @property
    def feature_cache(self) -> Path:
        """Per-file content features (Inception for images), shared by evaluation and monitoring."""
        return self.state / "cache" / "features.sqlite"

    @property
    def domain_cache(self) -> Path:
        return self.state / "cache" / "domain"

    @property
    def evidently(self) -> Path:
        """The Evidently workspace `genloop dashboard` serves (one project per model)."""
        return self.state / "evidently"

    def monitoring(self, model_name: str) -> Path:
        """Where the service logs the generations of `model_name`."""
        return self.state / "monitoring" / model_name
