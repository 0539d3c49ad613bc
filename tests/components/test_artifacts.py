"""The Prefect artifacts' content (components/artifacts.py), without Prefect running: keys
per model, the metrics table of a retraining run, the report with its pictures embedded,
and the monitor's table of checks."""
import base64
import io
import json

import pytest

from components.artifacts import (KINDS, artifact_key, metrics_table, monitor_table, png_data_uri,
                                  report_markdown, samples_markdown)
from components.errors import GenloopError
from components.gate import Scorecard
from components.results import Evaluated, Gated, Trained

IMAGE_METRICS = {"fid": 41.53219, "samples": 24, "reference_samples": 24, "reference_cached": False,
                 "fid_interval": {"low": 39.51, "high": 43.49, "half_width": 1.99, "rounds": 100, "level": 0.95},
                 "kid": 0.0123456, "kid_std": 0.002, "precision": 0.7, "recall": 0.375, "seconds": 12.34}
TEXT_METRICS = {"perplexity": 5.076222, "bits_per_char": 2.3477906, "tokens": 25600, "windows": 400,
                "window": 64, "stride": 64, "seconds": 1.6}
CHAMPION = Scorecard("fid", 55.25, 3.0, "md5-dataset", {"samples": 24, "reference_samples": 24},
                     tag="dcgan-digits:old")


def _png(path, size=(12, 8)):
    from PIL import Image

    Image.new("L", size, 200).save(path)
    return path.read_bytes()


def _summary(promoted=True, model_tag="dcgan-digits:new", name="dcgan-digits"):
    return {"run_id": "20260101-000000-dcgan-digits-abcd", "model_name": name, "data_md5": "md5-data.dir",
            "promoted": promoted, "decision": "fid 41.5 beats champion", "model_tag": model_tag,
            "stages": [{"stage": "data", "seconds": 0.0}, {"stage": "train", "seconds": 10.25},
                       {"stage": "evaluate", "seconds": 5.0}]}


def _gated(metric="fid", value=41.53219, promote=True, champion=CHAMPION, approval=None):
    challenger = Scorecard(metric, value, 1.99 if metric == "fid" else 0.0, "md5-dataset")
    return Gated(figure="", promote=promote, reason="fid 41.53 beats champion dcgan-digits:old (55.25) by more than 3",
                 challenger=challenger, champion=champion, approval=approval)


def _trained(steps=40):
    return Trained(figure="", checkpoint="ckpt", steps=steps, device="cpu")


def _evaluated(tmp_path, metrics, metric, sample_name=None, content=b""):
    files = [str(tmp_path / "metrics.json")]
    if sample_name:
        (tmp_path / sample_name).write_bytes(content)
        files.append(str(tmp_path / sample_name))
    return Evaluated(figure="", files=tuple(files), metric=metric, metrics=metrics,
                     reference_csv=str(tmp_path / "reference.csv"))


def _as_dict(rows):
    assert all(set(row) == {"quantity", "value"} for row in rows), rows
    names = [row["quantity"] for row in rows]
    assert len(names) == len(set(names)), names                    # no quantity twice
    return {row["quantity"]: row["value"] for row in rows}


# ---------------------------------------------------------------- keys

@pytest.mark.parametrize("name, slug", [("dcgan-digits", "dcgan-digits"), ("My_Model.v2", "my-model-v2"),
                                        ("  Faces 64x64 ", "faces-64x64"), ("a__b..c", "a-b-c"),
                                        ("-lead.", "lead"), ("vae_digits", "vae-digits")])
def test_keys_are_valid_prefect_keys_for_odd_model_names(name, slug):
    from prefect.types.names import raise_on_name_alphanumeric_dashes_only

    for kind in KINDS:
        key = artifact_key(kind, name)
        assert key == f"{kind}-{slug}"
        raise_on_name_alphanumeric_dashes_only(key, "Artifact key")   # Prefect's own rule: raises if invalid


def test_bad_key_input_says_what_is_wrong():
    with pytest.raises(GenloopError, match="no letter or digit"):
        artifact_key("metrics", "..__..")
    with pytest.raises(GenloopError, match="needs a model name"):
        artifact_key("metrics", "  ")
    with pytest.raises(GenloopError, match="is not one of metrics, report"):
        artifact_key("Metrics", "dcgan-digits")


# ---------------------------------------------------------------- metrics table

def test_image_run_table_has_the_figures_the_gate_and_the_provenance(tmp_path):
    evaluated = _evaluated(tmp_path, IMAGE_METRICS, "fid")
    rows = metrics_table(_summary(), _trained(), evaluated, _gated(), finished_at="2026-01-01T00:00:00+00:00")
    assert rows[0] == {"quantity": "model", "value": "dcgan-digits"}
    assert rows[1] == {"quantity": "fid", "value": 41.532}                      # the gate's metric first
    # what a person looks for fits the first page (10 rows) of the Prefect UI's table
    assert [r["quantity"] for r in rows[:8]] == ["model", "fid", "fid 95% interval", "kid", "promoted",
                                                "gate decision", "champion", "champion fid"]
    table = _as_dict(rows)
    assert table["fid 95% interval"] == "39.51 .. 43.49 (100 bootstrap resamples)"
    assert table["kid"] == 0.012346 and table["kid_std"] == 0.002
    assert table["precision"] == 0.7 and table["recall"] == 0.375 and table["samples"] == 24
    assert table["evaluate seconds"] == 12.34 and table["reference_cached"] is False
    assert "fid_interval" not in table and "seconds" not in table
    assert table["champion"] == "dcgan-digits:old" and table["champion fid"] == 55.25
    assert table["gate decision"] == "promote" and table["promoted"] == "yes"
    assert table["reason"].startswith("fid 41.53 beats champion")
    assert table["model tag"] == "dcgan-digits:new"
    assert table["run id"] == "20260101-000000-dcgan-digits-abcd"
    assert table["data md5"] == "md5-data.dir" and table["dataset md5"] == "md5-dataset"
    assert table["train steps"] == 40 and table["device"] == "cpu"
    assert table["run seconds"] == 15.2 and table["finished (UTC)"] == "2026-01-01T00:00:00+00:00"
    assert "approval" not in table
    json.dumps(rows, allow_nan=False)                                         # what Prefect stores


def test_text_run_table_has_perplexity_and_no_fid(tmp_path):
    evaluated = _evaluated(tmp_path, TEXT_METRICS, "perplexity")
    rows = metrics_table(_summary(promoted=False, model_tag=None, name="charlm-pydocs"), _trained(15), evaluated,
                         _gated("perplexity", 5.076222, promote=False, champion=None))
    table = _as_dict(rows)
    assert rows[1] == {"quantity": "perplexity", "value": 5.0762}
    assert [r["quantity"] for r in rows[2:6]] == ["bits_per_char", "promoted", "gate decision", "champion"]
    assert table["bits_per_char"] == 2.3478 and table["tokens"] == 25600 and table["window"] == 64
    assert not any("fid" in name or "interval" in name for name in table)
    assert table["champion"] == "(none)" and table["champion perplexity"] == "(none)"
    assert table["gate decision"] == "keep the champion" and table["promoted"] == "no"
    assert table["model tag"] == "(not promoted)" and table["train steps"] == 15
    assert table["finished (UTC)"].endswith("+00:00")


def test_table_records_the_approval_and_survives_non_finite_scores(tmp_path):
    metrics = {**IMAGE_METRICS, "fid": float("inf"), "kid": float("nan")}
    rows = metrics_table(_summary(), _trained(), _evaluated(tmp_path, metrics, "fid"),
                         _gated(value=float("inf"), approval={"decision": "approve", "reviewer": "alice"}))
    table = _as_dict(rows)
    assert table["fid"] == "inf" and table["kid"] == "nan" and table["approval"] == "approve alice"
    json.dumps(rows, allow_nan=False)                                         # no NaN/Infinity tokens


def test_table_refuses_incomplete_input(tmp_path):
    summary = _summary()
    del summary["model_tag"], summary["stages"]
    with pytest.raises(GenloopError, match="lacks model_tag, stages"):
        metrics_table(summary, _trained(), _evaluated(tmp_path, IMAGE_METRICS, "fid"), _gated())
    with pytest.raises(GenloopError, match="no 'perplexity' among its metrics"):
        metrics_table(_summary(), _trained(), _evaluated(tmp_path, IMAGE_METRICS, "perplexity"), _gated())


# ---------------------------------------------------------------- report

def _report_md(run_id="r1", with_pictures=True):
    lines = [f"# genloop run {run_id}", "", "**Decision:** promoted: no champion yet; fid 41.53", ""]
    if with_pictures:
        lines += ["## Samples", "", "![samples](evaluate/samples.png)", "",
                  "## Class shares", "", "![class shares](class_share.png)", ""]
    lines += ["## Metrics", "", "| | |", "|---|---|", "| fid | 41.53 |", ""]
    return "\n".join(lines)


def test_report_embeds_the_sample_grid_and_the_class_plot(tmp_path):
    from PIL import Image

    (tmp_path / "evaluate").mkdir()
    grid = _png(tmp_path / "evaluate" / "samples.png", (40, 20))
    plot = _png(tmp_path / "class_share.png", (30, 10))
    evaluated = Evaluated(figure="", files=(str(tmp_path / "evaluate" / "samples.png"),), metric="fid",
                          metrics=IMAGE_METRICS, reference_csv="")
    md = report_markdown(_report_md(), evaluated, tmp_path)
    assert "](evaluate/samples.png)" not in md and "](class_share.png)" not in md   # no local paths left
    assert md.count("data:image/png;base64,") == 2 and md.count("## Samples") == 1
    embedded = md.split("![samples](data:image/png;base64,", 1)[1].split(")", 1)[0]
    decoded = base64.b64decode(embedded)
    assert decoded == grid and Image.open(io.BytesIO(decoded)).size == (40, 20)      # a PNG, the grid itself
    shares = md.split("![class shares](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(shares) == plot
    assert "| fid | 41.53 |" in md and md.startswith("# genloop run r1")
    assert md.index("data:image/png") < md.index("## Metrics")                  # where report.md had it


def test_text_report_gets_its_samples_in_a_code_block_and_no_grid(tmp_path):
    evaluated = _evaluated(tmp_path, TEXT_METRICS, "perplexity", "samples.txt", b"'The' -> 'The cat sat'\n")
    md = report_markdown(_report_md(with_pictures=False), evaluated, tmp_path)
    assert "data:image" not in md
    tail = md.split("## Samples", 1)[1]
    assert "```\n'The' -> 'The cat sat'\n```" in tail


def test_a_missing_picture_is_named_not_linked(tmp_path):
    evaluated = _evaluated(tmp_path, IMAGE_METRICS, "fid")                     # no samples file written
    md = report_markdown(_report_md(), evaluated, tmp_path)
    assert "(no samples were written)" in md and f"(class shares: {tmp_path / 'class_share.png'})" in md
    assert "](class_share.png)" not in md


def test_png_data_uri_refuses_other_files(tmp_path):
    (tmp_path / "x.png").write_bytes(b"GIF89a not a png")
    with pytest.raises(GenloopError, match="not a PNG"):
        png_data_uri(tmp_path / "x.png")
    png = _png(tmp_path / "ok.png")
    assert png_data_uri(tmp_path / "ok.png") == "data:image/png;base64," + base64.b64encode(png).decode()


def test_samples_markdown_embeds_the_grid(tmp_path):
    png = _png(tmp_path / "grid.png")
    lines = samples_markdown(_evaluated(tmp_path, IMAGE_METRICS, "fid", "samples.png", png))
    assert len(lines) == 1 and base64.b64decode(lines[0].split("base64,", 1)[1].rstrip(")")) == png


# ---------------------------------------------------------------- monitor

def test_monitor_table_has_one_row_per_check():
    from components.monitoring.drift import Check

    rows = monitor_table([Check("data", True, 0.031234567, 0.01, "embedding drift 0.031 > 0.01"),
                          Check("staleness", False, 1.02, 1.25, "fid 1.02x promotion value"),
                          Check("output", False, float("nan"), 0.5, "too few rows")])
    assert rows[0] == {"check": "data", "fired": "yes", "score": 0.031235, "threshold": 0.01,
                       "summary": "embedding drift 0.031 > 0.01"}
    assert [r["check"] for r in rows] == ["data", "staleness", "output"]
    assert [r["fired"] for r in rows] == ["yes", "no", "no"] and rows[1]["threshold"] == 1.25
    assert rows[2]["score"] == "nan"
    json.dumps(rows, allow_nan=False)


def test_monitor_table_refuses_no_checks_or_other_things():
    with pytest.raises(GenloopError, match="at least one check"):
        monitor_table([])
    with pytest.raises(GenloopError, match="not a monitor check"):
        monitor_table([{"kind": "data"}])
