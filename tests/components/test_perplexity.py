import math

import pytest
import torch

from components.evaluation.perplexity import corpus_perplexity


def test_uniform_model_has_perplexity_of_vocabulary_size():
    tokens = torch.randint(0, 128, (1000,))
    result = corpus_perplexity(lambda x: torch.zeros(*x.shape, 256), tokens, window=50)
    assert result["perplexity"] == pytest.approx(256, rel=1e-6)
    assert result["bits_per_char"] == pytest.approx(8.0, rel=1e-6)   # ASCII: a byte per char
    assert result["tokens"] == 999 and result["windows"] == 20         # 19 full windows + the tail
    capped = corpus_perplexity(lambda x: torch.zeros(*x.shape, 256), tokens, window=50, max_windows=5)
    assert capped["tokens"] == 250 and capped["windows"] == 5
    roomy = corpus_perplexity(lambda x: torch.zeros(*x.shape, 256), tokens, window=50, max_windows=400)
    assert roomy["tokens"] == 999 and roomy["windows"] == 20                 # fits: the tail is scored


def test_perplexity_matches_torchmetrics():
    from torchmetrics.text import Perplexity

    torch.manual_seed(0)
    table = torch.randn(256, 256)
    tokens = torch.randint(0, 256, (401,))
    ours = corpus_perplexity(lambda x: table[x], tokens, window=100)["perplexity"]
    x, y = tokens[:-1].view(4, 100), tokens[1:].view(4, 100)
    theirs = Perplexity()(table[x], y).item()
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_bits_per_char_counts_utf8_characters():
    text = "a" + "é" * 200                 # the scored bytes: two per character
    tokens = torch.tensor(list(text.encode()))
    result = corpus_perplexity(lambda x: torch.zeros(*x.shape, 256), tokens, window=99)
    assert result["tokens"] == 400
    assert result["bits_per_char"] == pytest.approx(16.0, rel=1e-6)
    assert math.isfinite(result["perplexity"])


def test_strided_windows_score_every_token_once_with_more_context():
    from components.errors import GenloopError

    torch.manual_seed(0)
    table = torch.randn(256, 256)
    tokens = torch.randint(0, 256, (1013,))         # not a whole number of windows: a tail
    disjoint = corpus_perplexity(lambda x: table[x], tokens, window=100)
    strided = corpus_perplexity(lambda x: table[x], tokens, window=100, stride=25)
    # a bigram "model" ignores context: same tokens scored, same perplexity
    assert strided["tokens"] == disjoint["tokens"] == 1012
    assert strided["perplexity"] == pytest.approx(disjoint["perplexity"], rel=1e-9)
    with pytest.raises(GenloopError, match="stride"):
        corpus_perplexity(lambda x: table[x], tokens, window=100, stride=101)
