"""Issue 3 figures: validation throughput on a 10,000-image folder against a bare PIL
decode loop over the same files (measured side by side in one run), and the time of
`genloop data add` for those 10,000 files.

Usage: .venv/bin/python benchmarks/data_layer.py [n_images]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def make_folder(dest: Path, n: int) -> None:
    from components.data.embedded import digits_png_files

    digits = list(digits_png_files().items())
    for i in range(n):
        rel, blob = digits[i % len(digits)]
        label = rel.split("/")[0]
        (dest / label).mkdir(parents=True, exist_ok=True)
        (dest / label / f"{i:05d}.png").write_bytes(blob)


def bare_decode(folder: Path) -> float:
    from PIL import Image

    start = time.perf_counter()
    for path in sorted(folder.rglob("*.png")):
        with Image.open(path) as img:
            img.load()
    return time.perf_counter() - start


def main(n: int = 10_000) -> None:
    from components.config import RunConfig, build_dataclass
    from components.data.datasets import add_dataset
    from components.data.versioning import init_data
    from components.validation.run import validate_dataset
    from components.validation.tables import image_table

    # duplicates are expected here (the 1,797 digits repeat), so allow them
    cfg = build_dataclass(RunConfig, {"validate": {"max_duplicate_share": 1.0}})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_folder(folder, n)
        bare_decode(folder)                                   # warm the page cache
        rows = []
        for _ in range(3):
            bare = bare_decode(folder)
            start = time.perf_counter()
            image_table(folder)
            table = time.perf_counter() - start
            start = time.perf_counter()
            report = validate_dataset(folder, cfg, Path(tmp) / "report")
            full = time.perf_counter() - start
            rows.append((bare, table, full))
        bare, table, full = min(rows, key=lambda r: r[2])
        assert report.success, report.summary()
        print(f"{n} images: bare PIL decode {n / bare:,.0f} files/s; per-file table {n / table:,.0f} files/s "
              f"(ratio {bare / table:.2f}); full GX validation {n / full:,.0f} files/s (ratio {bare / full:.2f})")

        root = Path(tmp) / "project"
        root.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        init_data(root)
        start = time.perf_counter()
        info, _ = add_dataset(root, folder, "big")
        print(f"genloop data add of {info.files} files ({info.size / 1e6:.1f} MB): "
              f"{time.perf_counter() - start:.1f}s (copy, dvc add, dvc push to the local remote)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
