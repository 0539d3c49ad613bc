"""Content features for data drift: Inception pool features of images, cached per file
md5, and a byte n-gram TF-IDF + SVD embedding of text.

Images: the same 2048-d features FID uses (same network, same resize), so a monitor run
and an evaluation share one cache: a file seen once is never sent through Inception
again. The cache is SQLite (atomic writes, safe with two monitor runs at once), keyed by
file md5 and by the network/preprocessing, features stored as the network's float32.

Text: character 1-4-gram TF-IDF fitted on the reference chunks, reduced by truncated SVD
(also fitted on the reference). It is chosen over the champion LM's hidden state on
purpose: the monitor judges whether the *world* moved, and a measure that comes from the
model being judged would move whenever the model is retrained, making two monitor runs
on the same data incomparable across champions.
"""
from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np

from components.errors import GenloopError


class FeatureCache:
    """file md5 -> float32 feature vector, for one feature extractor (`space`)."""

    def __init__(self, path: Path, space: str):
        self.path, self.space = Path(path), space
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(self._connect()) as db, db:
                db.execute("CREATE TABLE IF NOT EXISTS features "
                           "(space TEXT, md5 TEXT, vector BLOB, PRIMARY KEY (space, md5))")
        except sqlite3.DatabaseError as exc:
            raise GenloopError(f"the feature cache {self.path} is corrupt ({exc}); delete it (it is only "
                               f"a cache) and rerun.") from None

    def _connect(self):
        return sqlite3.connect(self.path, timeout=60)

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with closing(self._connect()) as db:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = db.execute(f"SELECT md5, vector FROM features WHERE space = ? AND md5 IN "
                                  f"({','.join('?' * len(chunk))})", [self.space, *chunk])
                found.update((md5, np.frombuffer(blob, dtype=np.float32)) for md5, blob in rows)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        with closing(self._connect()) as db, db:
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?)",
                           [(self.space, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])


def file_md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def image_embeddings(files: list[Path], channels: int, cache_path: Path, device: str = "cpu"
                     ) -> tuple[np.ndarray, int]:
    """(N, 2048) Inception pool features of image files, through the per-file cache.
    Returns (features, files that had to go through Inception)."""
    import torch
    from PIL import Image

    from components.evaluation.fid import RESIZE_MODE, inception_features, network_hash

    cache = FeatureCache(cache_path, f"inception-{network_hash()[:12]}-{RESIZE_MODE}-c{channels}")
    keys = [file_md5(p) for p in files]
    known = cache.get(sorted(set(keys)))
    missing = sorted({k: p for k, p in zip(keys, files) if k not in known}.items())
    mode = {1: "L", 3: "RGB"}[channels]
    for start in range(0, len(missing), 256):
        batch = missing[start:start + 256]
        arrays = []
        for _, path in batch:
            try:
                with Image.open(path) as img:
                    arrays.append(np.asarray(img.convert(mode), dtype=np.uint8))
            except Exception as exc:
                raise GenloopError(f"cannot read image {path}: {exc}. Remove or replace the file.") from None
        if len({a.shape for a in arrays}) > 1:
            raise GenloopError(f"images of different sizes under {Path(batch[0][1]).parent.parent}: "
                               f"{sorted({a.shape for a in arrays})}; one dataset needs one size.")
        x = torch.from_numpy(np.stack(arrays))
        x = x.unsqueeze(1) if channels == 1 else x.permute(0, 3, 1, 2)
        feats = inception_features(x.contiguous(), device=device).astype(np.float32)
        new = {k: f for (k, _), f in zip(batch, feats)}
        cache.put(new)
        known.update(new)
    return np.stack([known[k] for k in keys]).astype(np.float64), len(missing)


def text_chunks(text: str, size: int) -> list[str]:
    """Consecutive chunks of about `size` characters, cut at line ends where possible."""
    chunks, current = [], []
    length = 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        length += len(line)
        if length >= size:
            chunks.append("".join(current))
            current, length = [], 0
    if length >= size // 4:
        chunks.append("".join(current))
    return chunks


def text_embeddings(reference: list[str], current: list[str], dims: int = 32, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Character 1-4-gram TF-IDF + truncated SVD, both fitted on the reference chunks."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(reference) < 4 or len(current) < 4:
        raise GenloopError(f"too little text to compare: {len(reference)} reference and {len(current)} "
                           f"current chunks (at least 4 each); lower monitor.text_chunk_chars.")
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), max_features=20_000, sublinear_tf=True)
    ref = vectorizer.fit_transform(reference)
    svd = TruncatedSVD(n_components=min(dims, ref.shape[1] - 1, len(reference) - 1), random_state=seed)
    return svd.fit_transform(ref), svd.transform(vectorizer.transform(current))
