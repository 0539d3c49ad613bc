"""Per-file (and per-line) tables that the expectation suites run over."""
from __future__ import annotations

import hashlib
from pathlib import Path

from components.data.images import list_images

IMAGE_COLUMNS = ["path", "label", "decodes", "format", "width", "height", "mode", "min_pixel",
                 "max_pixel", "mean_pixel", "content_hash", "duplicate", "class_share", "error"]


def class_folders(root: Path) -> list[str]:
    """Every sub-folder of an image dataset, empty ones included."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []


def describe_image(path: Path) -> dict:
    """One row: does it decode, and its format, size, mode, pixel range and content hash."""
    import io

    import numpy as np
    from PIL import Image

    blob = path.read_bytes()
    row = {"decodes": False, "format": None, "width": None, "height": None, "mode": None,
           "min_pixel": None, "max_pixel": None, "mean_pixel": None,
           "content_hash": hashlib.md5(blob).hexdigest(), "error": ""}
    try:
        with Image.open(io.BytesIO(blob)) as img:       # decode the bytes already read
            img.load()
            pixels = np.asarray(img)
            row.update(decodes=True, format=img.format, width=img.width, height=img.height,
                       mode=img.mode, min_pixel=float(pixels.min()), max_pixel=float(pixels.max()),
                       mean_pixel=float(pixels.mean()))
    except Exception as exc:  # any decoder error marks the file bad, with the reason
        row["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return row


def image_table(root: Path) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd

    rows = [{"path": path.relative_to(root).as_posix(), "label": label, **describe_image(path)}
            for path, label in list_images(root)]
    df = pd.DataFrame(rows, columns=[c for c in IMAGE_COLUMNS if c not in ("class_share", "duplicate")])
    # each row carries its class's share, so a too-rare class is reported with its files
    df["class_share"] = df["label"].map(df["label"].value_counts(normalize=True)) if len(df) else []
    # a duplicate is a file whose exact bytes occurred earlier (the first copy is not one)
    df["duplicate"] = df["content_hash"].duplicated() if len(df) else []
    return df[IMAGE_COLUMNS]


def _printable_share(text: str) -> float:
    return sum(c.isprintable() or c in "\n\r\t" for c in text) / len(text) if text else 1.0


def text_tables(root: Path) -> tuple["pandas.DataFrame", "pandas.DataFrame"]:  # noqa: F821
    """(documents, lines): one row per .txt file, and one per non-blank line."""
    import pandas as pd

    docs, lines = [], []
    for path in sorted(Path(root).rglob("*.txt")):
        rel = path.relative_to(root).as_posix()
        blob = path.read_bytes()
        try:
            text, valid, where = blob.decode("utf-8"), True, rel
        except UnicodeDecodeError as exc:
            text, valid = blob.decode("utf-8", errors="replace"), False
            where = f"{rel} (invalid UTF-8 at byte {exc.start})"
        docs.append({"path": where, "utf8": valid, "chars": len(text),
                     "lines": text.count("\n"), "printable_share": _printable_share(text)})
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                lines.append({"path": f"{rel}:{number}", "chars": len(line),
                              "line_hash": hashlib.md5(line.strip().encode()).hexdigest()})
    lines_df = pd.DataFrame(lines, columns=["path", "chars", "line_hash"])
    lines_df["duplicate"] = lines_df["line_hash"].duplicated() if len(lines_df) else []
    return (pd.DataFrame(docs, columns=["path", "utf8", "chars", "lines", "printable_share"]), lines_df)
