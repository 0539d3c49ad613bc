"""Per-file tables that the expectation suites run over."""
from __future__ import annotations

from pathlib import Path

from components.data.images import list_images


def image_table(root: Path) -> "pandas.DataFrame":  # noqa: F821
    """One row per image file: whether it decodes, its format, size, mode and label."""
    import pandas as pd
    from PIL import Image

    rows = []
    for path, label in list_images(root):
        row = {"path": path.relative_to(root).as_posix(), "label": label, "decodes": False,
               "format": None, "width": None, "height": None, "mode": None, "error": ""}
        try:
            with Image.open(path) as img:
                img.load()
                row.update(decodes=True, format=img.format, width=img.width,
                           height=img.height, mode=img.mode)
        except Exception as exc:  # any decoder error marks the file bad, with the reason
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return pd.DataFrame(rows, columns=["path", "label", "decodes", "format", "width",
                                       "height", "mode", "error"])


def text_table(root: Path) -> "pandas.DataFrame":  # noqa: F821
    """One row per text file: valid UTF-8, length in characters and lines."""
    import pandas as pd

    rows = []
    for path in sorted(Path(root).rglob("*.txt")):
        blob = path.read_bytes()
        try:
            text, valid = blob.decode("utf-8"), True
        except UnicodeDecodeError:
            text, valid = "", False
        rows.append({"path": path.relative_to(root).as_posix(), "utf8": valid,
                     "chars": len(text), "lines": text.count("\n")})
    return pd.DataFrame(rows, columns=["path", "utf8", "chars", "lines"])
