"""A real `bentoml serve` answering HTTP, and the monitoring flow over its logs."""
import base64
import io
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.processes import free_port

pytestmark = pytest.mark.slow


def start_bento_server(bento_tag: str, port: int, env: dict, cwd=None):
    """`bentoml serve BENTO` on 127.0.0.1:port, once /readyz answers; returns (url, process).
    Its output goes to a file (`proc.log_path`): a pipe nobody reads would fill up with the
    access log and block the server."""
    import tempfile

    log = tempfile.NamedTemporaryFile("w+b", prefix="bentoml-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", bento_tag, "--port", str(port),
                             "--host", "127.0.0.1"], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"bentoml serve exited: {open(log.name, errors='replace').read()[-3000:]}")
        time.sleep(1)
    proc.kill()
    pytest.fail("bentoml serve did not become ready in 120 s")


@pytest.fixture(scope="module")
def server(trained_dcgan, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("serving-logs")
    url, proc = start_bento_server(trained_dcgan["bento_tag"], free_port(),
                                   {**os.environ, "GENLOOP_MONITOR_DIR": str(log_dir)})
    yield url, log_dir
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_generate_returns_pngs_with_provenance(server, trained_dcgan):
    from PIL import Image

    url, _ = server
    reply = httpx.post(f"{url}/generate", json={"n": 3, "seed": 5, "label": "7"}, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_tag"] == trained_dcgan["model_tag"] and body["seed"] == 5
    assert body["data_md5"] == trained_dcgan["data_md5"] and body["labels"] == ["7"] * 3
    images = [Image.open(io.BytesIO(base64.b64decode(b))) for b in body["images"]]
    assert [im.size for im in images] == [(8, 8)] * 3 and images[0].mode == "L"
    again = httpx.post(f"{url}/generate", json={"n": 3, "seed": 5, "label": "7"}, timeout=60).json()
    assert again["images"] == body["images"]                  # same seed, same images


def test_bad_requests_get_400_with_a_reason(server):
    url, _ = server
    bad_label = httpx.post(f"{url}/generate", json={"label": "x"}, timeout=60)
    assert bad_label.status_code == 400 and "valid labels" in bad_label.text
    too_many = httpx.post(f"{url}/generate", json={"n": 0}, timeout=60)
    assert too_many.status_code == 400 and "greater than or equal to 1" in too_many.text


def test_monitoring_flow_reads_serving_logs_and_names_drifted_columns(server, trained_dcgan,
                                                                      data_project, tmp_path):
    from flows.monitoring import OUTPUT_EVENT, monitor

    url, log_dir = server
    for seed in range(8):
        assert httpx.post(f"{url}/generate", json={"n": 32, "seed": seed}, timeout=60).status_code == 200
    logged = list((log_dir / "genloop_generations" / "data").glob("data.*.log"))
    assert logged, "the server wrote no serving log"
    small = {"monitor.min_output_rows": 200, "monitor.output_reference_samples": 1200}
    # served traffic of the same generator (fresh seeds, no label) against a reference
    # sampled the way the service samples: nothing drifts
    result = monitor(str(data_project), "dcgan-digits", ["output"], str(log_dir), overrides=small)
    (check,) = result["checks"]
    assert check["details"]["current_rows"] >= 256 and check["details"]["reference_rows"] == 1200
    assert not check["fired"] and result["event"] is None, check["summary"]
    assert check["score"] < 0.5
    # a drifted generator: brighter, inkier images of one class -> output drift, an alert
    # (retraining on the same data would not change it), not the retraining event
    drifted = tmp_path / "drifted" / "genloop_generations" / "data"
    drifted.mkdir(parents=True)
    rows = [{"label": "1", "mean_intensity": 0.9, "std_intensity": 0.05 + i * 1e-3,
             "ink_fraction": 0.95, "model_tag": trained_dcgan["model_tag"]} for i in range(240)]
    (drifted / "data.0.log").write_text("\n".join(json.dumps(r) for r in rows))
    result = monitor(str(data_project), "dcgan-digits", ["output"], str(tmp_path / "drifted"), overrides=small)
    (check,) = result["checks"]
    assert check["fired"] and check["score"] == 1.0 and result["event"] == OUTPUT_EVENT
    assert not result["retrain"] and result["fired"] == ["output"]
    report = json.loads(open(check["details"]["json"]).read())
    assert report["columns"]["mean_intensity"]["drifted"]
    saved = json.loads(open(result["report_path"]).read())
    assert saved["event"]["kinds"] == ["output"]


def test_follow_moves_to_a_new_champion_without_failing_a_request(trained_dcgan, tmp_path):
    """`genloop serve --follow`: a promotion while requests flow changes the responses'
    model_tag; every request answers 200."""
    import threading

    from components.registry import get_model, save_model, set_champion

    url, proc = start_bento_server(trained_dcgan["bento_tag"], free_port(),
                                   {**os.environ, "GENLOOP_MONITOR_DIR": str(tmp_path / "logs"),
                                    "GENLOOP_FOLLOW": "1", "GENLOOP_FOLLOW_EVERY": "0.2"})
    old = get_model(trained_dcgan["model_tag"])
    statuses, tags, stop = [], [], threading.Event()

    def load():
        while not stop.is_set():
            try:
                reply = httpx.post(f"{url}/generate", json={"n": 2}, timeout=60)
            except httpx.HTTPError as exc:          # a dropped connection is a failed request too
                statuses.append(repr(exc))
                continue
            statuses.append(reply.status_code)
            if reply.status_code == 200:
                tags.append(reply.json()["model_tag"])

    try:
        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(2)
        new = save_model("dcgan-digits", {"checkpoint": old.path / "checkpoint"}, {"modality": "image"},
                         old.metadata)
        set_champion("dcgan-digits", new)
        deadline = time.time() + 30
        while time.time() < deadline and (not tags or tags[-1] != new):
            time.sleep(0.5)
        time.sleep(1)
        stop.set()
        for w in workers:
            w.join(60)
    finally:
        stop.set()
        set_champion("dcgan-digits", old.tag)        # later tests expect the trained champion
        proc.terminate()
        proc.wait(20)
    assert statuses and set(statuses) == {200}, statuses
    assert tags[0] == old.tag and tags[-1] == new and old.tag != new
