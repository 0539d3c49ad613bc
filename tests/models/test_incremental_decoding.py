"""Incremental decoding (the transformer's KV cache, the LSTM's carried state) against the
recompute path (the whole window through the network for every token)."""
import pytest
import torch

from components.models import build_model
from components.models.textgen import IncrementalLogits, sample_text

B = 16                       # block_size of the test models: the sequences below cross it
ARGS = {"charlm": {"block_size": B, "d_model": 32, "n_layers": 2, "n_heads": 4, "dropout": 0.1},
        "lstm": {"block_size": B, "d_model": 16, "hidden": 32, "n_layers": 2, "dropout": 0.1}}
FAMILIES = sorted(ARGS)
SCALE = {"charlm": 0.25, "lstm": 0.7}     # std of the weight matrices: logits up to about 6


def model(family: str, sharper: float = 1.0, dtype=torch.float32):
    """A model whose weights are spread out (the matrices' std SCALE x `sharper`): logits a
    few units wide, like a trained model's, and positions and context that matter (at the
    default init the logits are within +-1)."""
    scale = SCALE[family] * sharper
    torch.manual_seed(0)
    m = build_model(family, ARGS[family])
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.net.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.dim() == 2:                                       # matrices, embeddings
                p.copy_(noise * scale)
            else:                                                  # LayerNorm gains near 1, biases
                p.copy_(1 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
    m.net.to(dtype)
    return m


def recompute(m, idx: torch.Tensor) -> torch.Tensor:
    """What the sampler's recompute path sees: the last window's last logits."""
    return m.net(idx[:, -B:])[:, -1]


def tokens(n: int, length: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, length), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("family", FAMILIES)
def test_incremental_logits_equal_the_recompute_at_every_step(family):
    """Every step up to 3 windows long (the cache, then the slid window) to 1e-5, batch of 3."""
    m = model(family)
    m.net.eval()
    seq = tokens(3, 3 * B)
    step = IncrementalLogits(m.net.decode, B)
    with torch.no_grad():
        for t in range(1, seq.shape[1] + 1):
            ref = recompute(m, seq[:, :t])
            assert ref.abs().max() > 2.0                          # not trivially small logits
            torch.testing.assert_close(step(seq[:, :t]), ref, atol=1e-5, rtol=0, msg=f"step {t}")


@pytest.mark.parametrize("family", FAMILIES)
def test_incremental_logits_are_the_recompute_up_to_rounding(family):
    """In float64 with sharper weights (logits up to ~15) the two paths agree to 1e-9: what
    differs in float32 is rounding, not arithmetic."""
    m = model(family, sharper=2.0, dtype=torch.float64)
    m.net.eval()
    seq = tokens(2, 2 * B + 3)
    step = IncrementalLogits(m.net.decode, B)
    with torch.no_grad():
        for t in range(1, seq.shape[1] + 1):
            torch.testing.assert_close(step(seq[:, :t]), recompute(m, seq[:, :t]), atol=1e-9, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_cached_step_sees_the_context_only_through_the_cache(family):
    """Within the window each step feeds the network only the newest token: without the cache
    (or with the cache thrown away) its logits are far from the recompute's, so the test
    above would fail if the cache were ignored."""
    m = model(family)
    m.net.eval()
    seq = tokens(2, B)
    fed: list[int] = []

    def forgetful(idx, state):
        fed.append(idx.shape[1])
        return m.net.decode(idx, None)                             # drops the cache

    with torch.no_grad():
        for cached in (True, False):
            step = IncrementalLogits(m.net.decode if cached else forgetful, B)
            worst = max((step(seq[:, :t]) - recompute(m, seq[:, :t])).abs().max().item()
                        for t in range(1, B + 1))
            assert (worst < 1e-5) if cached else (worst > 1.0), (cached, worst)
    assert fed == [1] * B                                          # one token a step, the first too


def test_the_transformer_cache_takes_several_tokens_at_a_time():
    """A chunk after a cache (the shifted causal mask), positions continuing from the cache."""
    m = model("charlm")
    m.net.eval()
    seq = tokens(2, B)
    with torch.no_grad():
        _, cache = m.net.decode(seq[:, :5])
        assert [k.shape[2] for k, _ in cache] == [5, 5]
        logits, cache = m.net.decode(seq[:, 5:12], cache)
        assert [k.shape[2] for k, _ in cache] == [12, 12]
        torch.testing.assert_close(logits, m.net(seq[:, :12])[:, -1], atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="exceed block_size 16"):
            m.net.decode(seq[:, :5], cache)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prompt", ["", "def f(x):", "a prompt longer than the window"])
@pytest.mark.parametrize("n", [1, 5])
def test_sampled_text_is_the_recompute_paths(family, prompt, n):
    """model.sample (incremental) and the recompute path draw the same tokens for a seed,
    through and past block_size, with the filters on; the model left in training mode."""
    m = model(family)
    m.net.train()
    for controls in ({}, {"temperature": 0.8, "top_k": 20, "top_p": 0.9}):
        got = m.sample(n, seed=7, prompt=prompt, max_new_tokens=3 * B, **controls)
        assert m.net.training                                       # its mode put back
        want = sample_text(m.logits, B, "cpu", n, 7, prompt, 3 * B, **controls)
        assert got == want
        assert len(got) == n and len(set(got)) == n                 # n different samples


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_decodes_one_token_a_step_until_the_window_slides(family, monkeypatch):
    """model.sample goes through `decode` by default: the prompt once, then one token a step
    while the text fits in block_size, then the whole cropped window a step."""
    m = model(family)
    fed: list[int] = []
    decode = m.net.decode

    def spy(idx, state=None):
        fed.append(idx.shape[1])
        return decode(idx, state)

    monkeypatch.setattr(m.net, "decode", spy)
    prompt, new = "abcd", 2 * B
    m.sample(2, seed=0, prompt=prompt, max_new_tokens=new)
    p = len(prompt)
    assert fed == [p] + [1 if p + i <= B else B for i in range(1, new)]
    assert fed.count(1) == B - p


def test_a_text_network_without_decode_cannot_be_built():
    from components.models.textgen import TextNet

    class NoDecode(TextNet):
        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return idx

    with pytest.raises(TypeError, match="decode"):
        NoDecode()
