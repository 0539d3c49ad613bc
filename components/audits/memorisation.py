"""Memorisation audits: are generated samples copies of training samples?"""
from __future__ import annotations

import numpy as np


def image_memorisation(generated: np.ndarray, training: np.ndarray, max_copy_share: float,
                       ratio: float = 0.5, seed: int = 0, reference: int = 1000) -> dict:
    """Distance (L2 over pixels in [0, 1]) from each generated sample to its nearest
    training sample, against the nearest-neighbour distances inside the training set. A
    near-copy is closer to its nearest training sample than `ratio` times the median
    training nearest-neighbour distance."""
    import torch

    gen = torch.as_tensor(generated.reshape(len(generated), -1), dtype=torch.float64)
    train = torch.as_tensor(training.reshape(len(training), -1), dtype=torch.float64)
    d_gen = torch.cdist(gen, train).min(1).values.numpy()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train), min(reference, len(train)), replace=False)
    d_tt = torch.cdist(train[pick], train)
    d_tt[torch.arange(len(pick)), torch.as_tensor(pick)] = float("inf")       # leave one out
    d_tt = d_tt.min(1).values.numpy()
    threshold = float(ratio * np.median(d_tt))
    share = float((d_gen < threshold).mean())
    passed = share <= max_copy_share
    return {"audit": "image_memorisation", "near_copy_share": share, "threshold": max_copy_share,
            "copy_distance": threshold, "median_nn_distance_generated": float(np.median(d_gen)),
            "median_nn_distance_training": float(np.median(d_tt)),
            "distance_ratio": float(np.median(d_gen) / max(np.median(d_tt), 1e-12)), "passed": passed,
            "reason": f"near-copy share {share:.3f} {'<=' if passed else '>'} {max_copy_share}"}


def text_memorisation(samples: list[str], corpus: str, max_copy_share: float, window: int = 50) -> dict:
    """Share of generated `window`-character windows found verbatim in the training corpus."""
    windows = [s[i:i + window] for s in samples for i in range(0, max(len(s) - window + 1, 0), 10)]
    found = sum(w in corpus for w in windows)
    share = found / len(windows) if windows else 0.0
    passed = share <= max_copy_share
    return {"audit": "text_memorisation", "verbatim_window_share": share, "windows": len(windows),
            "window": window, "threshold": max_copy_share, "passed": passed,
            "reason": f"verbatim {window}-char windows {share:.3f} {'<=' if passed else '>'} {max_copy_share}"}
