"""DVC adapter: the only module that talks to DVC.

All DVC operations go through `dvc_lock` (DVC's own repo lock makes parallel commands
fail instead of waiting), and through the `dvc` command line, DVC's stable interface.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from components.data.embedded import write_embedded
from components.data.hashing import folder_md5, folder_stats
from components.errors import GenloopError
from components.paths import ProjectPaths

REMOTE_NAME = "local"
S3_REMOTE_NAME = "s3"       # selected by GENLOOP_DVC_REMOTE (components/storage.py)


def _remote_url(root: Path) -> str:
    """The local remote, relative to the repo root (DVC stores it relative to .dvc/)."""
    return ProjectPaths.at(root).dvc_remote.relative_to(Path(root).resolve()).as_posix()


@contextlib.contextmanager
def dvc_lock(root: Path):
    lock_path = ProjectPaths.at(root).dvc_lock
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _dvc(root: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise GenloopError(f"`dvc {' '.join(args)}` failed in {root}:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def ensure_repo(root: Path) -> None:
    """`dvc init` (inside git when there is one), a default local remote, and the S3 remote
    GENLOOP_DVC_REMOTE selects (checked reachable before anything is written)."""
    root = Path(root)
    if not (root / ".dvc").is_dir():
        _dvc(root, "init", "-q", *([] if (root / ".git").exists() else ["--no-scm"]))
    if REMOTE_NAME not in _dvc(root, "remote", "list"):
        _dvc(root, "remote", "add", "-d", REMOTE_NAME, _remote_url(root))
    select_remote(root)


def _local_config(root: Path) -> dict:
    """.dvc/config.local as DVC reads it (machine-local, ignored by git)."""
    from dvc.config import Config

    config = Config(dvc_dir=str(Path(root) / ".dvc"), validate=False)
    return config.load_one("local")


def select_remote(root: Path) -> None:
    """Make the S3 remote that GENLOOP_DVC_REMOTE names the default, in .dvc/config.local
    (per machine: the committed .dvc/config keeps the local-disk remote), with its endpoint
    from GENLOOP_S3_ENDPOINT_URL. Credentials are not written: DVC's S3 client reads the
    AWS_* environment variables itself. With the variable unset, the local remote is the
    default again."""
    from components.storage import check_bucket, dvc_remote

    root = Path(root)
    location = dvc_remote()
    local = _local_config(root)
    if location is None:
        if local.get("core", {}).get("remote") == S3_REMOTE_NAME:
            _dvc(root, "remote", "default", "--local", "--unset")
        return
    check_bucket(location)
    remote = local.get("remote", {}).get(S3_REMOTE_NAME, {})
    if remote.get("url") != location.url:
        _dvc(root, "remote", "add", "--local", "-f", S3_REMOTE_NAME, location.url)
        remote = {}
    if remote.get("endpointurl") != location.endpoint_url:
        if location.endpoint_url:
            _dvc(root, "remote", "modify", "--local", S3_REMOTE_NAME, "endpointurl", location.endpoint_url)
        else:
            _dvc(root, "remote", "modify", "--local", "--unset", S3_REMOTE_NAME, "endpointurl")
    if local.get("core", {}).get("remote") != S3_REMOTE_NAME:
        _dvc(root, "remote", "default", "--local", S3_REMOTE_NAME)


def _cache_files(root: Path) -> set[Path]:
    objects = Path(root) / ".dvc" / "cache" / "files"
    return {Path(d) / f for d, _, files in os.walk(objects) for f in files} if objects.is_dir() else set()


def _add_and_push(root: Path) -> None:
    """`dvc add data` + `dvc push`, all or nothing: if either fails (the remote went away
    mid-push, say), data.dvc is restored and the objects this add put in the DVC cache are
    removed, so a retry starts from where the last good version left off."""
    dvc_file = Path(root) / "data.dvc"
    before = dvc_file.read_bytes() if dvc_file.is_file() else None
    cached = _cache_files(root)
    try:
        _dvc(root, "add", "-q", "data")
        _dvc(root, "push", "-q", "data.dvc")
    except BaseException:
        if before is None:
            dvc_file.unlink(missing_ok=True)
        else:
            dvc_file.write_bytes(before)
        for path in _cache_files(root) - cached:
            path.unlink(missing_ok=True)
        raise


def recorded_md5(root: Path, dvc_file: str = "data.dvc") -> str | None:
    """The directory hash `data.dvc` records for data/, without the '.dir' suffix."""
    import yaml

    path = Path(root) / dvc_file
    if not path.is_file():
        return None
    outs = (yaml.safe_load(path.read_text()) or {}).get("outs") or [{}]
    md5 = outs[0].get("md5")
    return md5.removesuffix(".dir") if md5 else None


def git_revision(root: Path, path: str = "data.dvc") -> str | None:
    proc = subprocess.run(["git", "log", "-1", "--format=%H", "--", path], cwd=root,
                          capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


@dataclass(frozen=True)
class DataVersion:
    md5: str                 # DVC's hash of data/ (without '.dir')
    recorded_md5: str | None  # what data.dvc holds
    files: int
    size: int
    changed: dict[str, bool]  # embedded dataset -> rewritten

    @property
    def matches_dvc(self) -> bool:
        return self.md5 == self.recorded_md5


def init_data(root: Path) -> DataVersion:
    """Write the embedded datasets, version them with DVC and push to the default remote.

    A fresh clone rebuilds the same bytes, so data.dvc stays unchanged. When the bytes
    differ (another Python ships other pydoc topics, say) data.dvc is left alone and the
    caller is told through `matches_dvc`.
    """
    root = Path(root)
    with dvc_lock(root):
        data = ProjectPaths.at(root).data
        ensure_repo(root)                  # first: a bad S3 remote fails before data/ is touched
        changed = write_embedded(data)
        md5 = folder_md5(data)
        recorded = recorded_md5(root)
        if recorded is None or recorded == md5:
            _add_and_push(root)
            recorded = recorded_md5(root)
        files, size = folder_stats(data)
        return DataVersion(md5, recorded, files, size, changed)


def current_version(root: Path) -> DataVersion:
    """The version of data/ as it is on disk; an error that says what to run if absent."""
    root = Path(root)
    data = ProjectPaths.at(root).data
    if not data.is_dir() or not any(data.iterdir()):
        raise GenloopError(f"no data in {data}: run `genloop data init` first.")
    files, size = folder_stats(data)
    return DataVersion(folder_md5(data), recorded_md5(root), files, size, {})


def commit_data(root: Path) -> str:
    """`dvc add data` and push to the default remote; the new md5 of data/."""
    with dvc_lock(root):
        ensure_repo(root)
        _add_and_push(root)
        return recorded_md5(root) or ""


def md5_at_revision(root: Path, rev: str) -> tuple[str, str]:
    """(full git sha, data/ md5) that data.dvc recorded at git revision `rev`."""
    import yaml

    sha = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=root,
                         capture_output=True, text=True)
    if sha.returncode != 0:
        raise GenloopError(f"--data-rev {rev!r} is not a git revision of {root}; "
                           f"list candidates with `git log --oneline -- data.dvc`.")
    show = subprocess.run(["git", "show", f"{sha.stdout.strip()}:data.dvc"], cwd=root,
                          capture_output=True, text=True)
    if show.returncode != 0:
        raise GenloopError(f"data.dvc does not exist at git revision {rev}; pick a revision from "
                           f"`git log --oneline -- data.dvc`.")
    md5 = (yaml.safe_load(show.stdout).get("outs") or [{}])[0].get("md5", "")
    return sha.stdout.strip(), md5.removesuffix(".dir")


def materialize_revision(root: Path, rev: str) -> tuple[Path, str, str]:
    """Check out data/ as data.dvc had it at `rev` into .genloop/data-revs/<md5>
    (from the DVC cache, else the remote). Returns (folder, git sha, md5)."""
    from dvc.fs import DVCFileSystem

    from components.atomic import atomic_dir

    root = Path(root).resolve()
    sha, md5 = md5_at_revision(root, rev)
    dest = ProjectPaths.at(root).data_revision(md5)
    if dest.is_dir() and folder_md5(dest) == md5:
        return dest, sha, md5
    with dvc_lock(root):
        if dest.is_dir() and folder_md5(dest) == md5:     # another process (a sweep's worker) got it first
            return dest, sha, md5
        try:
            fs = DVCFileSystem(url=str(root), rev=sha)
            with atomic_dir(dest) as tmp:
                fs.get("data", str(tmp / "data"), recursive=True)
                for item in (tmp / "data").iterdir():
                    item.rename(tmp / item.name)
                (tmp / "data").rmdir()
        except GenloopError:
            raise
        except Exception as exc:
            raise GenloopError(f"could not fetch data/ at {rev} (md5 {md5}) from the DVC cache or "
                               f"remote: {exc}. Check `dvc remote list` and `dvc status -c`.") from None
    got = folder_md5(dest)
    if got != md5:
        raise GenloopError(f"data fetched for {rev} hashes to {got}, not {md5} as data.dvc says.")
    return dest, sha, md5


def _object(base: Path, md5: str) -> Path:
    return base / "files" / "md5" / md5[:2] / md5[2:]


def materialize_md5(root: Path, md5: str) -> Path:
    """data/ as DVC hashed it to `md5` (a model's recorded data md5), rebuilt into
    .genloop/data-revs/<md5> from the DVC cache, else from a local-folder remote.
    Nothing is written unless every file is found and the folder hashes to `md5`."""
    import shutil

    from components.atomic import atomic_dir
    from components.data.datasets import _remote_dir

    root = Path(root).resolve()
    dest = ProjectPaths.at(root).data_revision(md5)
    if dest.is_dir() and folder_md5(dest) == md5:
        return dest
    if (data := ProjectPaths.at(root).data).is_dir() and folder_md5(data) == md5:
        return data
    remote = _remote_dir(root) if (root / ".dvc").is_dir() else None
    stores = [root / ".dvc" / "cache"] + ([remote] if remote else [])
    manifest = next((p for s in stores if (p := _object(s, md5 + ".dir")).is_file()), None)
    if manifest is None:
        raise GenloopError(f"data version {md5} is in neither the DVC cache nor the local remote: it was "
                           f"never committed (`genloop data add` / `dvc add data && dvc push`), or the cache "
                           f"was cleared; `dvc pull` at the git revision that recorded it brings it back.")
    try:
        entries = json.loads(manifest.read_text())
    except ValueError:
        raise GenloopError(f"the DVC manifest {manifest} of data version {md5} is corrupt; "
                           f"`dvc pull` at the git revision that recorded it repairs it.") from None
    with dvc_lock(root), atomic_dir(dest) as tmp:
        for entry in entries:
            source = next((p for s in stores if (p := _object(s, entry["md5"])).is_file()), None)
            if source is None:
                raise GenloopError(f"file {entry['relpath']} ({entry['md5']}) of data version {md5} is "
                                   f"missing from the DVC cache and remote; `dvc pull` it first.")
            target = tmp / entry["relpath"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        got = folder_md5(tmp)
        if got != md5:
            raise GenloopError(f"data version {md5} rebuilt from the DVC cache hashes to {got}; the cache "
                               f"is damaged: `dvc cache dir`, then `dvc pull` to repair.")
    return dest
