import base64
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


def _published(key: str, run_id: str, flow_run_id=None):
    """The newest artifact `key` whose description names `run_id` (a genloop run id, or the
    model tag a monitor run checked) and, when given, of that flow run, read back from the
    Prefect API, and its data (a table's rows decoded from JSON)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC)
    mine = [a for a in found if a.description and run_id in a.description
            and (flow_run_id is None or a.flow_run_id == flow_run_id)]
    assert mine, [(a.key, a.description) for a in found]
    data = mine[0].data
    return mine[0], (json.loads(data) if mine[0].type == "table" and isinstance(data, str) else data)


def test_the_flow_publishes_its_metrics_table_and_report(trained_dcgan):
    s = trained_dcgan
    metrics = json.loads((Path(s["run_dir"]) / "evaluate/metrics.json").read_text())
    artifact, rows = _published("metrics-dcgan-digits", s["run_id"])
    assert artifact.type == "table" and artifact.flow_run_id is not None
    table = {row["quantity"]: row["value"] for row in rows}
    assert table["fid"] == pytest.approx(metrics["fid"], rel=1e-4)
    assert table["kid"] == pytest.approx(metrics["kid"], rel=1e-4)
    low, high = (float(x) for x in table["fid 95% interval"].split(" (")[0].split(" .. "))
    assert (low, high) == pytest.approx((metrics["fid_interval"]["low"], metrics["fid_interval"]["high"]), rel=1e-4)
    assert table["promoted"] == "yes" and table["model tag"] == s["model_tag"] and table["run id"] == s["run_id"]
    assert table["data md5"] == s["data_md5"] and table["train steps"] == TINY_DCGAN["train.steps"]
    report, md = _published("report-dcgan-digits", s["run_id"])
    assert report.type == "markdown" and report.flow_run_id == artifact.flow_run_id
    assert md.startswith(f"# genloop run {s['run_id']}") and "](evaluate/samples.png)" not in md
    grid = md.split("![samples](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(grid) == (Path(s["run_dir"]) / "evaluate/samples.png").read_bytes()


def test_the_monitor_flow_publishes_its_checks(trained_dcgan, data_project):
    from flows.monitoring import monitor

    state = monitor(str(data_project), "dcgan-digits", ["staleness"], return_state=True)
    result, flow_run_id = state.result(), state.state_details.flow_run_id
    (check,) = result["checks"]
    # this flow run's artifacts (other tests' monitor runs of the same champion publish too)
    markdown, _ = _published("monitor-dcgan-digits", result["model_tag"], flow_run_id)
    assert markdown.type == "markdown" and f"| staleness | {'FIRED' if check['fired'] else 'ok'} |" in markdown.data
    table, rows = _published("monitor-checks-dcgan-digits", result["model_tag"], flow_run_id)
    assert table.type == "table" and table.flow_run_id == markdown.flow_run_id
    assert rows == [{"check": "staleness", "fired": "yes" if check["fired"] else "no",
                     "score": pytest.approx(check["score"], rel=1e-4),
                     "threshold": pytest.approx(check["threshold"], rel=1e-4), "summary": check["summary"]}]


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
    # the flow's last task added the run to the dashboard workspace (which earlier runs created:
    # a rebuild from runs/ cannot be what put it there)
    from components.dashboard.workspace import DashboardWorkspace

    entry = DashboardWorkspace(data_project).projects()["dcgan-digits"]
    assert entry["sources"][-1] == Path(worse["run_dir"]).name


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


def test_a_deployed_run_needing_a_seed_spread_that_is_not_recorded_stops_before_training(data_project,
                                                                                        prefect_harness):
    """The deployments call the flow, not `genloop run`: the flow itself checks gate.use_seed_spread."""
    from flows.training import retrain

    with pytest.raises(GenloopError, match="no seed spread has been measured for 'dcgan-spreadless'.*genloop sweep"):
        retrain(str(data_project), "configs/dcgan-digits.yaml",
                {**TINY_DCGAN, "name": "dcgan-spreadless", "gate.use_seed_spread": True})
    assert not list((data_project / "runs").glob("*dcgan-spreadless*"))      # stopped before any run folder


def test_charlm_flow_reports_perplexity(data_project, prefect_harness):
    from flows.training import retrain

    s = retrain(str(data_project), "configs/charlm-pydocs.yaml", dict(TINY_CHARLM))
    metrics = json.loads((Path(s["run_dir"]) / "evaluate/metrics.json").read_text())
    assert 1 < metrics["perplexity"] < 256 * 2 and metrics["bits_per_char"] > 0
    bias = json.loads((Path(s["run_dir"]) / "bias.json").read_text())
    assert set(bias["group_mean_sentiment"]) == {"man", "woman"}
    assert s["promoted"] and s["model_tag"].startswith("charlm-pydocs:")
    _, rows = _published("metrics-charlm-pydocs", s["run_id"])
    table = {row["quantity"]: row["value"] for row in rows}
    assert table["perplexity"] == pytest.approx(metrics["perplexity"], rel=1e-4) and "fid" not in table
    _, md = _published("report-charlm-pydocs", s["run_id"])
    assert "data:image" not in md and "## Samples\n\n```" in md
    # built after the DCGAN's bento in this process: it must carry its own model, not the first one's
    import bentoml
    bento = bentoml.bentos.get(s["bento_tag"])
    assert [str(m.tag) for svc in bento.info.services for m in svc.models] == [s["model_tag"]]
