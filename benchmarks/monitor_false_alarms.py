"""False alarms and detection of the data-drift rule (issue 8): Evidently's MMD embedding
drift on Inception features of the embedded digits.

no drift: 20 pairs of disjoint random halves of the same data (a resample), each side
          `n` files, against the default threshold (monitor.embedding_threshold);
shift:    the same, with the current side limited to digits 0-4 (classes lost) and with
          the current side's images inverted (content changed, class shares kept).
output:   20 batches of 1,000 generations of the champion sampled as the service samples,
          against the output reference (`output` argument).
Usage: .venv/bin/python benchmarks/monitor_false_alarms.py [n ...]   (default 60 200 500)
       .venv/bin/python benchmarks/monitor_false_alarms.py output
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from components.config import MonitorConfig  # noqa: E402


def mmd(reference: np.ndarray, current: np.ndarray, cfg: MonitorConfig) -> float:
    from evidently.metrics.embeddings import MMDDriftMethod

    method = MMDDriftMethod(threshold=cfg.embedding_threshold, pca_components=cfg.pca_components)
    score, _, _ = method(pd.DataFrame(current), pd.DataFrame(reference))
    return float(score)


def main(sizes=(60, 200, 500)) -> None:
    from PIL import Image, ImageOps

    from components.data.embedded import write_embedded
    from components.data.images import list_images
    from components.monitoring.embeddings import image_embeddings
    from components.paths import ProjectPaths

    cfg = MonitorConfig()
    root = Path(__file__).resolve().parents[1]
    cache = ProjectPaths.at(root).feature_cache
    with tempfile.TemporaryDirectory() as tmp:
        write_embedded(Path(tmp) / "data")
        items = list_images(Path(tmp) / "data" / "digits")
        inverted = []
        for path, label in items:
            out = Path(tmp) / "inverted" / label / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as img:
                ImageOps.invert(img.convert("L")).save(out)
            inverted.append(out)
        start = time.perf_counter()
        feats, computed = image_embeddings([p for p, _ in items], 1, cache)
        inv, computed_inv = image_embeddings(inverted, 1, cache)
        print(f"features: {len(items)} + {len(inverted)} files, {computed + computed_inv} through Inception, "
              f"{time.perf_counter() - start:.1f}s")
    labels = np.array([int(label) for _, label in items])
    low = np.flatnonzero(labels <= 4)
    for n in sizes:
        rng = np.random.default_rng(n)
        null, lost, flipped = [], [], []
        for _ in range(20):
            order = rng.permutation(len(items))
            ref, cur = order[:n], order[n:2 * n]
            null.append(mmd(feats[ref], feats[cur], cfg))
            flipped.append(mmd(feats[ref], inv[cur], cfg))
            lost.append(mmd(feats[ref], feats[rng.choice(low, n, replace=False)], cfg))
        t = cfg.embedding_threshold
        print(f"n={n}: resample MMD max {max(null):.4f} (false alarms {sum(v > t for v in null)}/20); "
              f"digits 0-4 only min {min(lost):.4f} (detected {sum(v > t for v in lost)}/20); "
              f"inverted min {min(flipped):.4f} (detected {sum(v > t for v in flipped)}/20); threshold {t}")




def output_false_alarms(model_name: str = "dcgan-digits", runs: int = 20, rows: int = 1000) -> None:
    """Output drift on no-drift traffic: `runs` batches of `rows` generations sampled as the
    service samples (fresh seeds, no label) by the champion, each against the default
    2,000-row reference."""
    import os

    from components.data.images import to_uint8
    from components.models.io import load_checkpoint
    from components.monitoring.drift import output_drift, output_reference
    from components.monitoring.features import IMAGE_COLUMNS, image_features
    from components.monitoring.run import champion_config
    from components.paths import ProjectPaths
    from components.registry import champion_summary

    root = Path(__file__).resolve().parents[1]
    os.environ.setdefault("BENTOML_HOME", str(ProjectPaths.at(root).bentoml_home))
    champion = champion_summary(model_name)
    cfg = champion_config(champion)
    reference = output_reference(champion, cfg, Path(tempfile.mkdtemp()))
    reference["label"] = reference["label"].astype(str)
    model, _ = load_checkpoint(Path(champion.path) / "checkpoint")
    names = list(champion.metadata.get("class_names"))
    fired, shares, seconds = 0, [], []
    for run in range(runs):
        served = []
        for i in range(0, rows, 50):
            images, idx = model.sample(50, 900_000 + run * 1000 + i)
            served += image_features(to_uint8(images), [names[j] for j in idx.tolist()])
        start = time.perf_counter()
        check = output_drift(reference, pd.DataFrame(served), IMAGE_COLUMNS, cfg.monitor, Path(tempfile.mkdtemp()))
        seconds.append(time.perf_counter() - start)
        fired += check.fired
        shares.append(check.score)
    print(f"output drift on no-drift traffic: {fired}/{runs} runs fired; drifted-column share max "
          f"{max(shares):.2f}; {rows} served vs {len(reference)} reference rows; "
          f"median check {sorted(seconds)[len(seconds) // 2]:.1f}s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["output"]:
        output_false_alarms()
    else:
        main(tuple(int(a) for a in sys.argv[1:]) or (60, 200, 500))
