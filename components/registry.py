"""BentoML adapter: the model store as champion/challenger registry, and bento builds.

BENTOML_HOME must be set before bentoml is first imported (entry points call
`configure_bentoml_home`); the default keeps the store inside the project, .genloop/bentoml.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

CHAMPION = "champion"


def configure_bentoml_home(root: Path) -> Path:
    os.environ.setdefault("BENTOML_HOME", str(Path(root).resolve() / ".genloop" / "bentoml"))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return Path(os.environ["BENTOML_HOME"])


def champion(name: str):
    """The newest model of `name` labelled stage=champion, or None."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name)
    except NotFound:
        return None
    champions = [m for m in models if m.info.labels.get("stage") == CHAMPION]
    return max(champions, key=lambda m: m.creation_time) if champions else None


def champion_summary(name: str) -> dict | None:
    model = champion(name)
    if model is None:
        return None
    return {"tag": str(model.tag), "metadata": dict(model.info.metadata), "path": model.path}


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

    metadata = _storable(metadata)
    with bentoml.models.create(name, labels=labels, metadata=metadata) as model:
        for dest, src in files.items():
            src = Path(src)
            if src.is_dir():
                shutil.copytree(src, Path(model.path) / dest)
            else:
                shutil.copy2(src, Path(model.path) / dest)
    return str(model.tag)


def build_bento(model_tag: str, modality: str, ctx: Path) -> str:
    """Stage deploy/ plus the components package into `ctx` and build a bento from it."""
    import bentoml

    import components

    source = Path(components.__file__).resolve().parent
    ctx = Path(ctx)
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(source.parent / "deploy", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(source, ctx / "components",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (ctx / "genloop_model.json").write_text(json.dumps({"tag": model_tag, "modality": modality}))
    bento = bentoml.bentos.build_bentofile(str(ctx / "bentofile.yaml"), build_ctx=str(ctx),
                                           labels={"model": model_tag.replace(":", "-")})
    return str(bento.tag)


def latest_bento(model_name: str | None = None):
    """The newest bento (optionally the one serving a model of `model_name`)."""
    import bentoml

    bentos = bentoml.bentos.list()
    if model_name:
        bentos = [b for b in bentos if b.info.labels.get("model", "").startswith(model_name + "-")]
    return max(bentos, key=lambda b: b.creation_time) if bentos else None
