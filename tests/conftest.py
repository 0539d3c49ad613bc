"""Shared fixtures. Environment first: BentoML and Prefect read their homes at import."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

_STATE = Path(tempfile.mkdtemp(prefix="genloop-tests-"))
os.environ.update({
    "BENTOML_HOME": str(_STATE / "bentoml"), "PREFECT_HOME": str(_STATE / "prefect"),
    "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "GENLOOP_DEVICE": os.environ.get("GENLOOP_DEVICE", "cpu"),
})

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

TINY_DCGAN = {"train.steps": 40, "train.log_every": 10, "evaluate.samples": 24,
              "evaluate.reference_samples": 24, "audit.samples": 100, "audit.max_class_tv": 1.0,
              "model.args": {"image_size": 8, "channels": 1, "num_classes": 10, "z_dim": 16, "width": 32}}
TINY_CHARLM = {"train.steps": 15, "train.log_every": 5, "evaluate.window": 32, "evaluate.max_windows": 8,
               "audit.groups": ["man", "woman"], "audit.templates": ["The {group} is"],
               "audit.continuations_per_prompt": 1, "audit.max_new_tokens": 8,
               "audit.max_sentiment_gap": 2.0,
               "model.args": {"block_size": 32, "d_model": 32, "n_layers": 1, "n_heads": 2}}


def make_project(path: Path) -> Path:
    """A fresh project root: a git repo with the configs (the code comes from the package)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / "configs").mkdir(exist_ok=True)
    for cfg in (REPO / "configs").glob("*.yaml"):
        (path / "configs" / cfg.name).write_text(cfg.read_text())
    return path


@pytest.fixture(scope="session")
def data_project(tmp_path_factory) -> Path:
    """A project with `genloop data init` done (embedded data written, DVC set up)."""
    from components.data.versioning import init_data

    root = make_project(tmp_path_factory.mktemp("project"))
    init_data(root)
    return root


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def trained_dcgan(data_project, prefect_harness) -> dict:
    """One tiny DCGAN retraining run, promoted and packaged, shared by later tests."""
    from flows.training import retrain

    return retrain(str(data_project), "configs/dcgan-digits.yaml", dict(TINY_DCGAN))
