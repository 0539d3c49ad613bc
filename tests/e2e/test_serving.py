"""A real `bentoml serve` of genloop's service under concurrent, streamed, guarded and
malformed requests: batching gives each request its alone answer, streams stop with their
client, tokens guard the API, bad requests get 4xx, and genloop's metrics are on /metrics."""
import asyncio
import base64
import io
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port
from tests.e2e.test_serve_and_monitor import start_bento_server

pytestmark = pytest.mark.slow
TOKENS = ["t" * 24 + "-one", "u" * 24 + "-two"]
AUTH = {"Authorization": f"Bearer {TOKENS[1]}"}


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except Exception:
        proc.kill()


@pytest.fixture(scope="module")
def image_server(trained_dcgan, tmp_path_factory):
    logs = tmp_path_factory.mktemp("serving-logs")
    url, proc = start_bento_server(trained_dcgan["bento_tag"], free_port(), {
        **os.environ, "GENLOOP_MONITOR_DIR": str(logs), "GENLOOP_API_TOKENS": ",".join(TOKENS)})
    yield url, logs, proc
    _stop(proc)


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    """A small untrained transformer, stored and built into a bento the way `genloop run` does."""
    from components.models import build_model
    from components.models.io import save_checkpoint
    from components.registry import build_bento, save_model

    work = tmp_path_factory.mktemp("text-bento")
    model = build_model("charlm", {"block_size": 16, "d_model": 32, "n_layers": 2, "n_heads": 2})
    checkpoint = save_checkpoint(model, {}, work / "checkpoint")
    tag = save_model("charlm-serving", {"checkpoint": checkpoint}, {"modality": "text"},
                     {"modality": "text", "dataset_md5": "x"})
    bento = build_bento(tag, "charlm-serving", "text", work / "ctx", {"max_batch_size": 32})
    logs = tmp_path_factory.mktemp("text-logs")
    url, proc = start_bento_server(bento, free_port(), {**os.environ, "GENLOOP_MONITOR_DIR": str(logs)})
    yield url, tag, model, logs
    _stop(proc)


async def _concurrently(url, bodies, path="/generate", headers=None):
    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(*[client.post(f"{url}{path}", json=b, headers=headers) for b in bodies])


def _metric(url, name, **labels) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _logged_rows(logs: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in (logs / "genloop_generations" / "data").glob("data.*.log"))


def test_tokens_guard_the_api_but_not_the_probes(image_server):
    url, _, proc = image_server
    body = {"n": 1, "seed": 1}
    assert httpx.post(f"{url}/generate", json=body, timeout=60).status_code == 401
    wrong = httpx.post(f"{url}/generate", json=body, headers={"Authorization": "Bearer " + "x" * 30}, timeout=60)
    assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
    for token in TOKENS:
        assert httpx.post(f"{url}/generate", json=body, headers={"Authorization": f"Bearer {token}"},
                          timeout=60).status_code == 200
    for probe in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(f"{url}{probe}", timeout=30).status_code == 200
    assert _metric(url, "genloop_request_errors_total", reason="unauthorized") >= 2
    log = open(proc.log_path, errors="replace").read()
    assert "bearer token(s)" in log and not any(t in log for t in TOKENS)      # tokens never logged


def test_concurrent_image_requests_batch_and_each_gets_its_alone_answer(image_server):
    url, logs, _ = image_server
    _batches_and_alone_answers(url, logs)


def test_the_thread_image_engine_batches_and_answers_as_alone_too(trained_dcgan, tmp_path):
    """serving.image_engine: thread (forwards on a thread of their own, max_latency_ms)."""
    logs = tmp_path / "logs"
    url, proc = start_bento_server(trained_dcgan["bento_tag"], free_port(), {
        **os.environ, "GENLOOP_MONITOR_DIR": str(logs), "GENLOOP_API_TOKENS": ",".join(TOKENS),
        "GENLOOP_MAX_LATENCY_MS": "30", "GENLOOP_IMAGE_ENGINE": "thread"})
    try:
        _batches_and_alone_answers(url, logs)
    finally:
        _stop(proc)


def _batches_and_alone_answers(url, logs):
    bodies = [{"n": 1 + i % 4, "seed": 100 + i, "label": None if i % 3 else str(i % 10),
               "temperature": [1.0, 0.7, 1.3][i % 3]} for i in range(24)]
    rows_before, forwards_before = _logged_rows(logs), _metric(url, "genloop_batch_rows_count")
    together = asyncio.run(_concurrently(url, bodies, headers=AUTH))
    forwards = _metric(url, "genloop_batch_rows_count") - forwards_before
    alone = [httpx.post(f"{url}/generate", json=b, headers=AUTH, timeout=60) for b in bodies]
    assert all(r.status_code == 200 for r in together + alone)
    for a, b in zip(together, alone):
        assert a.json()["labels"] == b.json()["labels"] and a.json()["seed"] == b.json()["seed"]
        assert a.json()["images"] == b.json()["images"]
    assert forwards < len(bodies) / 2, f"{forwards} forwards for {len(bodies)} concurrent requests"
    items = 2 * sum(b["n"] for b in bodies)
    deadline = time.time() + 20                       # the serving log is written as a request ends
    while _logged_rows(logs) - rows_before < items and time.time() < deadline:
        time.sleep(0.5)
    assert _logged_rows(logs) - rows_before == items  # exactly one monitoring row per generated image


def test_png_endpoint_answers_the_same_images_as_json(image_server):
    from PIL import Image

    url, _, _ = image_server
    body = {"n": 1, "seed": 42, "label": "3"}
    png = httpx.post(f"{url}/generate_png", json=body, headers=AUTH, timeout=60)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    as_json = httpx.post(f"{url}/generate", json=body, headers=AUTH, timeout=60).json()
    assert png.content == base64.b64decode(as_json["images"][0])
    assert png.headers["x-genloop-model-tag"] == as_json["model_tag"] and png.headers["x-genloop-labels"] == "3"
    grid = httpx.post(f"{url}/generate_png", json={"n": 10, "seed": 1}, headers=AUTH, timeout=60)
    assert Image.open(io.BytesIO(grid.content)).size == (8 * 9 + 1, 2 * 9 + 1)     # 8 a row, 1-pixel gaps
    stream = httpx.post(f"{url}/generate_stream", json={"n": 1}, headers=AUTH, timeout=60)
    assert stream.status_code == 400 and "image model" in stream.json()["error"]


BAD = [  # (raw body, content type, expected status, words in the error)
    (b'{"seed": 99999999999999999999999}', "application/json", 400, "less than or equal"),
    (b'{"seed": -1}', "application/json", 400, "greater than or equal"),
    (b'{"n": 0}', "application/json", 400, "greater than or equal to 1"),
    (b'{"n": 1000000}', "application/json", 400, "less than or equal"),
    (b'{"n": "2"}', "application/json", 400, "valid integer"),
    (b'{"n": 2.5}', "application/json", 400, "valid integer"),
    (b'{"n": true}', "application/json", 400, "valid integer"),
    (b'{"temperature": NaN}', "application/json", 400, "finite number"),
    (b'{"temperature": 1e999}', "application/json", 400, "finite number"),
    (b'{"temperature": -Infinity}', "application/json", 400, "finite number"),
    (b'{"top_p": null}', "application/json", 400, "valid number"),
    (b'{"label": ["7"]}', "application/json", 400, "valid string"),
    (b'{"label": "not-a-class"}', "application/json", 400, "valid labels"),
    (b'{"tempreature": 0.5}', "application/json", 400, "Extra inputs"),
    (b'[{"n": 1}]', "application/json", 400, "object"),
    (b'"n"', "application/json", 400, "object"),
    (b'{"n": 1', "application/json", 400, "Invalid JSON"),
    (b'{"prompt": "\xff\xfe"}', "application/json", 400, "Invalid JSON"),
    (b'{"prompt": "' + b"a" * 5000 + b'"}', "application/json", 400, "at most 4096"),
    (b'{"n": 1, "pad": "' + b"a" * 70000 + b'"}', "application/json", 413, "bytes"),
    (b"n=1", "application/x-www-form-urlencoded", 415, "application/json"),
    (b"", "application/json", 400, "empty request body"),
    (b"\x80\x04K\x01.", "application/vnd.bentoml+pickle", 415, "application/json"),
]


def test_malformed_requests_get_a_4xx_with_the_reason_and_the_server_lives(image_server):
    url, _, _ = image_server
    for raw, media, status, words in BAD:
        reply = httpx.post(f"{url}/generate", content=raw, headers={**AUTH, "Content-Type": media}, timeout=60)
        assert reply.status_code == status and words in reply.text, (raw[:60], reply.status_code, reply.text[:300])
    assert httpx.post(f"{url}/generate", json={"n": 2}, headers=AUTH, timeout=60).status_code == 200
    assert _metric(url, "genloop_request_errors_total", reason="server_error") == 0


def test_concurrent_text_requests_get_their_alone_text_and_stream_it(text_server):
    url, tag, model, logs = text_server
    bodies = [{"n": 1 + i % 3, "seed": i, "prompt": ["", "def f", "x" * 20][i % 3], "max_new_tokens": 10 + 7 * i,
               "temperature": [1.0, 0.6][i % 2], "top_k": [0, 12][i % 2]} for i in range(8)]
    together = asyncio.run(_concurrently(url, bodies))
    assert all(r.status_code == 200 for r in together), [r.text for r in together]
    for body, reply in zip(bodies, together):
        expected = model.sample(body["n"], body["seed"], **{k: v for k, v in body.items() if k not in ("n", "seed")})
        assert reply.json()["texts"] == expected and reply.json()["model_tag"] == tag
    # the stream of one request: its events add up to the same text, then a done event
    body = bodies[4]
    with httpx.stream("POST", f"{url}/generate_stream", json=body, timeout=60) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
    done = events[-1]
    assert done["done"] and done["texts"] == together[4].json()["texts"] and done["seed"] == body["seed"]
    pieces = ["".join(e["texts"][i] for e in events[:-1]) for i in range(body["n"])]
    assert pieces == done["texts"] and len(events) - 1 >= body["max_new_tokens"]
    assert _metric(url, "genloop_time_to_first_token_seconds_count") >= 1
    assert _metric(url, "genloop_tokens_generated_total", model_tag=tag) >= sum(
        b["n"] * b["max_new_tokens"] for b in bodies)


def test_a_stream_stops_generating_when_its_client_goes_away(text_server):
    url = text_server[0]
    before = _metric(url, "genloop_batch_rows_count", kind="text")
    with httpx.stream("POST", f"{url}/generate_stream", json={"n": 1, "max_new_tokens": 2000}, timeout=60) as reply:
        first = next(line for line in reply.iter_lines() if line.startswith("data: "))
        assert json.loads(first[6:])["texts"]
    time.sleep(1.0)                                   # the server notices the disconnect
    steps = _metric(url, "genloop_batch_rows_count", kind="text")
    time.sleep(1.5)
    assert _metric(url, "genloop_batch_rows_count", kind="text") == steps, "still decoding for a closed stream"
    assert steps - before < 1000, f"{steps - before} of 2000 steps decoded: the stream was not stopped"
