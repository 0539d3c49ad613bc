"""A stored model's score on another dataset, measured the way a retraining run measures
its challenger. Two users: the gate, which re-scores a champion that was evaluated on
older data before comparing it with a challenger evaluated on the newest data, and the
monitor's staleness check (the champion's score on the newest data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from components.config import RunConfig
from components.errors import GenloopError
from components.paths import ProjectPaths


def champion_image_features(stored, cfg: RunConfig, samples: int, device: str) -> np.ndarray:
    """Inception features of `samples` generations of a stored image model: the ones its
    evaluation kept (generated_features.npy) when the count matches, else sampled anew
    from its checkpoint with the evaluation's seed."""
    saved = Path(stored.path) / "generated_features.npy"
    if saved.is_file():
        features = np.load(saved).astype(np.float64)
        if features.shape[0] == samples:
            return features
    from components.data.images import to_uint8
    from components.evaluation.fid import inception_features
    from components.models.io import load_checkpoint

    from components.models.base import request_labels

    model, _ = load_checkpoint(Path(stored.path) / "checkpoint", device=device)
    names = list(stored.metadata.get("class_names") or [])
    labels = request_labels(samples, cfg.seed + 1, None, names, stored.metadata.get("trained_classes"))
    images, _ = model.sample(samples, cfg.seed + 1, labels=labels)      # only the classes it was trained on
    return inception_features(to_uint8(images), device=device,
                              what=f"gate: re-scoring the champion, Inception features of {samples} generated images")


def image_reference(dataset_dir: Path, dataset_md5: str, count: int, channels: int, paths: ProjectPaths,
                    device: str) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the real images a retraining run's evaluation scores against: the
    same seeded pick of files, through the same per-file and per-dataset caches."""
    from components.data.images import list_images
    from components.evaluation.fid import reference_stats
    from components.evaluation.run import reference_pick
    from components.monitoring.embeddings import image_embeddings

    files = [path for path, _ in list_images(dataset_dir)]
    if not files:
        raise GenloopError(f"no images under {dataset_dir}: nothing to score against.")
    chosen = [files[i] for i in reference_pick(len(files), count).tolist()]
    mu, sigma, _, _ = reference_stats(None, dataset_md5, paths.fid_cache, device,
                                      lambda: image_embeddings(chosen, channels, paths.feature_cache, device)[0],
                                      count=len(chosen))
    return mu, sigma


def image_fid(stored, cfg: RunConfig, dataset_dir: Path, dataset_md5: str, samples: int, reference_samples: int,
              paths: ProjectPaths, device: str) -> float:
    from components.evaluation.fid import feature_stats, frechet_distance

    fake = champion_image_features(stored, cfg, samples, device)
    mu, sigma = image_reference(dataset_dir, dataset_md5, reference_samples, cfg.data.channels, paths, device)
    return frechet_distance(*feature_stats(fake), mu, sigma)


def text_perplexity(stored, cfg: RunConfig, dataset_dir: Path, device: str) -> dict:
    """Held-out perplexity of a stored text model on a corpus, with `cfg`'s split and
    evaluate: protocol (window, stride, max_windows)."""
    from components.data.text import load_corpus, split_corpus
    from components.evaluation.run import heldout_perplexity
    from components.models.io import load_checkpoint

    model, _ = load_checkpoint(Path(stored.path) / "checkpoint", device=device)
    _, holdout = split_corpus(load_corpus(dataset_dir), cfg.data.holdout_fraction)
    return heldout_perplexity(model, holdout, cfg, device)


def rescore(stored, card, challenger, cfg: RunConfig, dataset_dir: Path, paths: ProjectPaths, device: str):
    """The stored model's scorecard (`card`, from its promotion) re-measured on the
    challenger's dataset with the challenger's protocol, so the gate compares like with
    like. Keeps the original interval half-width (the gate's margin uses the challenger's)."""
    from components.gate import Scorecard

    if card.metric != challenger.metric:
        raise GenloopError(f"cannot re-score a {card.metric} champion on a {challenger.metric} protocol.")
    if card.metric == "fid":
        samples = int(challenger.protocol["samples"])
        reference = int(challenger.protocol["reference_samples"])
        value = image_fid(stored, cfg, dataset_dir, challenger.dataset_md5, samples, reference, paths, device)
        return Scorecard("fid", value, card.half_width, challenger.dataset_md5,
                         {"samples": samples, "reference_samples": reference}, card.tag)
    metrics = text_perplexity(stored, cfg, dataset_dir, device)
    return Scorecard.of(card.metric, metrics, challenger.dataset_md5, card.tag)
