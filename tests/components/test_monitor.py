"""The drift monitor's checks without Prefect: data drift on a real shift and not on a
resample, text drift, and one clear error for each kind of bad input."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from components.config import MonitorConfig, RunConfig, load_config
from components.errors import GenloopError
from components.monitoring.drift import data_drift
from components.monitoring.run import monitor_model


def _cfg(kind: str = "image", **monitor) -> RunConfig:
    from dataclasses import replace

    base = load_config(Path(__file__).resolve().parents[2] / "configs" /
                       ("dcgan-digits.yaml" if kind == "image" else "charlm-pydocs.yaml"))
    return replace(base, monitor=replace(MonitorConfig(), **monitor))


def _copy(files, dest: Path, transform=None) -> Path:
    from PIL import Image, ImageOps

    for path in files:
        out = dest / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        if transform:
            with Image.open(path) as img:
                ImageOps.invert(img.convert("L")).save(out)
        else:
            shutil.copyfile(path, out)
    return dest


@pytest.mark.slow
def test_image_data_drift_fires_on_changed_content_not_on_a_resample(data_project, tmp_path):
    from components.data.images import list_images

    digits = data_project / "data" / "digits"
    files = [p for p, _ in list_images(digits)]
    random.Random(0).shuffle(files)
    cfg, cache = _cfg(data_samples=200), tmp_path / "features.sqlite"
    resample = _copy(files[:900], tmp_path / "resample")
    same = data_drift(digits, resample, cfg, cache, tmp_path / "same")
    assert not same.fired, same.summary
    assert same.score < cfg.monitor.embedding_threshold and same.details["class_share_tv"] < 0.1
    inverted = _copy(files[:900], tmp_path / "inverted", transform="invert")
    shifted = data_drift(digits, inverted, cfg, cache, tmp_path / "shifted")
    assert shifted.fired and shifted.score > 10 * cfg.monitor.embedding_threshold, shifted.summary
    assert "embedding drift" in shifted.summary and shifted.details["class_share_tv"] < 0.1
    assert Path(shifted.details["html_path"]).is_file()
    # a second check over the same files goes through Inception for none of them
    again = data_drift(digits, inverted, cfg, cache, tmp_path / "again")
    assert again.details["features_computed"] == 0 and again.score == shifted.score


def test_class_share_change_names_the_new_classes(data_project, tmp_path, monkeypatch):
    """Class shares are counted over every file; the embedding part is replaced by a
    constant so this test needs no Inception pass."""
    import numpy as np

    from components.data.images import list_images
    from components.monitoring import embeddings

    monkeypatch.setattr(embeddings, "image_embeddings",
                        lambda files, channels, cache, device="cpu": (np.ones((len(files), 8)) +
                                                                      np.arange(len(files))[:, None] % 7, 0))
    digits = data_project / "data" / "digits"
    low = _copy([p for p, label in list_images(digits) if int(label) <= 4], tmp_path / "v1")
    check = data_drift(low, digits, _cfg(data_samples=200), tmp_path / "f.sqlite", tmp_path / "out")
    assert check.fired and check.details["new_classes"] == ["5", "6", "7", "8", "9"]
    assert check.details["class_share_tv"] == pytest.approx(0.5, abs=0.02)
    assert "new classes: 5, 6, 7, 8, 9" in check.summary


def test_text_data_drift_fires_on_another_corpus_not_on_the_same(data_project, tmp_path):
    corpus = data_project / "data" / "pydocs"
    cfg = _cfg("text", data_samples=200)
    same = data_drift(corpus, corpus, cfg, tmp_path / "f.sqlite", tmp_path / "same")
    assert not same.fired and same.score < cfg.monitor.embedding_threshold
    code = tmp_path / "code" / "pydocs"
    code.mkdir(parents=True)
    sources = sorted(Path(json.__file__).parent.parent.glob("*.py"))[:60]
    (code / "corpus.txt").write_text("".join(p.read_text(errors="replace") for p in sources))
    other = data_drift(corpus, code, cfg, tmp_path / "f.sqlite", tmp_path / "other")
    assert other.fired and other.score > cfg.monitor.embedding_threshold, other.summary


def test_small_samples_are_refused_in_the_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitor:\n  data_samples: 50\n")
    with pytest.raises(GenloopError, match="data_samples must be >= 200"):
        load_config(bad)
    bad.write_text("monitor:\n  retrain_on: [data, weather]\n")
    with pytest.raises(GenloopError, match="unknown: \\['weather'\\]"):
        load_config(bad)


def test_monitor_without_a_champion_says_so(data_project):
    with pytest.raises(GenloopError, match="no champion named 'nobody'"):
        monitor_model(data_project, "nobody")
    with pytest.raises(GenloopError, match="--checks takes"):
        monitor_model(data_project, "dcgan-digits", ("weather",))


@pytest.mark.slow
def test_monitor_bad_inputs_fail_in_one_line_and_write_nothing(trained_dcgan, data_project, tmp_path):
    out = tmp_path / "report"
    cases = [
        (dict(checks=("output",), log_dir=tmp_path / "no-logs"), "no serving logs in"),
        (dict(checks=("data",), data_dir=tmp_path / "missing"), "--data-dir .* is missing or empty"),
        (dict(checks=("data",), data_rev="no-such-rev"), "is not a git revision"),
        (dict(checks=("data",), data_dir=tmp_path / "nodigits"), "no dataset folder 'digits'"),
    ]
    (tmp_path / "nodigits" / "other").mkdir(parents=True)
    other = tmp_path / "other-logs" / "genloop_generations" / "data"
    other.mkdir(parents=True)
    (other / "data.0.log").write_text(json.dumps({"label": "1", "mean_intensity": 0.1, "model_tag": "x:y"}) + "\n")
    cases.append((dict(checks=("output",), log_dir=tmp_path / "other-logs"), "are of x:y, not of the champion"))
    for kwargs, message in cases:
        checks = kwargs.pop("checks")
        with pytest.raises(GenloopError, match=message):
            monitor_model(data_project, "dcgan-digits", checks, out_dir=out, **kwargs)
        assert not out.exists()


@pytest.mark.slow
def test_a_check_that_fails_midway_leaves_no_report(trained_dcgan, data_project, tmp_path, monkeypatch):
    """The data check wrote its Evidently report, then staleness failed: no report folder,
    no half-written one."""
    from components.monitoring import drift

    def data_ok(reference_dir, current_dir, cfg, cache, out_dir, device="cpu"):
        (Path(out_dir) / "data_drift.html").write_text("<html/>")
        return drift.Check("data", False, 0.0, 0.01, "ok")

    def broken(*args, **kwargs):
        raise GenloopError("staleness broke")

    monkeypatch.setattr(drift, "data_drift", data_ok)
    monkeypatch.setattr(drift, "staleness", broken)
    out = tmp_path / "report"
    with pytest.raises(GenloopError, match="staleness broke"):
        monitor_model(data_project, "dcgan-digits", ("data", "staleness"), out_dir=out)
    assert not out.exists() and not list(tmp_path.glob("report*"))


@pytest.mark.slow
def test_file_features_equal_the_tensor_path_fid_used(data_project, tmp_path):
    """The per-file cache feeds FID's reference: its features must be the very numbers
    the tensor path computes (else FID would move)."""
    import numpy as np

    from components.data.images import list_images, load_image_folder, to_uint8
    from components.evaluation.fid import inception_features
    from components.evaluation.run import reference_pick
    from components.monitoring.embeddings import image_embeddings

    digits = data_project / "data" / "digits"
    files = [p for p, _ in list_images(digits)]
    data = load_image_folder(digits, tuple(str(i) for i in range(10)), 1)
    pick = reference_pick(len(files), 500)[:20]
    direct = inception_features(to_uint8(data.images[pick]))
    cached, computed = image_embeddings([files[i] for i in pick.tolist()], 1, tmp_path / "f.sqlite")
    assert computed == 20 and np.array_equal(direct, cached)


def test_a_drift_event_is_emitted_once_per_champion_data_and_kinds(tmp_path):
    from components.monitoring.run import MonitorResult, emit_once

    sent = []

    def result(md5: str, fired: list[str]) -> MonitorResult:
        return MonitorResult("m", "m:1", {"label": "data/", "data_md5": md5, "data_rev": ""}, "old", [],
                             ("data",), "", 0.0, fired)

    def emit(ok=True):
        sent.append(1)
        return object() if ok else None

    event = "genloop.drift.detected"
    assert not emit_once(tmp_path, result("v2", ["data"]), event, lambda: emit(ok=False))   # not sent: not recorded
    assert emit_once(tmp_path, result("v2", ["data"]), event, emit)
    assert not emit_once(tmp_path, result("v2", ["data"]), event, emit)
    assert emit_once(tmp_path, result("v3", ["data"]), event, emit)                       # newer data
    assert emit_once(tmp_path, result("v2", ["data", "staleness"]), event, emit)
    assert len(sent) == 4                                                                # the repeat never called emit


def test_the_monitor_artifact_lists_each_check_with_its_verdict():
    from components.monitoring.drift import Check
    from components.monitoring.run import MonitorResult

    checks = [Check("data", True, 0.03, 0.01, "embedding drift 0.03 > 0.01"), Check("output", False, 0.25, 0.5, "ok")]
    text = MonitorResult("m", "m:1", {"label": "data/", "data_md5": "abc", "data_rev": ""}, "old", checks,
                         ("data",), "", 0.0, ["data"]).markdown()
    assert "| data | FIRED | 0.03 | 0.01 |" in text and "| output | ok |" in text and "retrain: yes" in text
