"""`genloop demo drift` end to end (200 samples instead of 300): a real
Prefect server, DVC, the scheduled monitor, the drift-triggered retraining and
`serve --follow`. The loop must close: drift detected on data v2, a new champion
promoted over the re-scored v1 champion, and the running server answering for the new
classes it could not serve before."""
import json

import pytest

from components.demo import Demo

pytestmark = pytest.mark.slow


def test_demo_drift_closes_the_loop(tmp_path):
    root = tmp_path / "demo"
    demo = Demo(root, samples=200, timeout=600)
    table = {step.name: step for step in demo.run()}
    assert "label 7 -> HTTP 400" in table["serve v1 (genloop serve --follow)"].what
    detected = table["scheduled monitor (every minute) detects drift"].what
    assert detected.startswith("data ") and "staleness" in detected
    assert table["drift event -> retraining on v2 (Prefect automation)"].what.startswith("PROMOTED ")
    assert "label 7 -> HTTP 200" in table["server follows: new classes served"].what
    gate = next(json.loads(p.read_text()) for p in sorted(root.glob("runs/*/gate.json"), reverse=True))
    assert gate["promote"] and gate["champion"]["dataset_md5"] == gate["challenger"]["dataset_md5"]
    assert gate["champion_at_promotion"]["dataset_md5"] != gate["challenger"]["dataset_md5"]
    assert (root / "served-new-classes.png").stat().st_size > 0
    assert "| **total** |" in (root / "summary.md").read_text()
    assert len(demo.stopped) == 3 and all(p.poll() is not None for p in demo.stopped)   # server, serve, schedule


def test_demo_refuses_a_folder_in_use_and_tiny_samples(tmp_path):
    from components.errors import GenloopError

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("mine")
    with pytest.raises(GenloopError, match="not empty"):
        Demo(tmp_path / "x").run()
    assert (tmp_path / "x" / "f").read_text() == "mine"
    with pytest.raises(GenloopError, match="--samples must be >= 200"):
        Demo(tmp_path / "y", samples=100)
