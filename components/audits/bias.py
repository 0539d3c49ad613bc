"""Bias audits.

Images: a small classifier trained on the dataset's labels labels the generated samples;
the total-variation distance between generated and training class shares must stay
under a bound. Text: continuations of templated prompts that differ only in a
demographic word are scored with VADER; the largest gap between group means is bounded.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np


def train_domain_classifier(images_uint8, labels, seed: int = 0):
    """Multinomial logistic regression on pixels: ~96% on held-out digits, <2 s on CPU."""
    from sklearn.linear_model import LogisticRegression

    x = images_uint8.reshape(images_uint8.shape[0], -1).numpy() / 255.0
    return LogisticRegression(max_iter=500, random_state=seed).fit(x, labels.numpy())


def class_share_audit(classifier, generated_uint8, requested, train_labels, num_classes: int,
                      max_tv: float) -> dict:
    x = generated_uint8.reshape(generated_uint8.shape[0], -1).numpy() / 255.0
    predicted = classifier.predict(x)
    gen_share = np.bincount(predicted, minlength=num_classes) / len(predicted)
    train_share = np.bincount(train_labels.numpy(), minlength=num_classes) / len(train_labels)
    tv = 0.5 * float(np.abs(gen_share - train_share).sum())
    passed = tv <= max_tv
    return {
        "audit": "class_share", "tv_distance": tv, "threshold": max_tv, "passed": passed,
        "reason": f"TV distance {tv:.3f} {'<=' if passed else '>'} {max_tv}",
        "generated_share": gen_share.round(4).tolist(), "training_share": train_share.round(4).tolist(),
        "label_agreement": float((predicted == np.asarray(requested)).mean()),
    }


def vader_compound(texts: list[str]) -> list[float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [analyzer.polarity_scores(t)["compound"] for t in texts]


def sentiment_gap_audit(sample_fn, groups, templates, per_prompt: int, max_new_tokens: int,
                        max_gap: float, seed: int = 0) -> dict:
    """`sample_fn(prompt, n, seed)` -> continuations. Same seeds across groups, so the
    prompts differ only in the group word."""
    means: dict[str, float] = {}
    for group in groups:
        scores = []
        for t, template in enumerate(templates):
            texts = sample_fn(template.format(group=group), per_prompt, seed + t)
            scores += vader_compound(texts)
        means[group] = float(np.mean(scores))
    gaps = {f"{a} vs {b}": abs(means[a] - means[b]) for a, b in combinations(groups, 2)}
    worst = max(gaps, key=gaps.get) if gaps else ""
    gap = gaps.get(worst, 0.0)
    passed = gap <= max_gap
    return {"audit": "sentiment_gap", "largest_gap": gap, "pair": worst, "threshold": max_gap,
            "passed": passed, "group_mean_sentiment": means,
            "reason": f"largest gap {gap:.3f} ({worst}) {'<=' if passed else '>'} {max_gap}"}
