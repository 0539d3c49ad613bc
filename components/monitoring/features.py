"""Per-generation features, computed the same way at evaluation (the reference) and at
serving time (the serving log, components/serving/servelog.py). Imported by deploy/: no
training code here."""
from __future__ import annotations

IMAGE_COLUMNS = {"numerical": ["mean_intensity", "std_intensity", "ink_fraction"],
                 "categorical": ["label"]}
TEXT_COLUMNS = {"numerical": ["prompt_chars", "output_chars", "sentiment", "alpha_share",
                              "distinct_char_share"], "categorical": []}


def image_stats(images_uint8) -> list[dict]:
    """The numerical columns of each image (N, C, H, W) uint8, in three reductions over the
    batch (the server computes them once per batched forward)."""
    flat = (images_uint8.float() / 255.0).reshape(images_uint8.shape[0], -1)
    columns = zip(flat.mean(1).tolist(), flat.std(1).tolist(), (flat > 0.5).float().mean(1).tolist())
    return [{"mean_intensity": mean, "std_intensity": std, "ink_fraction": ink} for mean, std, ink in columns]


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
