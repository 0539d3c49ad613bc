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
    assert not decoder.jobs and not decoder.groups and not (decoder.pool and decoder.pool.jobs)


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


@pytest.mark.parametrize("family", ["charlm", "lstm"])
def test_packed_rows_of_different_lengths_step_as_they_would_alone(family):
    """Rows holding 3, 7 and 12 tokens (and 1 row at 15, the last slot of the window) take
    their next tokens in one packed forward: each row's logits equal `decode` on that row
    alone to 1e-5, two steps running, and after `keep` drops rows the others go on unchanged."""
    m = trained_like(family, dtype=torch.float32)
    packing = m.decoding().packing
    seqs = [torch.randint(0, 256, (1, length + 2), generator=torch.Generator().manual_seed(length))
            for length in (3, 7, 12, 14)]
    with torch.no_grad():
        alone_states = [m.net.decode(s[:, :-2])[1] for s in seqs]
        packed = packing.join(alone_states[:2])
        packed = packing.join([packed] + alone_states[2:])                 # a packed state joins too
        lengths = torch.tensor([s.shape[1] - 2 for s in seqs])
        for col in (-2, -1):
            got, packed = packing.step(torch.cat([s[:, col:col + 1 or None] for s in seqs]), packed, lengths)
            for i, s in enumerate(seqs):
                want, alone_states[i] = m.net.decode(s[:, col:col + 1 or None], alone_states[i])
                torch.testing.assert_close(got[i:i + 1], want, atol=1e-5, rtol=0, msg=f"row {i} at {col}")
            assert got.abs().max() > 2.0                                   # not trivially small logits
            lengths = lengths + 1
        assert int(lengths[-1]) == B                                       # the last row filled the window
        kept = packing.keep(packed, torch.tensor([0, 2]))
        nxt = torch.randint(0, 256, (2, 1), generator=torch.Generator().manual_seed(9))
        got, _ = packing.step(nxt, kept, lengths[[0, 2]])
        for row, i in enumerate((0, 2)):
            want, _ = m.net.decode(nxt[row:row + 1], alone_states[i])
            torch.testing.assert_close(got[row:row + 1], want, atol=1e-5, rtol=0)
        # rows all at one position (requests admitted together) take the transformer's
        # unmasked path: the same logits as alone
        same = torch.randint(0, 256, (3, 6), generator=torch.Generator().manual_seed(5))
        _, state = m.net.decode(same[:, :5])
        got, _ = packing.step(same[:, 5:], packing.join([state]), torch.full((3,), 5))
        for i in range(3):
            want, _ = m.net.decode(same[i:i + 1, 5:], m.net.decode(same[i:i + 1, :5])[1])
            torch.testing.assert_close(got[i:i + 1], want, atol=1e-5, rtol=0)


def test_the_transformer_refuses_a_packed_step_past_its_window():
    m = trained_like("charlm", dtype=torch.float32)
    packing = m.decoding().packing
    with torch.no_grad():
        _, state = m.net.decode(torch.zeros(1, B, dtype=torch.long))
        with pytest.raises(ValueError, match="block_size; decode its last 16 afresh"):
            packing.step(torch.zeros(1, 1, dtype=torch.long), packing.join([state]), torch.tensor([B]))


@pytest.mark.parametrize("family", ["charlm", "lstm"])
def test_jobs_that_joined_at_different_steps_share_one_forward(family):
    """Continuous batching with a Packing: jobs admitted at steps 0, 2 and 5 (each a prefill
    of its own) then decode in one packed forward a step, not a forward per arrival; when a
    job ends its rows leave the packed state. Their texts are their alone texts (float64)."""
    m = trained_like(family)
    d = m.decoding()
    calls = []

    def counting(idx, state, lengths):
        calls.append(len(idx))
        return d.packing.step(idx, state, lengths)

    decoder = BatchDecoder(type(d)(d.block_size, d.device, d.logits_fn, d.step_fn,
                                   type(d.packing)(d.packing.join, counting, d.packing.keep)))
    requests = [dict(n=2, seed=1, prompt="ab", max_new_tokens=9), dict(n=1, seed=2, prompt="x", max_new_tokens=12),
                dict(n=3, seed=3, prompt="def", max_new_tokens=10)]
    jobs = [TextJob(**r) for r in requests]
    pooled_rows = []
    for step in range(12):
        decoder.add({0: jobs[:1], 2: jobs[1:2], 5: jobs[2:]}.get(step, []))
        calls.clear()
        decoder.step()
        assert len(calls) <= 1                                   # at most one packed forward a step
        pooled_rows.append(calls[0] if calls else 0)
    # step 0: job 0's prefill only (its first token); 1-2: its 2 rows; 3-5: + job 1's; 6-8:
    # + job 2's 3; job 0 ends with its 9th token in step 8, so 9-11: jobs 1 and 2
    assert pooled_rows == [0, 2, 2, 3, 3, 3, 6, 6, 6, 4, 4, 4]
    while decoder.jobs:
        decoder.step()
    assert [j.texts() for j in jobs] == [alone(m, r) for r in requests]
    assert not decoder.pool.jobs and decoder.pool.state is None


def test_the_draw_follows_the_probabilities_and_never_picks_a_filtered_token():
    """The exponential race draws token i with probability p_i: 40,000 draws of one
    distribution land within 0.01 of it; with top_k the tokens filtered out never come up."""
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05] + [1e-9] * 4]))
    job = TextJob(n=40_000, seed=0)
    [(_, tokens, values)] = BatchDecoder._sample([(job, logits.repeat(40_000, 1))])
    share = torch.bincount(tokens.view(-1), minlength=8).double() / 40_000
    assert (share[:4] - torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)).abs().max() < 0.01
    assert values == tokens.view(-1).tolist()
    top2 = TextJob(n=20_000, seed=1, top_k=2)
    [(_, tokens, _)] = BatchDecoder._sample([(top2, logits.repeat(20_000, 1))])
    assert set(tokens.view(-1).tolist()) == {0, 1}


def test_top_p_filtered_tokens_never_win_and_nan_logits_are_refused():
    """top_p 0.7 over (0.5, 0.3, 0.15, 0.05, ...) keeps tokens 0 and 1 only; logits with a NaN
    are refused with the reason instead of drawing token 0."""
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05] + [1e-9] * 4]))
    job = TextJob(n=20_000, seed=2, top_p=0.7, temperature=1.0)
    [(_, tokens, _)] = BatchDecoder._sample([(job, logits.repeat(20_000, 1))])
    assert set(tokens.view(-1).tolist()) == {0, 1}
    bad = logits.clone()
    bad[0, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite logits"):
        BatchDecoder._sample([(TextJob(n=1, seed=0), bad)])


def test_a_packed_step_leaves_the_prefill_state_alone():
    """The transformer writes the new keys and values into the packed state in place: the
    state `decode` returned (joined, so copied) must not change."""
    m = trained_like("charlm", dtype=torch.float32)
    packing = m.decoding().packing
    with torch.no_grad():
        _, state = m.net.decode(torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(3)))
        before = [(k.clone(), v.clone()) for k, v in state]
        packing.step(torch.zeros(2, 1, dtype=torch.long), packing.join([state]), torch.tensor([5, 5]))
        packing.step(torch.zeros(2, 1, dtype=torch.long), packing.join([state]), torch.tensor([5, 5]))
    for (k, v), (k0, v0) in zip(state, before):
        assert torch.equal(k, k0) and torch.equal(v, v0)


@pytest.mark.parametrize("family", ["charlm", "lstm"])
def test_a_job_cancelled_between_others_leaves_their_rows_right(family):
    """Jobs of 2, 3 and 2 rows in the packed state; the middle one cancelled at step 4: its
    rows leave the state and the jobs on either side still get their alone texts (float64).
    A prompt that fills the window goes straight to the windowed path, never into the pool."""
    m = trained_like(family)
    requests = [dict(n=2, seed=11, prompt="ab", max_new_tokens=10), dict(n=3, seed=12, prompt="abc", max_new_tokens=10),
                dict(n=2, seed=13, prompt="a", max_new_tokens=10), dict(n=1, seed=14, prompt="y" * B, max_new_tokens=4)]
    jobs = [TextJob(**r) for r in requests]
    d = m.decoding()
    joined = []

    def join(states):
        joined.append(len(states))
        return d.packing.join(states)

    decoder = BatchDecoder(type(d)(d.block_size, d.device, d.logits_fn, d.step_fn,
                                   type(d.packing)(join, d.packing.step, d.packing.keep)))
    for step in range(4):
        decoder.add({0: jobs[:1], 1: jobs[1:2], 2: jobs[2:]}.get(step, []))
        decoder.step()
    assert decoder.pool.jobs == jobs[:3] and len(joined) == 3          # the full-window prompt never joined
    jobs[1].cancel()
    decoder.step()
    assert decoder.pool.jobs == [jobs[0], jobs[2]] and jobs[1].produced == 3
    while decoder.jobs:
        decoder.step()
    assert [jobs[i].texts() for i in (0, 2, 3)] == [alone(m, requests[i]) for i in (0, 2, 3)]
