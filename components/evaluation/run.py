"""The evaluate stage's work: image metrics on Inception and domain features, text
perplexity; and the reference frame for drift monitoring."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
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


def reference_dir(cfg: RunConfig, files: list[Path] | None, paths: ProjectPaths) -> Path:
    """The folder evaluate.reference_dataset names, in the same data version as the run's
    dataset (data/ or a checked-out revision of it): the folder above the dataset's
    folder, found from the path of one of its files (<dataset>/<class>/<file>)."""
    dataset = PurePosixPath(cfg.data.dataset).parts
    for folder in files[0].parents[1:] if files else ():
        if folder.parts[-len(dataset):] == dataset:
            return folder.parents[len(dataset) - 1] / cfg.evaluate.reference_dataset
    return paths.data / cfg.evaluate.reference_dataset


def heldout_fid(fake_features: np.ndarray, cfg: RunConfig, folder: Path, paths: ProjectPaths,
                device: str) -> dict:
    """FID of the generated features against evaluate.reference_samples images of a held-out
    folder (the same seeded pick, the same per-file and per-dataset caches as the main
    reference), e.g. 10k generated vs Fashion-MNIST's 10k test images, as papers report."""
    from components.evaluation.fid import feature_stats, frechet_distance

    mu, sigma, md5, count = heldout_statistics(cfg, folder, paths, device)
    return {"fid_heldout": frechet_distance(*feature_stats(fake_features), mu, sigma),
            "heldout_reference": {"dataset": cfg.evaluate.reference_dataset, "dataset_md5": md5,
                                  "samples": count}}


def heldout_statistics(cfg: RunConfig, folder: Path, paths: ProjectPaths, device: str):
    """The held-out reference's Inception statistics (cached): (mu, sigma, folder md5, count)."""
    from components.data.hashing import folder_md5
    from components.data.images import list_images
    from components.errors import GenloopError
    from components.evaluation.fid import reference_stats
    from components.monitoring.embeddings import image_embeddings

    files = [path for path, _ in list_images(folder)] if folder.is_dir() else []
    if not files:
        raise GenloopError(f"evaluate.reference_dataset {cfg.evaluate.reference_dataset!r}: no images under "
                           f"{folder}; import it (e.g. `genloop data import fashion-mnist`) or remove the key.")
    chosen = [files[i] for i in reference_pick(len(files), cfg.evaluate.reference_samples).tolist()]
    md5 = folder_md5(folder)

    def features_of():
        return image_embeddings(chosen, cfg.data.channels, paths.feature_cache, device)[0]

    mu, sigma, _, _ = reference_stats(None, md5, paths.fid_cache, device, features_of, count=len(chosen))
    return mu, sigma, md5, len(chosen)


def reference_statistics(data, cfg: RunConfig, dataset_md5: str, paths: ProjectPaths, device: str,
                         files: list[Path] | None = None):
    """The real side of FID: evaluate.reference_samples training images (the seeded pick), their
    Inception features and statistics, cached by dataset md5 (and, given `files`, per file).
    Returns (pick, real uint8 images, mu, sigma, features, cached)."""
    from components import progress
    from components.data.images import to_uint8
    from components.evaluation.fid import reference_stats

    pick = reference_pick(len(data.images), cfg.evaluate.reference_samples)
    real = to_uint8(data.images[pick])
    features_of = None
    if files is not None:
        from components.monitoring.embeddings import image_embeddings

        def features_of():
            return image_embeddings([files[i] for i in pick.tolist()], cfg.data.channels, paths.feature_cache,
                                    device)[0]
    with progress.meter(f"evaluate: Inception features of {len(pick)} real images", len(pick), "images"):
        mu, sigma, features, cached = reference_stats(real, dataset_md5, paths.fid_cache, device, features_of)
    return pick, real, mu, sigma, features, cached


def evaluate_images(data, cfg: RunConfig, model: ImageSampler, dataset_md5: str, paths: ProjectPaths, out: Path,
                    device: str, files: list[Path] | None = None) -> tuple[dict, list[dict], str]:
    """FID and friends. `files` (the dataset's files in load order) routes the reference
    features through the per-file cache; the generated features land in
    out/generated_features.npy for the monitor's staleness check."""
    from components.data.images import to_uint8
    from components.evaluation.fid import feature_stats, frechet_distance, inception_features
    from components.evaluation.image_metrics import (fid_bootstrap, kernel_inception_distance,
                                                     precision_recall_density_coverage)
    from components.monitoring.features import image_features
    from components.report import save_grid

    e = cfg.evaluate
    pick, real, mu_r, sigma_r, real_features, cached = reference_statistics(data, cfg, dataset_md5, paths, device,
                                                                             files)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    labels = data.labels[torch.randint(0, len(data.labels), (e.samples,), generator=gen)]
    fake_float, labels = model.sample(e.samples, cfg.seed + 1, labels=labels)
    fake = to_uint8(fake_float)
    fake_features = inception_features(fake, device=device,
                                       what=f"evaluate: Inception features of {len(fake)} generated images")
    np.save(out / "generated_features.npy", fake_features.astype(np.float32))   # the network's own float32
    metrics = {"fid": frechet_distance(*feature_stats(fake_features), mu_r, sigma_r),
               "samples": int(fake.shape[0]), "reference_samples": int(real.shape[0]),
               "reference_cached": cached}
    if e.reference_dataset:
        metrics.update(heldout_fid(fake_features, cfg, reference_dir(cfg, files, paths), paths, device))
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
