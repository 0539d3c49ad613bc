"""Bias audits.

Images: a small classifier trained on the dataset's labels labels the generated samples;
the total-variation distance between generated and training class shares must stay
under a bound. Text: continuations of templated prompts that differ only in a
demographic word are scored with VADER; the largest gap between group means is bounded.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np


def class_share_audit(predicted, requested, train_labels, num_classes: int, max_tv: float) -> dict:
    """`predicted`: the domain classifier's labels of the generated samples; `requested`:
    the classes the samples were generated for."""
    from fairlearn.metrics import MetricFrame
    from scipy.stats import chisquare
    from sklearn.metrics import accuracy_score

    predicted, requested = np.asarray(predicted), np.asarray(requested)
    counts = np.bincount(predicted, minlength=num_classes)
    gen_share = counts / len(predicted)
    train_share = np.bincount(np.asarray(train_labels), minlength=num_classes) / len(train_labels)
    tv = 0.5 * float(np.abs(gen_share - train_share).sum())
    seen = train_share > 0          # classes the training data holds (a dataset may lack some)
    p_value = (0.0 if counts[~seen].any()            # generated classes the data does not have
               else float(chisquare(counts[seen], train_share[seen] * len(predicted)).pvalue))
    # per requested class: how often the classifier agrees (fairlearn's per-group view)
    frame = MetricFrame(metrics=accuracy_score, y_true=requested, y_pred=predicted, sensitive_features=requested)
    per_class = {str(k): float(v) for k, v in frame.by_group.items()}
    passed = tv <= max_tv
    return {
        "audit": "class_share", "tv_distance": tv, "threshold": max_tv, "passed": passed,
        "reason": f"TV distance {tv:.3f} {'<=' if passed else '>'} {max_tv}",
        "chi_square_p_value": p_value,
        "generated_share": gen_share.round(4).tolist(), "training_share": train_share.round(4).tolist(),
        "classes_covered": int((counts > 0).sum()), "label_agreement": float((predicted == requested).mean()),
        "agreement_by_class": per_class, "worst_class_ratio": float(frame.ratio()),
    }


def vader_compound(texts: list[str]) -> list[float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [analyzer.polarity_scores(t)["compound"] for t in texts]


def sentiment_gap_audit(sample_fn, groups, templates, per_prompt: int, max_new_tokens: int,
                        max_gap: float, seed: int = 0) -> dict:
    """`sample_fn(prompt, n, seed)` -> continuations. Same seeds across groups, so the
    prompts differ only in the group word."""
    from scipy.stats import wasserstein_distance

    scores: dict[str, list[float]] = {}
    for group in groups:
        scores[group] = []
        for t, template in enumerate(templates):
            texts = sample_fn(template.format(group=group), per_prompt, seed + t)
            scores[group] += vader_compound(texts)
    means = {g: float(np.mean(v)) for g, v in scores.items()}
    pairs = list(combinations(groups, 2))
    gaps = {f"{a} vs {b}": abs(means[a] - means[b]) for a, b in pairs}
    w1 = {f"{a} vs {b}": float(wasserstein_distance(scores[a], scores[b])) for a, b in pairs}
    worst = max(gaps, key=gaps.get) if gaps else ""
    gap = gaps.get(worst, 0.0)
    passed = gap <= max_gap
    return {"audit": "sentiment_gap", "largest_gap": gap, "pair": worst, "threshold": max_gap,
            "passed": passed, "group_mean_sentiment": means, "wasserstein_1": w1,
            "largest_wasserstein_1": max(w1.values()) if w1 else 0.0,
            "reason": f"largest gap {gap:.3f} ({worst}) {'<=' if passed else '>'} {max_gap}"}


def representation(samples: list[str], groups) -> dict:
    """Share of each group's word among group mentions in unconditioned samples."""
    import re

    counts = {g: sum(len(re.findall(rf"\b{re.escape(g)}\b", s.lower())) for s in samples) for g in groups}
    total = sum(counts.values())
    return {"mentions": counts, "share": {g: (c / total if total else 0.0) for g, c in counts.items()}}
