"""User datasets: `genloop data add` and `genloop data status`."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from components.atomic import atomic_dir
from components.data.hashing import folder_md5, folder_stats
from components.data.images import IMAGE_SUFFIXES
from components.errors import GenloopError
from components.paths import ProjectPaths

FLAT_CLASS = "all"          # images of a flat folder go to data/NAME/all/


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str
    md5: str
    files: int
    size: int
    in_remote: bool | None = None      # None: the remote is not a local folder


def _kind_of(src: Path) -> str:
    files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
    if not files:
        raise GenloopError(f"{src} holds no files; give an image folder or text files.")
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    texts = [p for p in files if p.suffix.lower() == ".txt"]
    if images and not texts:
        return "image"
    if texts and not images:
        return "text"
    raise GenloopError(f"{src} mixes images and text (or holds neither .png/.jpg nor .txt files); "
                       f"add images and text as separate datasets.")


def new_dataset_dir(root: Path, name: str) -> Path:
    """data/NAME for a new dataset: a plain folder name that is not taken yet (an existing
    dataset is never overwritten)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise GenloopError(f"--name {name!r} must be a plain folder name (letters, digits, -, _).")
    dest = ProjectPaths.at(root).data / name
    if dest.exists():
        raise GenloopError(f"data/{name} already exists; choose another --name (see `genloop data status`).")
    return dest


def stage_dataset(root: Path, src: Path, name: str) -> DatasetInfo:
    """Copy `src` into data/NAME (class sub-folders kept; a flat image folder becomes one
    class '{FLAT_CLASS}'); atomic, and an existing dataset is never overwritten."""
    src = Path(src).expanduser().resolve()
    if not src.exists():
        raise GenloopError(f"{src} does not exist.")
    dest = new_dataset_dir(root, name)
    kind = _kind_of(src)
    with atomic_dir(dest) as tmp:
        if src.is_file():
            shutil.copy2(src, tmp / src.name)
        elif kind == "image" and not any(p.is_dir() for p in src.iterdir()):
            shutil.copytree(src, tmp / FLAT_CLASS, dirs_exist_ok=True)
        else:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
    files, size = folder_stats(dest)
    return DatasetInfo(name, kind, folder_md5(dest), files, size)


def add_dataset(root: Path, src: Path, name: str) -> tuple[DatasetInfo, str]:
    """stage_dataset + `dvc add data` + push. Returns the dataset and data/'s new md5; if
    DVC fails, data/NAME is removed again so nothing half-versioned stays behind."""
    info = stage_dataset(root, src, name)
    return info, commit_new_dataset(root, name)


def commit_new_dataset(root: Path, name: str) -> str:
    """`dvc add data` + push after data/NAME was written; data/'s new md5. If DVC fails,
    data/NAME is removed again so nothing half-versioned stays behind."""
    from components.data.versioning import commit_data

    try:
        return commit_data(root)
    except BaseException:               # Ctrl-C during `dvc add` too
        shutil.rmtree(ProjectPaths.at(root).data / name, ignore_errors=True)
        raise


def _remote_dir(root: Path) -> Path | None:
    """The default DVC remote's folder when it is a local path (DVC's own config reader)."""
    from dvc.config import Config

    config = Config(dvc_dir=str(Path(root) / ".dvc"), validate=False)
    default = config["core"].get("remote")
    url = config["remote"].get(default, {}).get("url") if default else None
    if not url or "://" in url:
        return None
    return Path(url).resolve()


def dataset_status(root: Path) -> list[DatasetInfo]:
    """Each dataset under data/ with md5, files, size and whether the local remote holds
    every one of its files."""
    import hashlib

    root = Path(root)
    remote = _remote_dir(root)
    out = []
    data = ProjectPaths.at(root).data
    for folder in sorted(p for p in data.iterdir() if p.is_dir()) if data.is_dir() else []:
        files, size = folder_stats(folder)
        held = None
        if remote is not None:
            objects = remote / "files" / "md5"
            held = all((objects / (h := hashlib.md5(p.read_bytes()).hexdigest())[:2] / h[2:]).is_file()
                       for p in folder.rglob("*") if p.is_file())
        kind = "text" if any(folder.rglob("*.txt")) else "image"
        out.append(DatasetInfo(folder.name, kind, folder_md5(folder), files, size, held))
    return out
