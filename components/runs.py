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
from components.data.versioning import current_version, git_revision, materialize_revision
from components.errors import GenloopError


def git_sha(root: Path) -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def data_source(root: Path, data_rev: str | None) -> dict:
    """Where the data comes from: data/ as it is, or data.dvc's version at git `data_rev`
    fetched from the DVC cache/remote. Hashes it either way."""
    if data_rev:
        folder, sha, md5 = materialize_revision(root, data_rev)
        return {"data_dir": str(folder), "data_md5": md5, "data_dvc_md5": md5,
                "data_matches_dvc": True, "data_rev": sha}
    version = current_version(root)
    return {"data_dir": str(root / "data"), "data_md5": version.md5,
            "data_dvc_md5": version.recorded_md5, "data_matches_dvc": version.matches_dvc,
            "data_rev": git_revision(root)}


def prepare_run(root: Path, config_path: str, overrides: dict[str, Any] | None = None,
                data_rev: str | None = None) -> dict:
    """Load and check the config, find the data version, make runs/<run-id>/."""
    root = Path(root).resolve()
    cfg = load_config(config_path if Path(config_path).is_absolute() else root / config_path, overrides)
    source = data_source(root, data_rev)
    data_dir = Path(source["data_dir"])
    dataset_dir = data_dir / cfg.data.dataset
    if not dataset_dir.is_dir():
        raise GenloopError(f"dataset folder {dataset_dir} does not exist: run `genloop data init`, "
                           f"or set data.dataset to one of: "
                           f"{', '.join(sorted(p.name for p in data_dir.iterdir() if p.is_dir()))}.")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.name}-{secrets.token_hex(2)}"
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    ctx = {
        "run_id": run_id, "root": str(root), "run_dir": str(run_dir), "config": cfg.to_dict(),
        **source, "dataset_dir": str(dataset_dir), "dataset_md5": folder_md5(dataset_dir),
        "git_sha": git_sha(root),
    }
    (run_dir / "run.json").write_text(json.dumps(ctx, indent=2))
    return ctx


def config_of(ctx: dict) -> RunConfig:
    return build_dataclass(RunConfig, ctx["config"])


def provenance(ctx: dict) -> dict:
    return {k: ctx[k] for k in ("run_id", "data_md5", "dataset_md5", "data_rev", "git_sha")}
