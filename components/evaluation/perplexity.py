"""Corpus-level perplexity = exp(total NLL / total tokens) over disjoint windows, and
bits per character (total bits / UTF-8 characters predicted)."""
from __future__ import annotations

import math
from typing import Callable


def corpus_perplexity(logits_fn: Callable, tokens, window: int, max_windows: int = 0,
                      device: str = "cpu") -> dict:
    import torch
    from torch.nn import functional as F

    n_windows = (tokens.numel() - 1) // window
    if max_windows:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        from components.errors import GenloopError
        raise GenloopError(f"held-out text of {tokens.numel()} tokens is shorter than one window "
                           f"({window + 1}); lower evaluate.window or add text.")
    total_nll, total_tokens, total_chars = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, n_windows, 32):
            starts = range(i * window, min(i + 32, n_windows) * window, window)
            rows = torch.stack([tokens[s:s + window + 1] for s in starts]).to(device)
            logits = logits_fn(rows[:, :-1]).double()     # float64 sums: exact corpus NLL
            targets = rows[:, 1:]
            total_nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                         reduction="sum").item()
            total_tokens += targets.numel()
            # a UTF-8 character starts at every byte that is not a continuation byte
            total_chars += int(((targets < 0x80) | (targets >= 0xC0)).sum())
    return {"perplexity": math.exp(total_nll / total_tokens),
            "bits_per_char": total_nll / math.log(2) / max(total_chars, 1),
            "tokens": total_tokens, "windows": n_windows}
