"""`genloop data import`: real datasets from files already on this machine, written
byte-reproducibly into data/NAME (atomically; an existing dataset is never overwritten)
and versioned with DVC like `genloop data add`. Nothing is downloaded.

- fashion-mnist: the four IDX files Debian's `dataset-fashion-mnist` package installs in
  /usr/share/datasets/fashion-mnist (or any folder holding them, gzipped or not) ->
  data/fashion-mnist/{train,test}/<class>/<index>.png, the splits kept apart so a config
  trains on `fashion-mnist/train` and can score FID against `fashion-mnist/test`.
- python-stdlib: the running Python's standard-library sources -> data/python-stdlib/corpus.txt
"""
from __future__ import annotations

import io
import os
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.atomic import atomic_dir
from components.data.hashing import folder_md5, folder_stats
from components.errors import GenloopError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")       # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")    # label order of the IDX files
FASHION_MNIST_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

STDLIB_SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__"}   # not the standard library
STDLIB_TEST_DIRS = {"test", "tests", "idle_test"}
STDLIB_MAX_FILE_BYTES = 500_000      # larger files are generated data (pydoc_data/topics.py), not code


@dataclass(frozen=True)
class Imported:
    name: str
    md5: str                  # our hash of data/NAME (DVC's algorithm)
    files: int
    size: int
    data_md5: str             # data/ after `dvc add`
    details: dict[str, Any] = field(default_factory=dict)


def _progress(label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not sys.stderr.isatty(), transient=True)


def _version(root: Path, dest: Path, details: dict[str, Any]) -> Imported:
    from components.data.datasets import commit_new_dataset

    files, size = folder_stats(dest)
    md5 = folder_md5(dest)
    return Imported(dest.name, md5, files, size, commit_new_dataset(root, dest.name), details)


# Fashion-MNIST -------------------------------------------------------------------------------

def _idx_file(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)


def locate_fashion_mnist(src: Path | None = None) -> dict[str, tuple[Path, Path]]:
    """split -> (images file, labels file) in `src` (default: where Debian installs them);
    any missing file is one error that says how to get them."""
    folder = Path(src).expanduser() if src else FASHION_MNIST_DIR
    found = {stem: _idx_file(folder, stem) for pair in FASHION_MNIST_SPLITS.values() for stem in pair}
    missing = [stem for stem, path in found.items() if path is None]
    if missing:
        raise GenloopError(f"Fashion-MNIST IDX files missing in {folder}: {', '.join(missing)} (plain or .gz); "
                           f"install them with `sudo apt-get install dataset-fashion-mnist` (they land in "
                           f"{FASHION_MNIST_DIR}) or pass --from DIR with the four files.")
    return {split: (found[images], found[labels]) for split, (images, labels) in FASHION_MNIST_SPLITS.items()}


def png_bytes(pixels) -> bytes:
    """A grayscale PNG with nothing but the pixels: Pillow writes no timestamp or text
    chunks unless asked, and the compression is fixed, so the same pixels give the same
    bytes (with the pinned Pillow and its zlib)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def read_fashion_mnist(src: Path | None = None) -> dict[str, tuple["numpy.ndarray", "numpy.ndarray"]]:  # noqa: F821
    """split -> (images, labels), every file checked before anything is written."""
    from components.data.idx import read_labelled_images

    splits = {split: read_labelled_images(images, labels, len(FASHION_MNIST_CLASSES))
              for split, (images, labels) in locate_fashion_mnist(src).items()}
    shapes = {split: images.shape[1:] for split, (images, _) in splits.items()}
    if len(set(shapes.values())) > 1:
        raise GenloopError(f"the splits hold images of different sizes ({shapes}); one dataset needs one size.")
    return splits


def write_fashion_mnist(splits: dict, dest: Path) -> None:
    """<split>/<class>/<index>.png under `dest`, atomically; <index> is the image's place in
    its split's IDX file (5 digits), so every PNG maps back to its source record."""
    total = sum(len(labels) for _, labels in splits.values())
    with atomic_dir(dest) as tmp, _progress(f"import {dest.name}") as bar:
        task = bar.add_task("png", total=total)
        for split, (images, labels) in splits.items():
            for name in FASHION_MNIST_CLASSES:
                (tmp / split / name).mkdir(parents=True)
            for index, (pixels, label) in enumerate(zip(images, labels)):
                path = tmp / split / FASHION_MNIST_CLASSES[label] / f"{index:05d}.png"
                path.write_bytes(png_bytes(pixels))
                if index % 1000 == 999:
                    bar.advance(task, 1000)
            bar.advance(task, len(labels) % 1000)


def import_fashion_mnist(root: Path, src: Path | None = None, name: str = "fashion-mnist") -> Imported:
    """Check the IDX files, write data/NAME/{train,test}/<class>/*.png and version data/."""
    from components.data.datasets import new_dataset_dir

    dest = new_dataset_dir(root, name)          # refused before the (slower) reading
    splits = read_fashion_mnist(src)
    write_fashion_mnist(splits, dest)
    details = {"source": str(Path(src).expanduser() if src else FASHION_MNIST_DIR),
               "image_size": list(next(iter(splits.values()))[0].shape[1:]),
               **{split: len(labels) for split, (_, labels) in splits.items()}}
    return _version(root, dest, details)


# the Python standard library -----------------------------------------------------------------

def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(stdlib: Path, max_file_bytes: int = STDLIB_MAX_FILE_BYTES
                   ) -> tuple[list[tuple[str, str]], Counter]:
    """(relative path, text) of every *.py file under `stdlib`, sorted by path, and the
    count of files skipped for each reason. Skipped: installed packages (site-packages:
    not the standard library), test suites (a third of the sources, full of deliberately
    odd code, and shipped separately by distributions, so whether they exist depends on
    the machine), files that are not UTF-8, and files over `max_file_bytes`."""
    stdlib = Path(stdlib)
    if not stdlib.is_dir():
        raise GenloopError(f"standard-library folder {stdlib} does not exist.")
    skipped: Counter = Counter()
    paths = []
    for folder, dirs, files in os.walk(stdlib):
        for d in list(dirs):
            if d in STDLIB_SKIPPED_DIRS or d in STDLIB_TEST_DIRS:
                dirs.remove(d)
                if d in STDLIB_TEST_DIRS:
                    skipped["test-suite folders"] += 1
        paths += [Path(folder) / f for f in files if f.endswith(".py")]
    out = []
    for rel, path in sorted((p.relative_to(stdlib).as_posix(), p) for p in paths):
        if path.stat().st_size > max_file_bytes:
            skipped[f"files over {max_file_bytes} bytes"] += 1
            continue
        try:
            out.append((rel, path.read_bytes().decode("utf-8")))
        except UnicodeDecodeError:
            skipped["files not in UTF-8"] += 1
    return out, skipped


def stdlib_corpus(stdlib: Path | None = None, max_bytes: int | None = None,
                  max_file_bytes: int = STDLIB_MAX_FILE_BYTES) -> tuple[bytes, dict[str, Any]]:
    """The corpus (UTF-8 bytes) and what went into it. Each file is headed by a
    `# file: <path>` line; files are taken whole in path order until the next one would
    pass `max_bytes`, so a limit gives a prefix of the full corpus."""
    stdlib = Path(stdlib) if stdlib else stdlib_dir()
    if max_bytes is not None and max_bytes <= 0:
        raise GenloopError(f"--max-bytes must be > 0, got {max_bytes}.")
    sources, skipped = stdlib_sources(stdlib, max_file_bytes)
    parts, size = [], 0
    for i, (rel, text) in enumerate(sources):
        part = f"# file: {rel}\n{text}{'' if text.endswith(chr(10)) else chr(10)}\n".encode("utf-8")
        if max_bytes is not None and size + len(part) > max_bytes:
            skipped["files past --max-bytes"] = len(sources) - i
            break
        parts.append(part)
        size += len(part)
    if not parts:
        raise GenloopError(f"no Python sources taken from {stdlib} (skipped: {dict(skipped) or 'none found'}); "
                           f"check the folder or raise --max-bytes.")
    details = {"source": str(stdlib), "python": sys.version.split()[0], "source_files": len(parts),
               "bytes": size, "skipped": dict(sorted(skipped.items()))}
    return b"".join(parts), details


def import_python_stdlib(root: Path, name: str = "python-stdlib", stdlib: Path | None = None,
                         max_bytes: int | None = None) -> Imported:
    """Build data/NAME/corpus.txt from the standard library's sources and version data/."""
    from components.data.datasets import new_dataset_dir

    dest = new_dataset_dir(root, name)
    corpus, details = stdlib_corpus(stdlib, max_bytes)
    with atomic_dir(dest) as tmp:
        (tmp / "corpus.txt").write_bytes(corpus)
    return _version(root, dest, details)

