"""A real `bentoml serve` answering HTTP, and the monitoring flow over its logs."""
import base64
import io
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bento_server(bento_tag: str, port: int, env: dict, cwd=None):
    """`bentoml serve BENTO` on 127.0.0.1:port, once /readyz answers; returns (url, process)."""
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", bento_tag, "--port", str(port),
                             "--host", "127.0.0.1"], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"bentoml serve exited: {proc.stdout.read().decode()[-3000:]}")
        time.sleep(1)
    proc.kill()
    pytest.fail("bentoml serve did not become ready in 120 s")


@pytest.fixture(scope="module")
def server(trained_dcgan, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("serving-logs")
    url, proc = start_bento_server(trained_dcgan["bento_tag"], _free_port(),
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
    from flows.monitoring import monitor

    url, log_dir = server
    for seed in range(4):
        assert httpx.post(f"{url}/generate", json={"n": 16, "seed": seed}, timeout=60).status_code == 200
    logged = list((log_dir / "genloop_generations" / "data").glob("data.*.log"))
    assert logged, "bentoml.monitor wrote no log"
    # served traffic of the same generator: its pixel statistics do not drift
    result = monitor(str(data_project), "dcgan-digits", str(log_dir))
    assert result["current_rows"] >= 64 and os.path.isfile(result["html_path"])
    assert not {"mean_intensity", "std_intensity", "ink_fraction"} & set(result["drifted_columns"])
    assert not result["drift_detected"]
    # a drifted generator: brighter, inkier images of one class
    drifted = tmp_path / "drifted" / "genloop_generations" / "data"
    drifted.mkdir(parents=True)
    rows = [{"label": "1", "mean_intensity": 0.9, "std_intensity": 0.05 + i * 1e-3,
             "ink_fraction": 0.95, "model_tag": trained_dcgan["model_tag"]} for i in range(60)]
    (drifted / "data.0.log").write_text("\n".join(json.dumps(r) for r in rows))
    result = monitor(str(data_project), "dcgan-digits", str(tmp_path / "drifted"))
    assert {"mean_intensity", "ink_fraction", "std_intensity", "label"} <= set(result["drifted_columns"])
    assert result["drift_share"] == 1.0 and result["drift_detected"]
    report = json.loads(open(result["json_path"]).read())
    assert report["columns"]["mean_intensity"]["drifted"]
