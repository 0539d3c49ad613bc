"""Corpus-level perplexity = exp(total NLL / total tokens) on held-out text, and bits per
character (total bits / UTF-8 characters predicted).

Windows of `window` tokens advance by `stride` (default: disjoint windows). With a stride
below the window, each window scores only its last `stride` tokens, which then see
`window - stride` tokens of context. When every window fits in `max_windows` (or it is 0),
one last window ending at the final token scores the tail the strides left, so every
token after the first is scored exactly once; otherwise scoring stops after
`max_windows` windows. `tokens` in the
result says how many were scored.
"""
from __future__ import annotations

import math
from typing import Callable


def corpus_perplexity(logits_fn: Callable, tokens, window: int, max_windows: int = 0,
                      device: str = "cpu", stride: int | None = None) -> dict:
    import torch
    from torch.nn import functional as F

    from components.errors import GenloopError

    stride = stride or window
    if not 0 < stride <= window:
        raise GenloopError(f"evaluate.stride must be in 1..window ({window}), got {stride}.")
    if tokens.numel() < window + 1:
        raise GenloopError(f"held-out text of {tokens.numel()} tokens is shorter than one window "
                           f"({window + 1}); lower evaluate.window or add text.")
    # (start, first scored position in the window): the first window scores all of it
    n = tokens.numel()
    windows = [(s, 0 if s == 0 else window - stride) for s in range(0, n - window, stride)]
    if max_windows and len(windows) > max_windows:
        windows = windows[:max_windows]
    else:
        covered = windows[-1][0] + window             # last target index scored so far
        if covered < n - 1:
            last = n - 1 - window
            windows.append((last, covered - last))
    total_nll, total_tokens, total_chars = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(windows), 32):
            chunk = windows[i:i + 32]
            rows = torch.stack([tokens[s:s + window + 1] for s, _ in chunk]).to(device)
            logits = logits_fn(rows[:, :-1]).double()     # float64 sums: exact corpus NLL
            targets = rows[:, 1:]
            scored = torch.zeros_like(targets, dtype=torch.bool)
            for row, (_, first) in enumerate(chunk):
                scored[row, first:] = True
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
            total_nll += nll[scored.reshape(-1)].sum().item()
            picked = targets[scored]
            total_tokens += picked.numel()
            # a UTF-8 character starts at every byte that is not a continuation byte
            total_chars += int(((picked < 0x80) | (picked >= 0xC0)).sum())
    return {"perplexity": math.exp(total_nll / total_tokens),
            "bits_per_char": total_nll / math.log(2) / max(total_chars, 1),
            "tokens": total_tokens, "windows": len(windows), "window": window, "stride": stride}
