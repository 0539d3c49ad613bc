"""Decoding many text requests at once (textgen.BatchDecoder, the server's text engine):
each request gets the text it gets alone with its seed, whatever else is decoded beside it
and whenever it joined."""
import pytest
import torch

from components.models import build_model
from components.models.textgen import BatchDecoder, TextJob
from tests.models.test_incremental_decoding import B, FAMILIES, model

# different n, prompt lengths (empty, short, longer than the window B=16), controls and lengths
# (some cross the window, so groups with a KV cache / carried state and windows decoded afresh
# are mixed in one step)
REQUESTS = [dict(n=3, seed=1, prompt="", max_new_tokens=40),
            dict(n=1, seed=2, prompt="def f(x):", max_new_tokens=25, temperature=0.7),
            dict(n=2, seed=3, prompt="x" * 30, max_new_tokens=12, top_k=5),
            dict(n=4, seed=4, prompt="def f(x):", max_new_tokens=5, top_p=0.9),
            dict(n=2, seed=5, prompt="import os\n", max_new_tokens=33, temperature=1.3, top_k=20, top_p=0.8)]


def alone(m, request) -> list[str]:
    return m.sample(request["n"], request["seed"], **{k: v for k, v in request.items() if k not in ("n", "seed")})


def run(decoder: BatchDecoder, arrivals: dict[int, list[TextJob]]) -> int:
    """Step until every job ended, adding the jobs of `arrivals` before step k; returns steps."""
    steps = 0
    while decoder.jobs or any(k >= steps for k in arrivals):
        decoder.add(arrivals.get(steps, []))
        decoder.step()
        steps += 1
    return steps


def trained_like(family: str, dtype=torch.float64):
    if family == "ngram":
        m = build_model("ngram", {"block_size": 4})
        m.fit(torch.randint(0, 64, (5000,), generator=torch.Generator().manual_seed(0)))
        return m
    m = model(family, dtype=dtype)
    m.net.eval()
    return m


@pytest.mark.parametrize("family", FAMILIES + ["ngram"])
def test_each_request_gets_its_alone_text_in_a_mixed_batch(family):
    """Jobs joining at steps 0, 0, 3, 3 and 9 (continuous batching), float64 weights so the
    batch's rounding cannot move a draw: every job's text is its alone text."""
    m = trained_like(family)
    jobs = [TextJob(**r) for r in REQUESTS]
    decoder = BatchDecoder(m.decoding())
    run(decoder, {0: jobs[:2], 3: jobs[2:4], 9: jobs[4:]})
    for job, request in zip(jobs, REQUESTS):
        assert job.texts() == alone(m, request), request
        assert job.produced == request["max_new_tokens"]
    assert not decoder.jobs and not decoder.groups


def test_one_batched_forward_a_step_past_the_window():
    """Past block_size every job's window has B tokens: one forward for all of them."""
    m = trained_like("charlm")
    calls = []
    d = m.decoding()
    step_fn = d.step_fn

    def counting(idx, state):
        calls.append((idx.shape, state is None))
        return step_fn(idx, state)

    decoder = BatchDecoder(type(d)(d.block_size, d.device, d.logits_fn, counting))
    jobs = [TextJob(n=2, seed=s, prompt="ab" * s, max_new_tokens=30) for s in range(1, 4)]
    decoder.add(jobs)
    for _ in range(30):
        calls.clear()
        decoder.step()
    assert calls == [((6, B), True)]                     # the last step: all 6 rows, one window


@pytest.mark.parametrize("family", ["charlm", "lstm"])
def test_float32_batched_text_equals_alone(family):
    """At float32 the logits in a batch differ from alone by rounding only: the text is the same."""
    m = trained_like(family, dtype=torch.float32)
    jobs = [TextJob(**r) for r in REQUESTS]
    run(BatchDecoder(m.decoding()), {0: jobs})
    assert [j.texts() for j in jobs] == [alone(m, r) for r in REQUESTS]


def test_cancel_drops_a_job_and_leaves_the_others_alone():
    m = trained_like("charlm")
    seen: list[list[int]] = []
    keep = TextJob(**REQUESTS[0], on_tokens=lambda job, tokens: seen.append(tokens))
    drop = TextJob(**REQUESTS[1])
    decoder = BatchDecoder(m.decoding())
    decoder.add([keep, drop])
    ended = []
    for step in range(40):
        if step == 4:
            drop.cancel()
        ended += decoder.step()
    assert ended == [drop, keep] and drop.produced == 4 and not decoder.jobs
    assert keep.texts() == alone(m, REQUESTS[0])
    # the tokens streamed step by step are the text's bytes
    assert len(seen) == 40 and all(len(t) == 3 for t in seen)
    assert [bytes(row).decode("utf-8", "replace") for row in zip(*seen)] == keep.texts()


def test_decoding_refuses_a_network_in_training_mode():
    m = model("lstm")
    with pytest.raises(ValueError, match="eval mode"):
        m.decoding()
