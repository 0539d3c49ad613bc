"""The three kinds of drift `genloop monitor` checks for a champion:

- data: the newest data vs the data the champion was trained on, in content features
  (components/monitoring/embeddings.py) with Evidently's embedding drift, plus the change
  of class shares and Evidently's column drift on scalar descriptors;
- staleness: the champion's FID / perplexity on the newest data vs its value at promotion;
- output: served generations vs a reference sampled the way the service samples.

Each check returns a `Check`: what was measured, the rule, whether it fired.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.config import MonitorConfig, RunConfig
from components.errors import GenloopError


@dataclass(frozen=True)
class Check:
    kind: str                       # "data" | "staleness" | "output"
    fired: bool
    score: float                    # the figure the rule compares
    threshold: float
    summary: str                    # one line: what was measured and what the rule says
    details: dict = field(default_factory=dict)


# ---------------------------------------------------------------- data drift

def _pick(n: int, k: int) -> list[int]:
    from components.evaluation.run import reference_pick

    return reference_pick(n, k).tolist()


def _image_descriptors(files: list[Path], channels: int) -> list[dict]:
    from PIL import Image

    rows = []
    mode = {1: "L", 3: "RGB"}[channels]
    for path in files:
        with Image.open(path) as img:
            x = np.asarray(img.convert(mode), dtype=np.float64) / 255.0
        rows.append({"mean_intensity": x.mean(), "std_intensity": x.std(), "ink_fraction": (x > 0.5).mean(),
                     "label": path.parent.name})
    return rows


def _text_descriptors(chunks: list[str]) -> list[dict]:
    rows = []
    for chunk in chunks:
        lines = chunk.splitlines() or [""]
        n = max(len(chunk), 1)
        rows.append({"mean_line_chars": float(np.mean([len(x) for x in lines])),
                     "alpha_share": sum(c.isalpha() for c in chunk) / n,
                     "space_share": sum(c.isspace() for c in chunk) / n,
                     "distinct_char_share": len(set(chunk)) / n})
    return rows


def _dataset_files(folder: Path, kind: str, what: str) -> list[tuple[Path, str]] | str:
    if kind == "image":
        from components.data.images import list_images

        files = list_images(folder)
        if not files:
            raise GenloopError(f"the {what} data has no images under {folder}: the data version is empty.")
        return files
    from components.data.text import load_corpus

    try:
        text = load_corpus(folder)
    except GenloopError as exc:
        raise GenloopError(f"the {what} data: {exc}") from None
    if not text.strip():
        raise GenloopError(f"the {what} data has an empty corpus under {folder}.")
    return text


def data_drift(reference_dir: Path, current_dir: Path, cfg: RunConfig, feature_cache: Path, out_dir: Path,
               device: str = "cpu") -> Check:
    """The newest data (current_dir) vs the champion's training data (reference_dir):
    dataset folders as the config names them."""
    import pandas as pd

    from components.monitoring.evidently_adapter import embedding_drift_report

    m: MonitorConfig = cfg.monitor
    ref_items = _dataset_files(reference_dir, cfg.data.kind, "champion's training")
    cur_items = _dataset_files(current_dir, cfg.data.kind, "newest")
    details: dict = {}
    if cfg.data.kind == "image":
        from components.monitoring.embeddings import image_embeddings

        ref_files = [ref_items[i][0] for i in _pick(len(ref_items), m.data_samples)]
        cur_files = [cur_items[i][0] for i in _pick(len(cur_items), m.data_samples)]
        ref_emb, new_ref = image_embeddings(ref_files, cfg.data.channels, feature_cache, device)
        cur_emb, new_cur = image_embeddings(cur_files, cfg.data.channels, feature_cache, device)
        details["features_computed"] = new_ref + new_cur
        ref_desc, cur_desc = _image_descriptors(ref_files, cfg.data.channels), _image_descriptors(cur_files, cfg.data.channels)
        ref_share = pd.Series([label for _, label in ref_items]).value_counts(normalize=True)
        cur_share = pd.Series([label for _, label in cur_items]).value_counts(normalize=True)
        classes = sorted(set(ref_share.index) | set(cur_share.index))
        tv = 0.5 * float(sum(abs(ref_share.get(c, 0.0) - cur_share.get(c, 0.0)) for c in classes))
        details.update(class_share_tv=tv, current_class_share={str(c): float(v) for c, v in cur_share.items()},
                       new_classes=sorted(set(cur_share.index) - set(ref_share.index)),
                       missing_classes=sorted(set(ref_share.index) - set(cur_share.index)),
                       reference_items=len(ref_items), current_items=len(cur_items))
        categorical = ["label"]
    else:
        from components.monitoring.embeddings import text_chunks, text_embeddings

        ref_chunks, cur_chunks = text_chunks(ref_items, m.text_chunk_chars), text_chunks(cur_items, m.text_chunk_chars)
        ref_chunks = [ref_chunks[i] for i in sorted(_pick(len(ref_chunks), m.data_samples))]
        cur_chunks = [cur_chunks[i] for i in sorted(_pick(len(cur_chunks), m.data_samples))]
        ref_emb, cur_emb = text_embeddings(ref_chunks, cur_chunks)
        ref_desc, cur_desc = _text_descriptors(ref_chunks), _text_descriptors(cur_chunks)
        tv = None
        details.update(reference_items=len(ref_items), current_items=len(cur_items),
                       reference_chunks=len(ref_chunks), current_chunks=len(cur_chunks))
        categorical = []
    if min(len(ref_emb), len(cur_emb)) < 200:
        raise GenloopError(f"too little data to test for drift: {len(ref_emb)} reference and {len(cur_emb)} newest "
                           f"items (at least 200 each; with fewer the embedding test fires on unchanged data).")
    numerical = [c for c in ref_desc[0] if c not in categorical]
    result = embedding_drift_report(ref_emb, cur_emb, pd.DataFrame(ref_desc), pd.DataFrame(cur_desc),
                                    numerical, categorical, m, out_dir)
    details.update(result)
    score = result["embedding_drift_score"]
    reasons = []
    if score > m.embedding_threshold:
        reasons.append(f"embedding drift {score:.4f} > {m.embedding_threshold} ({m.embedding_method})")
    if tv is not None and tv > m.class_share_tv:
        reasons.append(f"class shares moved by TV {tv:.3f} > {m.class_share_tv}"
                       + (f" (new classes: {', '.join(details['new_classes'])})" if details["new_classes"] else ""))
    summary = ("; ".join(reasons) if reasons else
               f"no data drift: embedding drift {score:.4f} <= {m.embedding_threshold} ({m.embedding_method})"
               + (f", class-share TV {tv:.3f} <= {m.class_share_tv}" if tv is not None else ""))
    if result["drifted_descriptors"]:
        summary += f"; descriptors drifted: {', '.join(result['drifted_descriptors'])}"
    return Check("data", bool(reasons), score, m.embedding_threshold, summary, details)


# ---------------------------------------------------------------- staleness

def staleness(champion, cfg: RunConfig, current_dir: Path, current_md5: str, paths, device: str = "cpu") -> Check:
    """The champion's metric on the newest data next to its value at promotion."""
    from components.gate import Scorecard

    card = Scorecard.from_metadata(champion.tag, champion.metadata.get("scorecard", {}))
    if cfg.data.kind == "image":
        return _image_staleness(champion, card, cfg, current_dir, current_md5, paths, device)
    return _text_staleness(champion, card, cfg, current_dir, device)


def _image_staleness(champion, card, cfg: RunConfig, current_dir: Path, current_md5: str, paths,
                     device: str) -> Check:
    from components.data.images import list_images
    from components.evaluation.rescore import image_fid

    files = list_images(current_dir)
    known = set(cfg.data.labels)
    unknown = sorted({label for _, label in files} - known)
    if not any(label in known for _, label in files):
        raise GenloopError(f"the newest data holds none of the champion's classes ({', '.join(known)}); "
                           f"staleness cannot be scored.")
    k = int(card.protocol.get("reference_samples", cfg.evaluate.reference_samples))
    samples = int(card.protocol.get("samples", cfg.evaluate.samples))
    # the reference of the newest data, picked and cached exactly as a retraining's evaluation
    # will (all classes, known or not: the world is what it is)
    now = image_fid(champion, cfg, current_dir, current_md5, samples, k, paths, device)
    half = float((champion.metadata.get("metrics") or {}).get("fid_interval", {}).get("half_width", 0.0))
    rise = now - card.value
    fired = rise > half
    summary = (f"FID on the newest data {now:.2f} vs {card.value:.2f} at promotion: "
               + (f"rose {rise:.2f} > interval {half:.2f}" if fired else f"change {rise:+.2f} within interval {half:.2f}"))
    return Check("staleness", fired, now, card.value + half, summary,
                 {"metric": "fid", "now": now, "at_promotion": card.value, "interval_half_width": half,
                  "reference_samples": k, "classes_unknown_to_champion": unknown})


def _text_staleness(champion, card, cfg: RunConfig, current_dir: Path, device: str) -> Check:
    from components.evaluation.rescore import text_perplexity

    metrics = text_perplexity(champion, cfg, current_dir, device)
    now = float(metrics["perplexity"])
    bound = card.value * (1 + cfg.monitor.staleness_tolerance)
    fired = now > bound
    summary = (f"perplexity on the newest held-out text {now:.3f} vs {card.value:.3f} at promotion: "
               + ("above" if fired else "within") + f" the {cfg.monitor.staleness_tolerance:.0%} tolerance")
    return Check("staleness", fired, now, bound, summary,
                 {"metric": "perplexity", "now": now, "at_promotion": card.value, "tokens": metrics["tokens"]})


# ---------------------------------------------------------------- output drift

def output_reference(champion, cfg: RunConfig, cache_dir: Path, device: str = "cpu"):
    """Generations sampled exactly as the service samples a request without a label or
    with the evaluation prompts (fresh seeds, the service's defaults), cached per model."""
    import pandas as pd

    n = cfg.monitor.output_reference_samples
    path = Path(cache_dir) / f"{champion.tag.replace(':', '-')}-{n}.csv"
    if path.is_file():
        return pd.read_csv(path, dtype={"label": str})       # class names stay strings ("01", "NA")
    from components.models.io import load_checkpoint
    from components.monitoring.features import image_features, text_features

    model, _ = load_checkpoint(Path(champion.path) / "checkpoint", device=device)
    names = list(champion.metadata.get("class_names") or [])
    rows: list[dict] = []
    batch = 64
    for i, start in enumerate(range(0, n, batch)):
        count = min(batch, n - start)
        if model.modality == "image":
            from components.data.images import to_uint8

            from components.models.base import request_labels

            labels = request_labels(count, 10_000 + i, None, names, champion.metadata.get("trained_classes"))
            images, indices = model.sample(count, 10_000 + i, labels=labels)
            rows += image_features(to_uint8(images), [names[j] if names else str(j) for j in indices.tolist()])
        else:
            prompts = ["The ", "def ", "import ", "class ", "In ", "# "]
            prompt = prompts[i % len(prompts)]
            for text in model.sample(count, 10_000 + i, prompt=prompt, max_new_tokens=200):
                rows.append(text_features(prompt, text))
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return frame


def output_drift(reference, current, columns: dict, m: MonitorConfig, out_dir: Path) -> Check:
    from components.monitoring.evidently_adapter import drift_report

    result = drift_report(reference, current, columns["numerical"], columns["categorical"], out_dir)
    fired = result.drift_share >= m.output_drift_share
    summary = (f"output columns drifted: {result.drift_share:.2f} "
               + (">=" if fired else "<") + f" {m.output_drift_share} "
               f"({', '.join(result.drifted_columns) or 'none'}; {result.current_rows} served vs "
               f"{result.reference_rows} reference rows)")
    return Check("output", fired, result.drift_share, m.output_drift_share, summary,
                 {"columns": result.columns, "html": result.html_path, "json": result.json_path,
                  "snapshot": result.snapshot_path,
                  "reference_rows": result.reference_rows, "current_rows": result.current_rows})
