import json
import shutil
from pathlib import Path

import pytest

from components.errors import GenloopError
from tests.conftest import TINY_CHARLM, TINY_DCGAN

pytestmark = pytest.mark.slow


def test_dcgan_flow_promotes_and_packages(trained_dcgan, data_project):
    import bentoml

    s = trained_dcgan
    assert [row["stage"] for row in s["stages"]] == ["data", "validate", "augment", "train", "evaluate",
                                                     "audit", "gate", "package", "report"]
    assert s["promoted"] and s["model_tag"].startswith("dcgan-digits:") and s["bento_tag"]
    assert all(row["seconds"] is not None for row in s["stages"][1:])
    assert s["data_md5"] in s["stages"][0]["figure"]
    run_dir = Path(s["run_dir"])
    for rel in ("validation/validation.json", "augment_preview.png", "train/checkpoint/weights.safetensors",
                "train/loss_curve.png", "evaluate/metrics.json", "evaluate/samples.png", "bias.json",
                "gate.json", "summary.json", "memorisation.json", "report.md", "class_share.png"):
        assert (run_dir / rel).is_file(), rel
    metrics = json.loads((run_dir / "evaluate/metrics.json").read_text())
    assert metrics["fid"] > 0 and metrics["samples"] == 24
    assert metrics["fid_interval"]["low"] < metrics["fid"] < metrics["fid_interval"]["high"]
    for key in ("kid", "precision", "recall", "density", "coverage", "fid_domain"):
        assert key in metrics, key
    assert "Memorisation" in (run_dir / "report.md").read_text()
    from components.registry import champion_tag

    model = bentoml.models.get(s["model_tag"])
    assert champion_tag("dcgan-digits") == s["model_tag"] and model.info.labels["family"] == "dcgan"
    assert model.info.metadata["data_md5"] == s["data_md5"]
    assert model.info.metadata["scorecard"]["protocol"] == {"samples": 24, "reference_samples": 24}
    assert model.info.metadata["metrics"]["fid"] == pytest.approx(metrics["fid"])
    assert (Path(model.path) / "checkpoint" / "checkpoint.json").is_file()


def test_worse_challenger_keeps_the_champion(trained_dcgan, data_project):
    import bentoml

    from flows.training import retrain

    from components.registry import champion_tag

    before = len(bentoml.models.list("dcgan-digits"))
    worse = retrain(str(data_project), "configs/dcgan-digits.yaml", {**TINY_DCGAN, "train.steps": 1})
    assert not worse["promoted"] and "champion kept" in worse["decision"]
    assert trained_dcgan["model_tag"] in worse["decision"]
    assert len(bentoml.models.list("dcgan-digits")) == before and worse["model_tag"] is None
    assert champion_tag("dcgan-digits") == trained_dcgan["model_tag"]


def test_validation_failure_stops_before_training(data_project, prefect_harness, tmp_path):
    import bentoml

    from flows.training import retrain

    bad = data_project / "data" / "digits_bad"
    shutil.copytree(data_project / "data" / "digits", bad)
    try:
        (bad / "2" / "0000.png").write_bytes(b"\x89PNG\r\n")
        before = {str(m.tag) for m in bentoml.models.list()}
        snapshot = {p: p.read_bytes() for p in bad.rglob("*") if p.is_file()}
        with pytest.raises(GenloopError, match="validation failed") as err:
            retrain(str(data_project), "configs/dcgan-digits.yaml",
                    {**TINY_DCGAN, "data.dataset": "digits_bad", "name": "dcgan-bad"})
        assert "2/0000.png" in str(err.value)
        assert {str(m.tag) for m in bentoml.models.list()} == before
        run = sorted((data_project / "runs").glob("*dcgan-bad*"))[-1]
        assert (run / "validation" / "validation.json").is_file() and not (run / "train").exists()
        assert snapshot == {p: p.read_bytes() for p in bad.rglob("*") if p.is_file()}
    finally:
        shutil.rmtree(bad)


def test_charlm_flow_reports_perplexity(data_project, prefect_harness):
    from flows.training import retrain

    s = retrain(str(data_project), "configs/charlm-pydocs.yaml", dict(TINY_CHARLM))
    metrics = json.loads((Path(s["run_dir"]) / "evaluate/metrics.json").read_text())
    assert 1 < metrics["perplexity"] < 256 * 2 and metrics["bits_per_char"] > 0
    bias = json.loads((Path(s["run_dir"]) / "bias.json").read_text())
    assert set(bias["group_mean_sentiment"]) == {"man", "woman"}
    assert s["promoted"] and s["model_tag"].startswith("charlm-pydocs:")
    # built after the DCGAN's bento in this process: it must carry its own model, not the first one's
    import bentoml
    bento = bentoml.bentos.get(s["bento_tag"])
    assert [str(m.tag) for svc in bento.info.services for m in svc.models] == [s["model_tag"]]
