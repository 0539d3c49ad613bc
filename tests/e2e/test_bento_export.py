"""The bento declares its Python packages, pinned as constraints.txt freezes them, and an
exported bento serves from a fresh model store: export, import into an empty
BENTOML_HOME, `bentoml serve` from an unrelated folder, call."""
import os
import subprocess
import sys
from importlib.metadata import version

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.processes import free_port
from tests.e2e.test_serve_and_monitor import start_bento_server

pytestmark = pytest.mark.slow


def test_bento_pins_the_service_packages(trained_dcgan):
    import bentoml

    from components.registry import SERVICE_PACKAGES, pinned_packages

    bento = bentoml.bentos.get(trained_dcgan["bento_tag"])
    declared = bento.info.image.python_requirements.split()
    assert set(pinned_packages(REPO / "constraints.txt")) <= set(declared)
    for line in pinned_packages(REPO / "constraints.txt"):
        package, pinned = line.split("==")
        assert version(package).split("+")[0] == pinned, f"{package}: installed {version(package)}, bento {pinned}"
    assert len(SERVICE_PACKAGES) == len(pinned_packages(REPO / "constraints.txt"))
    assert bento.info.labels["model_name"] == "dcgan-digits"


def test_exported_bento_serves_from_a_fresh_store(trained_dcgan, tmp_path):
    import bentoml

    archive = tmp_path / "generator.bento"
    bentoml.bentos.export_bento(trained_dcgan["bento_tag"], str(archive))
    fresh = tmp_path / "fresh-bentoml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "BENTOML_HOME": str(fresh), "GENLOOP_MONITOR_DIR": str(tmp_path / "logs")}
    imported = subprocess.run([sys.executable, "-m", "bentoml", "import", str(archive)], env=env, cwd=elsewhere,
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert (fresh / "models" / "dcgan-digits").is_dir()           # the model came inside the bento
    url, proc = start_bento_server(trained_dcgan["bento_tag"], free_port(), env, cwd=elsewhere)
    try:
        reply = httpx.post(f"{url}/generate", json={"n": 2, "seed": 1, "label": "4"}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["model_tag"] == trained_dcgan["model_tag"] and reply.json()["labels"] == ["4", "4"]
    finally:
        proc.terminate()
        proc.wait(20)
