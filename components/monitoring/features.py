"""Per-generation features, computed the same way at evaluation (the reference) and at
serving time (the serving log, components/serving/servelog.py). Imported by deploy/: no
training code here."""
from __future__ import annotations

IMAGE_COLUMNS = {"numerical": ["mean_intensity", "std_intensity", "ink_fraction"],
                 "categorical": ["label"]}
TEXT_COLUMNS = {"numerical": ["prompt_chars", "output_chars", "sentiment", "alpha_share",
                              "distinct_char_share"], "categorical": []}


def image_stats(images_uint8) -> list[dict]:
    """The numerical columns of each image (N, C, H, W) uint8 (a torch tensor or an array):
    pixel mean and (sample) standard deviation on a 0-1 scale, and the share of pixels above
    half intensity. In numpy, from two sums per image: the server computes them once per
    batched forward, and torch's eight small reductions took 29 us of a batch-1 request."""
    import numpy as np

    pixels = images_uint8.cpu().numpy() if hasattr(images_uint8, "cpu") else np.asarray(images_uint8)
    flat = pixels.reshape(len(pixels), -1)
    values = flat.astype(np.float64)
    size = values.shape[1]
    total, squares = values.sum(1), (values * values).sum(1)     # ufuncs: no einsum/count_nonzero wrappers
    mean = total / size
    std = np.sqrt(np.maximum(squares - total * mean, 0.0) / max(size - 1, 1))
    ink = (flat > 127).sum(1) / size                             # > 0.5 on the 0-1 scale
    return [{"mean_intensity": m / 255.0, "std_intensity": s / 255.0, "ink_fraction": k}
            for m, s, k in zip(mean.tolist(), std.tolist(), ink.tolist())]


def image_features(images_uint8, labels, stats: list[dict] | None = None) -> list[dict]:
    """images (N, C, H, W) uint8; labels the requested class names; `stats` when already
    computed (image_stats of these images)."""
    return [{"label": str(label), **row} for row, label in zip(stats or image_stats(images_uint8), labels)]


_ANALYZER = None


def text_features(prompt: str, text: str) -> dict:
    global _ANALYZER
    if _ANALYZER is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        _ANALYZER = SentimentIntensityAnalyzer()
    n = max(len(text), 1)
    return {"prompt_chars": len(prompt), "output_chars": len(text),
            "sentiment": _ANALYZER.polarity_scores(text)["compound"],
            "alpha_share": sum(c.isalpha() for c in text) / n,
            "distinct_char_share": len(set(text)) / n}
