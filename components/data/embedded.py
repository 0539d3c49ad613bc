"""The embedded default datasets, written byte-for-byte reproducibly.

- digits: scikit-learn's 1,797 8x8 digit images as grayscale PNGs, data/digits/<class>/<n>.png
- pydocs: CPython's pydoc_data.topics as one UTF-8 corpus, data/pydocs/corpus.txt
"""
from __future__ import annotations

import io
from pathlib import Path

from components.atomic import atomic_dir


def digits_png_files() -> dict[str, bytes]:
    """relative path -> PNG bytes; pixel values 0..16 are scaled to 0..255."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    counters: dict[int, int] = {}
    files: dict[str, bytes] = {}
    for image, label in zip(digits.images, digits.target):
        label = int(label)
        n = counters.get(label, 0)
        counters[label] = n + 1
        pixels = np.round(image * (255.0 / 16.0)).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buf, format="PNG", optimize=False)
        files[f"{label}/{n:04d}.png"] = buf.getvalue()
    return files


def pydocs_files() -> dict[str, bytes]:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"
    return {"corpus.txt": text.encode("utf-8")}


EMBEDDED = {"digits": digits_png_files, "pydocs": pydocs_files}


def write_dataset(files: dict[str, bytes], dest: Path) -> bool:
    """Write `files` under `dest` atomically (temp dir, then rename).

    Returns True when something changed; an identical folder is left untouched so its
    timestamps (and DVC's cached hashes) stay valid.
    """
    if dest.is_dir():
        existing = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
        if existing.keys() == files.keys() and all(
                existing[k].read_bytes() == v for k, v in files.items()):
            return False
    with atomic_dir(dest) as tmp:
        for rel, blob in sorted(files.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
    return True


def write_embedded(data_dir: Path) -> dict[str, bool]:
    """Write every embedded dataset under data_dir; name -> whether it changed."""
    return {name: write_dataset(make(), data_dir / name) for name, make in EMBEDDED.items()}
