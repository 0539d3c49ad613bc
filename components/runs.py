"""Run set-up: config, data version, run directory and provenance."""
from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from components.config import RunConfig, build_dataclass, load_config
from components.data.hashing import folder_md5
from components.data.versioning import current_version, git_revision
from components.errors import GenloopError


def git_sha(root: Path) -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def prepare_run(root: Path, config_path: str, overrides: dict[str, Any] | None = None) -> dict:
    """Load and check the config, find the data version, make runs/<run-id>/."""
    root = Path(root).resolve()
    cfg = load_config(config_path if Path(config_path).is_absolute() else root / config_path, overrides)
    version = current_version(root)
    dataset_dir = root / "data" / cfg.data.dataset
    if not dataset_dir.is_dir():
        raise GenloopError(f"dataset folder {dataset_dir} does not exist: run `genloop data init`, "
                           f"or set data.dataset to one of: "
                           f"{', '.join(sorted(p.name for p in (root / 'data').iterdir() if p.is_dir()))}.")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.name}-{secrets.token_hex(2)}"
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    ctx = {
        "run_id": run_id, "root": str(root), "run_dir": str(run_dir), "config": cfg.to_dict(),
        "data_md5": version.md5, "data_dvc_md5": version.recorded_md5,
        "data_matches_dvc": version.matches_dvc, "data_rev": git_revision(root),
        "dataset_dir": str(dataset_dir), "dataset_md5": folder_md5(dataset_dir),
        "git_sha": git_sha(root),
    }
    (run_dir / "run.json").write_text(json.dumps(ctx, indent=2))
    return ctx


def config_of(ctx: dict) -> RunConfig:
    return build_dataclass(RunConfig, ctx["config"])


def provenance(ctx: dict) -> dict:
    return {k: ctx[k] for k in ("run_id", "data_md5", "dataset_md5", "data_rev", "git_sha")}
