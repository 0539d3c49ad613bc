"""The serving parts on their own (components/serving/): the batching engines against the
models' own sampling, the bearer-token guard, the limits and the metrics."""
import asyncio
import time

import httpx
import prometheus_client
import pytest
import torch

from components.errors import GenloopError
from components.models import build_model
from components.serving.engine import EngineClosed, ImageEngine, LoopImageEngine, TextEngine, describe, make_engine
from components.serving.guard import GenloopGuard, load_tokens
from components.serving.limits import ServingConfig
from components.serving.metrics import Metrics, reason_of

TOKEN_A, TOKEN_B = "a" * 20 + "-first", "b" * 20 + "-second"


# limits --------------------------------------------------------------------------------------

def test_serving_config_takes_the_packaged_settings_then_the_environment():
    cfg = ServingConfig.resolve({"max_batch_size": 8, "max_prompt_chars": 100, "from_the_future": 1},
                                {"GENLOOP_MAX_LATENCY_MS": "7.5"})
    assert (cfg.max_batch_size, cfg.max_prompt_chars, cfg.max_latency_ms) == (8, 100, 7.5)
    assert ServingConfig.resolve({"max_batch_size": 8}, {"GENLOOP_MAX_BATCH_SIZE": "3"}).max_batch_size == 3
    with pytest.raises(GenloopError, match="GENLOOP_MAX_BATCH_SIZE='many' is not a number"):
        ServingConfig.resolve(None, {"GENLOOP_MAX_BATCH_SIZE": "many"})
    with pytest.raises(GenloopError, match="serving.max_batch_size must be >= 1"):
        ServingConfig.resolve(None, {"GENLOOP_MAX_BATCH_SIZE": "0"})
    with pytest.raises(GenloopError, match="max_latency_ms must be in"):
        ServingConfig(max_latency_ms=-1).check()
    assert ServingConfig.resolve(None, {"GENLOOP_SWITCH_INTERVAL_MS": "0.25"}).switch_interval_ms == 0.25
    with pytest.raises(GenloopError, match="switch_interval_ms must be in"):
        ServingConfig.resolve({"switch_interval_ms": 0}, {})
    assert (ServingConfig().threads(2), ServingConfig().threads(16), ServingConfig().threads(1)) == (1, 15, 1)
    assert ServingConfig(torch_threads=3).threads(16) == 3
    assert ServingConfig.resolve({"torch_threads": 4}, {"GENLOOP_TORCH_THREADS": "0"}).torch_threads == 0
    with pytest.raises(GenloopError, match="torch_threads must be >= 0"):
        ServingConfig.resolve(None, {"GENLOOP_TORCH_THREADS": "-1"})
    assert (ServingConfig().text_threads(2), ServingConfig(torch_threads=3).text_threads(16)) == (2, 3)


def test_the_event_loop_runs_torch_on_one_thread_unless_image_forwards_run_there():
    """A second OpenMP team slows the engine's (engine.on_a_passing_thread): the thread that
    submits (the event loop) gets the image forwards' threads only when it runs them."""
    m, t = image_model(), text_model()
    engines = [make_engine(m, ServingConfig(torch_threads=3)),
               make_engine(m, ServingConfig(torch_threads=3, image_engine="thread")),
               make_engine(t, ServingConfig(torch_threads=3))]
    try:
        assert [e.caller_threads for e in engines] == [3, 1, 1]
        assert (engines[1].threads, engines[2].threads) == (3, 3)      # the engines' own threads
    finally:
        for e in engines:
            e.close()


def _thread_ids() -> set[str]:
    import os

    return set(os.listdir("/proc/self/task"))


@pytest.fixture
def process_torch_threads():
    """Tests below move torch's process-wide thread count; put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_own_torch_threads_holds_against_a_later_process_wide_count(process_torch_threads):
    """torch sets a thread's count from the process-wide one at that thread's first parallel
    op: a thread that set 1, then ran its first op after another thread had set 2, ran on 2."""
    import threading

    from components.serving.engine import own_torch_threads

    ready, go, seen = threading.Event(), threading.Event(), []

    def engine():
        own_torch_threads(1)
        ready.set()
        go.wait(10)
        torch.ones(1 << 20).add_(1)                            # its first parallel op
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=engine)
    t.start()
    ready.wait(10)
    torch.set_num_threads(2)                                   # another thread moves the process's count
    go.set()
    t.join(10)
    assert seen == [1]


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="lists threads in /proc (Linux)")
@pytest.mark.skipif("OpenMP" not in torch.__config__.parallel_info(), reason="torch built without OpenMP")
def test_on_a_passing_thread_returns_raises_and_leaves_no_openmp_team(process_torch_threads):
    from components.serving.engine import on_a_passing_thread, own_torch_threads

    def load(size):
        own_torch_threads(2)
        torch.ones(size).add_(1)                               # torch's own OpenMP loop: a team of 2
        return _thread_ids()

    before = _thread_ids()
    new = on_a_passing_thread(load, 1 << 20) - before
    assert len(new) >= 2                                       # the passing thread and its team's thread
    deadline = time.monotonic() + 5
    while new & _thread_ids() and time.monotonic() < deadline:
        time.sleep(0.05)                                       # the team's thread ends just after its master
    assert not new & _thread_ids()
    with pytest.raises(ValueError, match="no such model"):
        on_a_passing_thread(lambda: (_ for _ in ()).throw(ValueError("no such model")))


def test_the_thread_image_engine_runs_on_its_own_thread_count(process_torch_threads):
    seen = []
    engine = ImageEngine(image_model(), max_batch_size=8, threads=1,
                         observe=lambda kind, rows: seen.append(torch.get_num_threads()))
    try:
        torch.set_num_threads(2)                               # the process-wide count, after the engine started
        engine.submit(2, 0).future.result(30)
    finally:
        engine.close()
    assert seen == [1]


def test_the_onednn_calibration_runs_on_the_image_forwards_thread_count(monkeypatch, process_torch_threads):
    """With the thread image engine the event loop keeps to one torch thread; the oneDNN
    crossover moves with the thread count, so it is measured on the engine's."""
    from components.serving import engine as engine_module

    import threading

    seen = []
    monkeypatch.setattr(engine_module.onednn, "calibrate", lambda forward_of, max_rows: seen.append(
        (threading.get_ident(), torch.get_num_threads())) or 4)
    torch.set_num_threads(1)                                   # the caller: the event loop's one thread
    config = ServingConfig(torch_threads=2, lower_convs=0, image_engine="thread")
    assert engine_module.image_onednn_min_rows(image_model(), config) == 4
    assert [count for _, count in seen] == [2] and torch.get_num_threads() == 1
    assert seen[0][0] != threading.get_ident()                 # its OpenMP team is not left on the caller


def test_cores_follow_omp_num_threads(monkeypatch):
    """A pod's CPU limit reaches the server as OMP_NUM_THREADS (deploy/k8s): the thread counts
    follow it, not the node's core count."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (ServingConfig().threads(), ServingConfig().text_threads()) == (2, 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    import os
    assert ServingConfig().text_threads() == len(os.sched_getaffinity(0))
    assert ServingConfig().image_engine == "loop"
    assert ServingConfig.resolve({"image_engine": "loop"}, {"GENLOOP_IMAGE_ENGINE": "thread"}).image_engine == "thread"
    with pytest.raises(GenloopError, match="image_engine must be one of loop, thread, got 'gpu'"):
        ServingConfig.resolve(None, {"GENLOOP_IMAGE_ENGINE": "gpu"})
    assert ServingConfig().onednn_min_rows == -1
    assert ServingConfig.resolve({"onednn_min_rows": 8}, {"GENLOOP_ONEDNN_MIN_ROWS": "0"}).onednn_min_rows == 0
    with pytest.raises(GenloopError, match="onednn_min_rows must be -1 .measured at start-up."):
        ServingConfig.resolve(None, {"GENLOOP_ONEDNN_MIN_ROWS": "-2"})


# oneDNN by rows ------------------------------------------------------------------------------

def test_rows_path_turns_onednn_off_below_min_rows_for_the_block_only():
    from components.serving.onednn import rows_path

    assert torch._C._get_mkldnn_enabled()
    seen = []
    for rows, min_rows in ((1, 4), (3, 4), (4, 4), (64, 4), (1, 0), (64, 65)):
        with rows_path(rows, min_rows):
            seen.append(torch._C._get_mkldnn_enabled())
        assert torch._C._get_mkldnn_enabled()                 # put back after each forward
    assert seen == [False, False, True, True, True, False]
    with pytest.raises(RuntimeError), rows_path(1, 4):        # put back when the forward fails too
        raise RuntimeError("the model failed")
    assert torch._C._get_mkldnn_enabled()
    from components.serving import onednn

    onednn.PROCESS_SETTING = False                            # a process that turned it off keeps it off
    torch._C._set_mkldnn_enabled(False)
    try:
        with rows_path(64, 4):
            assert not torch._C._get_mkldnn_enabled()
        assert not torch._C._get_mkldnn_enabled()
    finally:
        onednn.PROCESS_SETTING = True
        torch._C._set_mkldnn_enabled(True)


def test_a_calibration_during_a_forward_leaves_onednn_as_the_process_set_it():
    """Hot swap: the new model is calibrated on the follow thread while the old one serves. A
    forward that switched oneDNN off and ends during the calibration must not leave the flag
    off for good (each switch puts back the process's setting, not what it read)."""
    from components.serving.onednn import calibrate, rows_path

    serving, ended = rows_path(1, 4), []
    serving.__enter__()                                       # the old model's batch-1 forward starts
    assert not torch._C._get_mkldnn_enabled()

    def forward_of(rows):
        def forward():
            if not ended:
                serving.__exit__(None, None, None)
            ended.append(True)
        return forward

    calibrate(forward_of, max_rows=2, reps=1)                 # ... and ends during the calibration
    assert ended and torch._C._get_mkldnn_enabled()
    with rows_path(64, 4):                                    # later forwards still switch
        assert torch._C._get_mkldnn_enabled()
    with rows_path(1, 4):
        assert not torch._C._get_mkldnn_enabled()
    assert torch._C._get_mkldnn_enabled()


def test_a_model_with_convolutions_left_gets_a_measured_onednn_row_count():
    from components.serving.engine import image_onednn_min_rows

    m = image_model()
    rows = image_onednn_min_rows(m, ServingConfig(lower_convs=0, max_batch_size=8))   # default -1: measured
    assert rows in (0, 2, 4, 8, 9) and torch._C._get_mkldnn_enabled()
    engine = make_engine(m, ServingConfig(lower_convs=0, onednn_min_rows=4))
    assert "oneDNN for forwards of 4+ rows (serving.onednn_min_rows)" in describe(
        engine, ServingConfig(onednn_min_rows=4))


@pytest.mark.parametrize("slow_below, expected", [(0, 0), (8, 8), (1000, 17)])
def test_calibrate_finds_the_rows_from_which_onednn_is_not_slower(slow_below, expected):
    """A stand-in forward 3 ms slower with oneDNN below `slow_below` rows and 3 ms slower
    without it from there: calibrate returns the first power of two where oneDNN is not the
    slower path (0: never slower, max_rows + 1: always)."""
    import time as _time

    from components.serving.onednn import calibrate

    def forward_of(rows):
        def forward():
            if torch._C._get_mkldnn_enabled() == (rows < slow_below):
                _time.sleep(0.003)
        return forward

    assert calibrate(forward_of, max_rows=16, reps=2) == expected
    assert torch._C._get_mkldnn_enabled()


def test_device_of_and_the_no_op_moves_agree_with_torchs_own():
    from torch import nn

    from components.models.base import as_cpu_float, device_of, on_device

    class Holder(nn.Module):
        def __init__(self, first, rest):
            super().__init__()
            self.first, self.rest = first, rest

    meta = nn.Linear(2, 2, device="meta")
    trees = [nn.Sequential(nn.ReLU(), meta),                          # first child without parameters
             Holder(nn.Sequential(nn.Sequential(), nn.Tanh()), nn.Sequential(meta)),   # empty first branch
             Holder(None, meta),                                       # a None child
             nn.Sequential(nn.Sequential(nn.Linear(2, 2)), meta),      # found on the first path
             image_model().generator]
    for tree in trees:
        assert device_of(tree) == next(tree.parameters()).device
    assert device_of(trees[0]).type == "meta" and device_of(trees[3]).type == "cpu"

    x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    assert on_device(x, torch.device("cpu")) is x                    # no call where nothing moves
    assert on_device(x, torch.device("meta")).device.type == "meta"
    f = torch.ones(3)
    assert as_cpu_float(f) is f
    for t in (x, torch.arange(3), torch.ones(2, dtype=torch.float16), x.detach().requires_grad_(True)):
        got, want = as_cpu_float(t), t.float().cpu()
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        assert torch.equal(got, want) and got.requires_grad == want.requires_grad


def test_eval_mode_leaves_an_eval_model_alone_and_puts_training_back():
    from components.models.base import eval_mode

    m = image_model().generator                              # in eval mode throughout
    calls = []
    m.train = lambda mode=True: calls.append(mode) or torch.nn.Module.train(m, mode)
    with eval_mode(m):
        assert not m.training
    assert calls == []                                      # no walk over its submodules
    del m.train
    m.train()
    m.net[1].eval()                                         # training, one submodule not
    with eval_mode(m):
        assert not any(sub.training for sub in m.modules())
    assert m.training and m.net[1].training                 # train(True) puts every one back, as before
    m.eval()
    m.net[1].train()                                        # eval on top, one submodule training
    with eval_mode(m):
        assert not any(sub.training for sub in m.modules())
    assert not m.net[1].training                            # restored to the top's mode, as before


def test_image_forwards_without_onednn_give_each_request_its_alone_images():
    """The loop engine with oneDNN off for every forward (min_rows beyond the batch) and on for
    every one: the same images to batch-size rounding (the contract of batching itself)."""
    from components.data.images import to_uint8

    m = image_model()

    async def run(min_rows):
        engine = LoopImageEngine(m, max_batch_size=64, onednn_min_rows=min_rows)
        return await asyncio.gather(*(engine.submit(n, s, lab, t) for n, s, lab, t in IMAGE_REQUESTS))

    off, on = asyncio.run(run(65)), asyncio.run(run(0))
    for (n, seed, labels, temp), a, b in zip(IMAGE_REQUESTS, off, on):
        images, _ = m.sample(n, seed, labels=labels, temperature=temp)
        for result in (a, b):
            diff = (result.images.int() - to_uint8(images).int()).abs()
            assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01


def test_a_config_serving_section_is_checked(tmp_path):
    from components.config import load_config

    cfg = load_config("configs/dcgan-digits.yaml", {"serving.max_batch_size": 16})
    assert cfg.serving.max_batch_size == 16 and cfg.to_dict()["serving"]["max_latency_ms"] == 2.0
    with pytest.raises(GenloopError, match="serving.max_n must be >= 1"):
        load_config("configs/dcgan-digits.yaml", {"serving.max_n": 0})


# tokens and the guard ------------------------------------------------------------------------

def test_tokens_come_from_the_env_and_a_file(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# rotated 2026-11\n{TOKEN_B}\n\n")
    assert load_tokens({"GENLOOP_API_TOKENS": f" {TOKEN_A} ,", "GENLOOP_API_TOKENS_FILE": str(f)}) == [TOKEN_A, TOKEN_B]
    assert load_tokens({}) == []
    with pytest.raises(GenloopError, match="cannot read it"):
        load_tokens({"GENLOOP_API_TOKENS_FILE": str(tmp_path / "missing")})
    with pytest.raises(GenloopError, match="shorter than 16"):
        load_tokens({"GENLOOP_API_TOKENS": "secret"})
    empty = tmp_path / "empty"
    empty.write_text("# the token was deleted\n\n")
    with pytest.raises(GenloopError, match="holds no token"):      # set but empty: not open
        load_tokens({"GENLOOP_API_TOKENS_FILE": str(empty)})
    with pytest.raises(GenloopError, match="holds no token"):
        load_tokens({"GENLOOP_API_TOKENS": " , "})
    with pytest.raises(GenloopError, match="placeholder"):
        load_tokens({"GENLOOP_API_TOKENS": "REPLACE-ME-with-the-output-of-openssl-rand-hex-32"})


async def _app(scope, receive, send):
    """Echoes the body it received (what the guard let through)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 500 if body == b"boom" else 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _call(guard, method, path, **kw):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://t") as client:
            return await client.request(method, path, **kw)
    return asyncio.run(go())


def test_guard_needs_one_of_the_tokens_except_on_probes_and_metrics():
    errors = []
    guard = GenloopGuard(_app, [TOKEN_A, TOKEN_B], on_error=lambda status, ep: errors.append((status, ep)))
    body = b'{"n": 1}'
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN_A},
                    {"Authorization": f"Basic {TOKEN_A}"}, {"Authorization": f"Bearer {TOKEN_A}x"}):
        reply = _call(guard, "POST", "/generate", content=body, headers=headers)
        assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN_A not in reply.text and "bearer token" in reply.json()["error"]
    for token in (TOKEN_A, TOKEN_B):
        reply = _call(guard, "POST", "/generate", content=body, headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200 and reply.content == body          # the body reaches the app whole
    for path in ("/livez", "/readyz", "/metrics"):
        assert _call(guard, "GET", path).status_code == 200
    assert errors == [(401, "/generate")] * 5
    open_guard = GenloopGuard(_app, [])
    assert _call(open_guard, "POST", "/generate", content=body).status_code == 200


def test_guard_limits_the_body_and_the_content_type_and_counts_errors():
    errors = []
    guard = GenloopGuard(_app, [], max_body_bytes=100, on_error=lambda status, ep: errors.append((status, ep)))
    assert _call(guard, "POST", "/generate", content=b"x" * 101).status_code == 413

    async def chunks():                              # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * 30
    reply = _call(guard, "POST", "/generate", content=chunks())
    assert reply.status_code == 413 and "GENLOOP_MAX_BODY_BYTES" in reply.json()["error"]
    assert _call(guard, "POST", "/generate", content=b"x" * 100).status_code == 200
    reply = _call(guard, "POST", "/generate", content=b"n=1", headers={"Content-Type": "text/plain"})
    assert reply.status_code == 415 and "application/json" in reply.json()["error"]
    assert _call(guard, "POST", "/generate", content=b"boom").status_code == 500   # the app's own errors counted
    assert errors == [(413, "/generate"), (413, "/generate"), (415, "/generate"), (500, "/generate")]


def test_metrics_are_prometheus_counters_and_histograms():
    registry = prometheus_client.CollectorRegistry()
    m = Metrics(prometheus_client, registry=registry)
    m.generations.labels(model_tag="m:1", label="7").inc(3)
    m.observe_batch("image", 12)
    m.error(413, "/generate")
    m.error(502, "/generate")
    text = prometheus_client.generate_latest(registry).decode()
    assert 'genloop_generations_total{label="7",model_tag="m:1"} 3.0' in text
    assert 'genloop_batch_rows_bucket{kind="image",le="16.0"} 1.0' in text
    assert 'genloop_request_errors_total{endpoint="/generate",reason="body_too_large"} 1.0' in text
    assert reason_of(502) == "server_error" and reason_of(401) == "unauthorized"


# engines -------------------------------------------------------------------------------------

def image_model(family="dcgan"):
    torch.manual_seed(0)
    args = {"image_size": 8, "channels": 1, "num_classes": 10, "z_dim": 16}
    m = build_model(family, {**args, "width": 32} if family == "dcgan" else args)
    for module in m.modules().values():
        module.eval()
    return m


IMAGE_REQUESTS = [(1, 1, None, 1.0), (4, 2, 3, 0.7), (2, 3, torch.tensor([1, 9]), 1.0), (3, 4, None, 1.4),
                  (1, 5, 7, 0.2), (6, 6, None, 1.0)]


@pytest.mark.parametrize("family", ["dcgan", "vae"])
def test_image_engine_batches_requests_and_each_gets_its_alone_images(family):
    from components.data.images import to_uint8
    from components.monitoring.features import image_stats

    m = image_model(family)
    rows = []
    engine = ImageEngine(m, max_batch_size=64, max_latency_ms=200, observe=lambda kind, n: rows.append(n))
    jobs = [engine.submit(n, seed, labels, temp) for n, seed, labels, temp in IMAGE_REQUESTS]
    results = [j.future.result(30) for j in jobs]
    engine.close()
    assert rows == [17]                                   # one forward for all six requests
    for (n, seed, labels, temp), result in zip(IMAGE_REQUESTS, results):
        images, indices = m.sample(n, seed, labels=labels, temperature=temp)
        assert result.indices == indices.tolist()
        diff = (result.images.int() - to_uint8(images).int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01     # batch-size rounding at most
        alone = image_stats(result.images)                  # the serving-log columns, from the batch
        assert [r.keys() for r in result.stats] == [r.keys() for r in alone]
        assert all(r[k] == pytest.approx(a[k], abs=1e-6) for r, a in zip(result.stats, alone) for k in r)


def test_loop_image_engine_batches_what_arrives_in_one_pass_and_each_gets_its_alone_images():
    """The event-loop engine: requests submitted before the loop's next pass share one
    forward (max_batch_size images at most); each gets what the model samples alone."""
    from components.data.images import to_uint8

    m = image_model()
    rows = []

    async def main():
        engine = LoopImageEngine(m, max_batch_size=64, observe=lambda kind, n: rows.append(n))
        together = await asyncio.gather(*(engine.submit(n, s, lab, t) for n, s, lab, t in IMAGE_REQUESTS))
        alone = await engine.submit(2, 77)                      # a later pass: a forward of its own
        small = LoopImageEngine(m, max_batch_size=5, observe=lambda kind, n: rows.append(n))
        await asyncio.gather(*(small.submit(2, s) for s in range(5)), small.submit(9, 9))
        return together, alone

    together, alone = asyncio.run(main())
    assert rows[:2] == [17, 2]                                  # six requests, one forward; then one
    assert rows[2:] == [4, 4, 2, 9] and sum(rows[2:]) == 19     # max_batch_size 5; 9 > 5 alone
    for (n, seed, labels, temp), result in zip(IMAGE_REQUESTS + [(2, 77, None, 1.0)], together + [alone]):
        images, indices = m.sample(n, seed, labels=labels, temperature=temp)
        assert result.indices == indices.tolist()
        diff = (result.images.int() - to_uint8(images).int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01     # batch-size rounding at most


def test_loop_image_engine_fails_a_bad_batch_skips_the_cancelled_and_refuses_when_closed():
    m = image_model()
    rows = []

    async def main():
        engine = LoopImageEngine(m, max_batch_size=8, observe=lambda kind, n: rows.append(n))
        bad = engine.submit(1, 0, labels=torch.tensor([99]))   # an index out of range fails in the model
        with pytest.raises(IndexError):
            await bad
        gone = engine.submit(3, 1)
        gone.cancel()                                           # its request gave up before the pass
        kept = await engine.submit(2, 2)
        engine.close()
        with pytest.raises(EngineClosed):
            engine.submit(1, 0)
        return kept

    assert asyncio.run(main()).images.shape == (2, 1, 8, 8)
    assert rows == [2]                                          # the cancelled request was not rendered


def test_the_serving_config_picks_the_engine():
    m, t = image_model(), text_model()
    loop = make_engine(m, ServingConfig())
    thread = make_engine(m, ServingConfig(image_engine="thread", max_latency_ms=7, onednn_min_rows=16))
    text = make_engine(t, ServingConfig(torch_threads=3, max_batch_size=5))
    try:
        assert type(loop) is LoopImageEngine and type(thread) is ImageEngine and thread.max_latency == 0.007
        assert type(text) is TextEngine and (text.threads, text.max_batch_size) == (3, 5)
        assert "event loop" in describe(loop, ServingConfig())
        assert "max_latency_ms 7" in describe(thread, ServingConfig(max_latency_ms=7))
        assert "continuous batching" in describe(text, ServingConfig(torch_threads=3))
        # the 8x8 model's convolutions are all lowered: nothing left for oneDNN, nothing measured
        assert loop.onednn_min_rows == 0 and "oneDNN always" in describe(loop, ServingConfig())
        assert thread.onednn_min_rows == 16
        assert "oneDNN for forwards of 16+ rows (serving.onednn_min_rows)" in describe(
            thread, ServingConfig(onednn_min_rows=16))
    finally:
        thread.close()
        text.close()


def test_image_engine_waits_for_company_unless_a_lone_client_asks_again():
    m = image_model()
    engine = ImageEngine(m, max_batch_size=64, max_latency_ms=5)
    engine.close()                                   # its thread gone: the queue is ours to set
    engine._pending = [object()]
    assert engine.waits()                            # nothing known yet: wait for company
    engine.last_jobs = 1
    assert not engine.waits()                        # alone last time, alone now: go
    engine._pending = [object(), object()]
    assert engine.waits()                            # two asking: a batch is forming
    engine.last_jobs, engine._pending = 3, [object()]
    assert engine.waits()                            # the last forward had company: wait for it
    lone = ImageEngine(m, max_batch_size=64, max_latency_ms=1000)
    lone.submit(1, 0).future.result(30)              # the first one waits its second for company
    started = time.monotonic()
    for seed in range(1, 4):
        lone.submit(1, seed).future.result(30)
    assert lone.last_jobs == 1
    assert time.monotonic() - started < 2.0          # waiting would take at least 3 s
    lone.close()


def test_image_engine_respects_max_batch_size_and_survives_a_failing_batch():
    m = image_model()
    rows = []
    engine = ImageEngine(m, max_batch_size=5, max_latency_ms=200, observe=lambda kind, n: rows.append(n))
    jobs = [engine.submit(2, s) for s in range(5)] + [engine.submit(9, 9)]   # 9 > 5: a batch of its own
    for j in jobs:
        j.future.result(30)
    assert max(rows) == 9 and all(r <= 5 for r in rows if r != 9) and sum(rows) == 19
    bad = engine.submit(1, 0, labels=torch.tensor([99]))       # an index out of range fails in the model
    with pytest.raises(IndexError):                              # the embedding lookup's error
        bad.future.result(30)
    assert engine.submit(1, 0).future.result(30).images.shape == (1, 1, 8, 8)   # the engine goes on
    engine.close()
    with pytest.raises(EngineClosed):
        engine.submit(1, 0)


def text_model():
    from tests.models.test_incremental_decoding import model

    m = model("charlm")
    m.net.eval()
    return m


TEXT_REQUESTS = [dict(n=2, seed=1, prompt="", max_new_tokens=30), dict(n=1, seed=2, prompt="def f", max_new_tokens=9),
                 dict(n=3, seed=3, prompt="x" * 20, max_new_tokens=20, temperature=0.5, top_k=10),
                 dict(n=1, seed=4, prompt="import os", max_new_tokens=25, top_p=0.9)]


@pytest.mark.parametrize("threads", [None, 2])
def test_text_engine_decodes_requests_together_and_each_gets_its_alone_text(threads, process_torch_threads):
    m = text_model()
    rows = []                              # threads=2: steps switch between one and two threads
    engine = TextEngine(m, max_batch_size=64, observe=lambda kind, n: rows.append(n), threads=threads)
    jobs = [engine.submit(**r) for r in TEXT_REQUESTS]
    texts = [j.future.result(60) for j in jobs]
    engine.close()
    for request, got in zip(TEXT_REQUESTS, texts):
        assert got == m.sample(request["n"], request["seed"], **{k: v for k, v in request.items()
                                                                   if k not in ("n", "seed")})
    assert max(rows) > 3                                  # rows of several requests in one step


def test_text_engine_decodes_few_rows_on_one_thread_and_many_on_its_threads(process_torch_threads):
    m = text_model()
    seen = []
    engine = TextEngine(m, max_batch_size=64, threads=2,
                        observe=lambda kind, rows: seen.append((rows, torch.get_num_threads())))
    engine.submit(n=1, seed=0, max_new_tokens=3).future.result(60)
    engine.submit(n=TextEngine.SMALL_ROWS, seed=1, max_new_tokens=3).future.result(60)
    engine.close()
    assert seen[0] == (1, 1) and seen[-1] == (TextEngine.SMALL_ROWS, 2)


def test_text_engine_caps_rows_and_streams_and_cancels():
    m = text_model()
    rows, streamed = [], []
    engine = TextEngine(m, max_batch_size=4, observe=lambda kind, n: rows.append(n))

    def listen(job, tokens):
        streamed.append(tokens)
        if len(streamed) == 5:
            job.cancel()

    jobs = [engine.submit(n=3, seed=s, max_new_tokens=10) for s in range(3)]
    cancelled = engine.submit(n=1, seed=9, max_new_tokens=500, on_tokens=listen)
    for j in jobs:
        j.future.result(60)
    partial = cancelled.future.result(60)
    engine.close()
    assert max(rows) <= 4                                 # 3 + 1 rows at most; 3 + 3 never
    assert cancelled.produced == 5 and len(partial[0]) <= 5 and len(streamed) == 5


def test_text_engine_refuses_a_model_in_training_mode():
    from tests.models.test_incremental_decoding import model

    with pytest.raises(ValueError, match="eval mode"):
        TextEngine(model("charlm"))


def test_a_request_that_gave_up_does_not_stop_the_engines():
    """A request that timed out cancels its future; the engine skips it (or finishes it
    without a result) and goes on serving."""
    m = image_model()
    engine = ImageEngine(m, max_batch_size=8, max_latency_ms=300)
    gone = engine.submit(1, 0)
    assert gone.future.cancel()                    # still pending: cancelled before the forward
    assert engine.submit(2, 1).future.result(30).images.shape[0] == 2
    engine.close()
    text = TextEngine(text_model(), max_batch_size=8)
    left = text.submit(n=1, seed=0, max_new_tokens=2000)
    left.cancel()                                  # a streaming client went away
    left.future.result(60)
    assert left.produced < 2000
    assert len(text.submit(n=1, seed=1, max_new_tokens=5).future.result(60)[0]) <= 5
    text.close()


def test_guard_bounds_metric_labels_and_refuses_an_empty_body():
    errors = []
    guard = GenloopGuard(_app, [TOKEN_A], on_error=lambda status, ep: errors.append((status, ep)))
    _call(guard, "POST", "/generate-anything-at-all")
    reply = _call(guard, "POST", "/generate", content=b"  ", headers={"Authorization": f"Bearer {TOKEN_A}"})
    assert reply.status_code == 400 and "empty request body" in reply.json()["error"]
    assert errors == [(401, "other"), (400, "/generate")]


# the served model's slot: load, swap, submit (what deploy/service.py wires to BentoML) ------

class _Stored:
    def __init__(self, model, tag):
        self.model, self.tag = model, tag


def _slot_loader(limits, seen):
    """A slot's load: the model's engine under `limits`; records the thread and torch count
    each load ran on."""
    import threading

    from components.serving.engine import own_torch_threads
    from components.serving.slot import Served

    def load(stored):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        own_torch_threads(2)                   # parallel work of its own, as a checkpoint load may do
        torch.ones(1 << 20).add_(1)
        return Served(stored.model, make_engine(stored.model, limits), [], None, {"model_tag": stored.tag})

    return load


@pytest.mark.parametrize("limits, after", [(ServingConfig(torch_threads=2), 2),          # images on the loop
                                           (ServingConfig(torch_threads=2, image_engine="thread"), 1)])
def test_the_slot_loads_on_one_thread_then_gives_the_caller_its_engines_count(limits, after, process_torch_threads):
    import threading

    from components.serving.slot import ModelSlot

    torch.set_num_threads(3)                         # what the process had before the server
    seen = []
    slot = ModelSlot(_slot_loader(limits, seen))
    served = slot.start(_Stored(image_model(), "m:1"))
    try:
        assert seen == [(threading.get_ident(), 1)]  # loaded here, on one torch thread
        assert torch.get_num_threads() == after and slot.current is served
    finally:
        served.engine.close()


def test_a_swap_loads_on_a_passing_thread_and_the_old_engine_finishes_what_it_took(process_torch_threads):
    import threading

    from components.serving.slot import ModelSlot

    seen, limits = [], ServingConfig(torch_threads=2, max_batch_size=4)
    slot = ModelSlot(_slot_loader(limits, seen))
    old = slot.start(_Stored(text_model(), "m:1"))
    hold, waited = threading.Event(), []       # the old engine's job waits in its first step until the swap
    taken = old.engine.submit(1, 5, "", 40, on_tokens=lambda job, tokens: waited.append(hold.wait(5)))
    pending = old.engine.submit(4, 6, "", 5)     # 1 + 4 rows > max_batch_size 4: waits for the first
    said = []

    def swapped(served):
        said.append((served, taken.future.done()))
        hold.set()

    new = slot.swap(_Stored(text_model(), "m:2"), swapped)
    try:
        loader = seen[1][0]
        assert loader != threading.get_ident() and loader not in {t.ident for t in threading.enumerate()}
        assert torch.get_num_threads() == 1          # the caller's count untouched by the load's 2
        assert slot.current is new and new.provenance["model_tag"] == "m:2"
        assert said == [(new, False)] and all(waited)   # said when swapped, before the old engine drained
        assert len(taken.future.result(30)) == 1 and taken.produced == 40   # drained, not dropped
        assert len(pending.future.result(30)) == 4 and pending.produced == 5
        with pytest.raises(EngineClosed):
            old.engine.submit(1, 6, "", 5)
        later = new.engine.submit(1, 7, "", 5)
        assert len(later.future.result(30)) == 1 and later.produced == 5
    finally:
        new.engine.close()


def test_a_failed_swap_keeps_the_model_serving_and_submit_follows_a_swap(process_torch_threads):
    from components.serving.slot import ModelSlot, SwapInProgress

    load = _slot_loader(ServingConfig(), [])
    slot = ModelSlot(lambda stored: load(stored) if stored is not None else 1 / 0)
    first = slot.start(_Stored(image_model(), "m:1"))
    with pytest.raises(ZeroDivisionError):
        slot.swap(None)
    assert slot.current is first
    offered = []

    def submit(served):            # a swap lands between reading `current` and submitting
        offered.append(served.provenance["model_tag"])
        if len(offered) == 1:
            slot.swap(_Stored(image_model(), "m:2"))
            raise EngineClosed("swapped")
        return "job"

    served, job = slot.submit(submit)
    assert (served.provenance["model_tag"], job, offered) == ("m:2", "job", ["m:1", "m:2"])
    with pytest.raises(RuntimeError, match="cannot say so"):      # the callback fails after the swap
        slot.swap(_Stored(image_model(), "m:3"), lambda new: (_ for _ in ()).throw(RuntimeError("cannot say so")))
    assert slot.current.provenance["model_tag"] == "m:3"
    with pytest.raises(EngineClosed):                              # ... and the old engine still closed
        served.engine.submit(1, 0)
    tries = []

    def closed(served):
        tries.append(served)
        raise EngineClosed("closed")

    with pytest.raises(SwapInProgress, match="being swapped"):
        slot.submit(closed)
    assert len(tries) == 3
