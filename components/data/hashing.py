"""Content hashes of dataset folders (stable across machines: relative paths + bytes)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def folder_md5(path: Path) -> str:
    """md5 over the sorted (relative path, file md5) list, like DVC's directory hash."""
    path = Path(path)
    if path.is_file():
        return hashlib.md5(path.read_bytes()).hexdigest()
    entries = [{"md5": hashlib.md5(p.read_bytes()).hexdigest(), "relpath": p.relative_to(path).as_posix()}
               for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def folder_stats(path: Path) -> tuple[int, int]:
    """(file count, total bytes)."""
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)
