"""The evaluate stage's work: image metrics on Inception and domain features, text
perplexity; and the reference frame for drift monitoring."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from components.config import RunConfig
from components.paths import ProjectPaths

if TYPE_CHECKING:
    from components.models.base import ImageSampler, TextSampler


def domain_model(data, cfg: RunConfig, dataset_md5: str, paths: ProjectPaths):
    from components.evaluation.domain import domain_classifier

    return domain_classifier(data.images, data.labels, len(cfg.data.labels), dataset_md5, paths.domain_cache)


def reference_pick(n_items: int, k: int) -> torch.Tensor:
    """The real items scored against: a seeded pick, the same for evaluation and the drift
    monitor, so both read the same per-file features."""
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(0))[:k]


def evaluate_images(data, cfg: RunConfig, model: ImageSampler, dataset_md5: str, paths: ProjectPaths, out: Path,
                    device: str, files: list[Path] | None = None) -> tuple[dict, list[dict], str]:
    """FID and friends. `files` (the dataset's files in load order) routes the reference
    features through the per-file cache; the generated features land in
    out/generated_features.npy for the monitor's staleness check."""
    from components.data.images import to_uint8
    from components.evaluation.fid import feature_stats, frechet_distance, inception_features, reference_stats
    from components.evaluation.image_metrics import (fid_bootstrap, kernel_inception_distance,
                                                     precision_recall_density_coverage)
    from components.monitoring.features import image_features
    from components.report import save_grid

    e = cfg.evaluate
    pick = reference_pick(len(data.images), e.reference_samples)
    real = to_uint8(data.images[pick])
    features_of = None
    if files is not None:
        from components.monitoring.embeddings import image_embeddings

        def features_of():
            return image_embeddings([files[i] for i in pick.tolist()], cfg.data.channels, paths.feature_cache,
                                    device)[0]
    mu_r, sigma_r, real_features, cached = reference_stats(real, dataset_md5, paths.fid_cache, device, features_of)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    labels = data.labels[torch.randint(0, len(data.labels), (e.samples,), generator=gen)]
    fake_float, labels = model.sample(e.samples, cfg.seed + 1, labels=labels)
    fake = to_uint8(fake_float)
    fake_features = inception_features(fake, device=device)
    np.save(out / "generated_features.npy", fake_features.astype(np.float32))   # the network's own float32
    metrics = {"fid": frechet_distance(*feature_stats(fake_features), mu_r, sigma_r),
               "samples": int(fake.shape[0]), "reference_samples": int(real.shape[0]),
               "reference_cached": cached}
    if e.bootstrap_rounds:
        interval = fid_bootstrap(fake_features, mu_r, sigma_r, e.bootstrap_rounds, seed=cfg.seed)
        metrics["fid_interval"] = {k: interval[k] for k in ("low", "high", "half_width", "rounds", "level")}
    kid, kid_std = kernel_inception_distance(real_features, fake_features, seed=cfg.seed)
    metrics.update({"kid": kid, "kid_std": kid_std}, **precision_recall_density_coverage(real_features, fake_features))
    classifier, info = domain_model(data, cfg, dataset_md5, paths)
    with torch.no_grad():
        dom_real = classifier.features(data.images[pick]).double().numpy()
        dom_fake = classifier.features(fake_float).double().numpy()
    metrics["fid_domain"] = frechet_distance(*feature_stats(dom_fake), *feature_stats(dom_real))
    metrics["domain_classifier_accuracy"] = info["heldout_accuracy"]
    grid = save_grid(fake[:100], out / "samples.png")
    names = [cfg.data.labels[i] for i in labels.tolist()]
    return metrics, image_features(fake, names), grid


def heldout_perplexity(model: TextSampler, holdout: str, cfg: RunConfig, device: str) -> dict:
    """Perplexity of held-out text with the evaluate: section's window, stride and limit
    (the evaluation's score, and the monitor's staleness on newer text)."""
    from components.data.text import encode
    from components.evaluation.perplexity import corpus_perplexity

    limit = model.sequence_limit
    window = cfg.evaluate.window if limit is None else min(cfg.evaluate.window, limit)
    return corpus_perplexity(model.logits, encode(holdout), window, cfg.evaluate.max_windows, device,
                             stride=min(cfg.evaluate.stride, window) or None)


def evaluate_text(holdout: str, cfg: RunConfig, model: TextSampler, out: Path,
                  device: str) -> tuple[dict, list[dict], str]:
    from components.monitoring.features import text_features

    metrics = heldout_perplexity(model, holdout, cfg, device)
    prompts = [line[:24] for line in holdout.splitlines() if len(line) >= 24][:20] or ["The "]
    rows, samples = [], []
    for i, prompt in enumerate(prompts):
        text = model.sample(1, cfg.seed + i, prompt=prompt, max_new_tokens=100)[0]
        rows.append(text_features(prompt, text))
        samples.append(f"{prompt!r} -> {text!r}")
    path = out / "samples.txt"
    path.write_text("\n".join(samples) + "\n")
    return metrics, rows, str(path)
