"""BentoML adapter: the model store as champion/challenger registry, and bento builds.

The champion of a model name is an explicit alias (`genloop-champions.json` beside the model
store, written atomically under a lock), never "the newest model": promotion saves the
model, builds its bento, and only then moves the alias, so a failed build leaves the old
champion in place. BENTOML_HOME must be set before bentoml is first used (entry points call
`configure_bentoml_home`); the default keeps the store inside the project, .genloop/bentoml.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from components.errors import GenloopError
from components.paths import ProjectPaths

# What the service imports at run time (deploy/service.py and the components it loads);
# each is pinned in the bento at the version constraints.txt freezes (torch, which
# constraints.txt leaves to the machine, at the installed release). bentoml adds itself.
SERVICE_PACKAGES = ("torch", "safetensors", "numpy", "pillow", "pydantic", "vaderSentiment", "orjson")


def configure_bentoml_home(root: Path) -> Path:
    os.environ.setdefault("BENTOML_HOME", str(ProjectPaths.at(root).bentoml_home))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return Path(os.environ["BENTOML_HOME"])


def _aliases_path() -> Path:
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get()) / "genloop-champions.json"


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@contextlib.contextmanager
def _aliases():
    """The alias table, locked for a read-modify-write; written atomically on exit."""
    path = _aliases_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = _read(path)
        yield table
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=2))
        tmp.replace(path)


def _alias(name: str) -> dict:
    return _read(_aliases_path()).get(name, {"champion": None, "history": []})


def champion_tag(name: str) -> str | None:
    return _alias(name)["champion"]


def champion_history(name: str) -> list[dict]:
    """Every tag the alias pointed at, oldest first: [{"tag", "since"}]."""
    return _alias(name)["history"]


@dataclass(frozen=True)
class StoredModel:
    tag: str
    metadata: dict
    labels: dict
    path: Path


def _stored(model) -> StoredModel:
    return StoredModel(str(model.tag), dict(model.info.metadata), dict(model.info.labels), Path(model.path))


def get_model(tag: str) -> StoredModel:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return _stored(bentoml.models.get(tag))
    except NotFound:
        raise GenloopError(f"model {tag} is not in the model store ({os.environ.get('BENTOML_HOME')}); "
                           f"list models with `bentoml models list`.") from None


def champion_summary(name: str) -> StoredModel | None:
    """The model the champion alias of `name` points at, or None when there is none."""
    tag = champion_tag(name)
    if tag is None:
        return None
    return get_model(tag)


def model_names() -> list[str]:
    """Names with a champion."""
    return sorted(_read(_aliases_path()))


KEEP = object()     # set_champion's `expect` default: move the alias whatever it points at


def set_champion(name: str, tag: str, expect=KEEP) -> None:
    """Point the champion alias of `name` at the stored model `tag` (also a rollback).
    With `expect` (a tag, or None for "no champion"), move it only if it still points
    there: a run gated against one champion must not replace another."""
    model = get_model(tag)
    if model.tag.split(":")[0] != name:
        raise GenloopError(f"{tag} is a model of {model.tag.split(':')[0]!r}, not of {name!r}.")
    if "scorecard" not in model.metadata:
        raise GenloopError(f"{tag} has no gate scorecard (packaged by an older genloop); the gate could not "
                           f"compare with it. Promote a model trained with this version instead.")
    with _aliases() as table:
        entry = table.setdefault(name, {"champion": None, "history": []})
        if expect is not KEEP and entry["champion"] != expect:
            raise GenloopError(f"the champion of {name} changed to {entry['champion']} while this run was "
                               f"gated against {expect or 'no champion'}; nothing promoted. Rerun to "
                               f"compare with the new champion.")
        entry["champion"] = model.tag
        entry["history"].append({"tag": model.tag, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _storable(value):
    """BentoML metadata takes basic types only: drop None, stringify the rest."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value if v is not None]
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def save_model(name: str, files: dict[str, Path], labels: dict[str, str], metadata: dict) -> str:
    """Copy `files` (name in model -> source path, file or dir) into a new stored model."""
    import bentoml

    with bentoml.models.create(name, labels=labels, metadata=_storable(metadata)) as model:
        for dest, src in files.items():
            src = Path(src)
            if src.is_dir():
                shutil.copytree(src, Path(model.path) / dest)
            else:
                shutil.copy2(src, Path(model.path) / dest)
    return str(model.tag)


def promote(name: str, files: dict[str, Path], labels: dict[str, str], metadata: dict,
            bento_dir: Path | None, replaces: str | None) -> tuple[str, str | None]:
    """Save the model, build its bento (unless `bento_dir` is None), then make it the
    champion in place of `replaces` (the champion the gate compared with). On any failure
    the new model and bento are deleted and the champion stays as it was."""
    import bentoml

    tag, bento = save_model(name, files, labels, metadata), None
    try:
        serving = (metadata.get("config") or {}).get("serving")
        bento = build_bento(tag, name, metadata["modality"], bento_dir, serving) if bento_dir else None
        set_champion(name, tag, expect=replaces)
    except BaseException:
        with contextlib.suppress(Exception):       # the original error is the one to see
            if bento:
                bentoml.bentos.delete(bento)
            bentoml.models.delete(tag)
        raise
    return tag, bento


def pinned_packages(constraints: Path) -> list[str]:
    """SERVICE_PACKAGES pinned as constraints.txt freezes them (torch as installed, without
    a local build suffix such as +cpu)."""
    from importlib.metadata import version

    pins = {}
    for line in constraints.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            package, pinned = line.split("==", 1)
            pins[package.strip().lower()] = pinned.split(";")[0].strip()
    pins.setdefault("torch", version("torch").split("+")[0])
    missing = [p for p in SERVICE_PACKAGES if p.lower() not in pins]
    if missing:
        raise GenloopError(f"{constraints} pins none of {missing}; regenerate it with `pip freeze`.")
    return [f"{p}=={pins[p.lower()]}" for p in SERVICE_PACKAGES]


def build_bento(model_tag: str, name: str, modality: str, ctx: Path, serving: dict | None = None) -> str:
    """Stage deploy/ plus the components package into `ctx` and build a bento from it that
    declares its Python packages (pinned), so it serves in a fresh environment. `serving`
    (the config's serving section: batching and request limits) goes into genloop_model.json."""
    import bentoml
    import yaml

    import components

    source = Path(components.__file__).resolve().parent
    ctx = Path(ctx)
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(source.parent / "deploy", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(source, ctx / "components", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (ctx / "genloop_model.json").write_text(json.dumps({"tag": model_tag, "modality": modality,
                                                                "serving": serving or {}}))
    bentofile = yaml.safe_load((ctx / "bentofile.yaml").read_text())
    bentofile["python"]["packages"] = pinned_packages(source.parent / "constraints.txt")
    (ctx / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False))
    # BentoML imports the service module by name and reuses a cached one: a second build in
    # this process (retraining deployments, tests) would get the first bento's model tag
    sys.modules.pop("service", None)
    bento = bentoml.bentos.build_bentofile(str(ctx / "bentofile.yaml"), build_ctx=str(ctx),
                                           labels={"model": model_tag.replace(":", "-"), "model_name": name})
    return str(bento.tag)


def champion_bento(name: str):
    """The bento built for the champion of `name` (exact name), or a clear error."""
    import bentoml

    tag = champion_tag(name)
    if tag is None:
        known = ", ".join(model_names()) or "none yet"
        raise GenloopError(f"no champion named {name!r} (models with a champion: {known}); "
                           f"run `genloop run --config configs/<name>.yaml` to train and promote one.")
    label = tag.replace(":", "-")
    bentos = [b for b in bentoml.bentos.list() if b.info.labels.get("model") == label]
    if not bentos:
        raise GenloopError(f"the champion {tag} has no bento (trained with `package: false`?); "
                           f"rerun with package: true.")
    return max(bentos, key=lambda b: b.creation_time)


def export_bento(tag: str, url: str | None = None) -> str:
    """Export bento `tag` to object storage (`url`, else GENLOOP_BENTO_EXPORT_URL) as
    s3://BUCKET/PREFIX/NAME-VERSION.bento, through BentoML's own exporter (fsspec/s3fs, as
    `bentoml export TAG s3://...` does) with the endpoint of GENLOOP_S3_ENDPOINT_URL.
    Credentials come from the AWS_* environment only. Returns the object's URL."""
    import bentoml
    from bentoml.exceptions import NotFound

    from components.storage import BENTO_EXPORT_ENV, bento_export_location, check_bucket, endpoint_url, \
        parse_s3_url, s3fs_endpoint

    location = parse_s3_url(url, endpoint_url(), "bento export URL") if url else bento_export_location()
    if location is None:
        raise GenloopError(f"no export location: pass s3://BUCKET/PREFIX or set {BENTO_EXPORT_ENV}.")
    try:
        bento = bentoml.bentos.get(tag)
    except NotFound:
        raise GenloopError(f"no bento {tag!r} in the store; `bentoml list` shows what there is.") from None
    check_bucket(location)
    target = f"{location.url}/{bento.tag.name}-{bento.tag.version}.bento"
    with s3fs_endpoint(location):
        bentoml.bentos.export_bento(bento.tag, target)
    return target


def import_bento(url: str) -> str:
    """Import a bento exported by `export_bento` (s3://.../NAME-VERSION.bento) into the local
    bento store; the bucket is checked first, so a bad endpoint, credentials or bucket leave
    the store untouched. Returns the bento's tag."""
    import bentoml

    from components.storage import check_bucket, endpoint_url, parse_s3_url, s3fs_endpoint

    location = parse_s3_url(url, endpoint_url(), "bento URL")
    check_bucket(location)
    with s3fs_endpoint(location):
        try:
            return str(bentoml.bentos.import_bento(location.url).tag)
        except FileNotFoundError:
            raise GenloopError(f"no bento at {location.where()}; list the bucket to see what was exported.") from None
