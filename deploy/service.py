"""BentoML service for a genloop generator: POST /generate.

Image models answer with base64 PNGs, text models with continuations of a prompt; every
response carries provenance (model tag, dataset md5, seed) and every generation is
logged with bentoml.monitor for drift monitoring. Imports only what sampling needs.
"""
from __future__ import annotations

import base64
import io
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import bentoml
from bentoml.exceptions import InvalidArgument
from pydantic import Field

HERE = Path(__file__).resolve().parent
SPEC = json.loads((HERE / "genloop_model.json").read_text())
MONITOR_DIR = os.environ.get("GENLOOP_MONITOR_DIR", str(HERE / "monitoring"))
# GENLOOP_FOLLOW=1 (`genloop serve --follow`): move to a newly promoted champion of this
# model name (the alias file beside the model store) without restarting; checked at most
# every FOLLOW_EVERY seconds, loaded before it is swapped in, so no request fails.
FOLLOW = os.environ.get("GENLOOP_FOLLOW", "") == "1"
FOLLOW_EVERY = float(os.environ.get("GENLOOP_FOLLOW_EVERY", "2"))


def _png(image_uint8) -> str:
    from PIL import Image

    array = image_uint8.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@bentoml.service(name="genloop_generator", traffic={"timeout": 120})
class Generator:
    model_ref = bentoml.models.BentoModel(SPEC["tag"])

    def __init__(self) -> None:
        self.name = SPEC["tag"].split(":")[0]
        self._lock, self._checked, self._seen = threading.Lock(), 0.0, None
        self._load(self.model_ref)

    def _load(self, stored) -> None:
        from components.models.io import load_checkpoint

        model, _ = load_checkpoint(Path(stored.path) / "checkpoint")
        meta = stored.info.metadata
        # one assignment: a request reads either the old model or the new one
        self.current = (model, list(meta.get("class_names") or []), meta.get("trained_classes"),
                        {"model_tag": str(stored.tag), "dataset_md5": meta.get("dataset_md5"),
                         "data_md5": meta.get("data_md5"), "git_sha": meta.get("git_sha")})

    def _follow(self) -> None:
        """Swap in the champion the alias names, if it moved (errors keep the old model)."""
        now = time.monotonic()
        if not FOLLOW or now - self._checked < FOLLOW_EVERY or not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = now
            from bentoml._internal.configuration.containers import BentoMLContainer

            aliases = Path(BentoMLContainer.bentoml_home.get()) / "genloop-champions.json"
            stamp = aliases.stat().st_mtime_ns if aliases.is_file() else None
            if stamp == self._seen:
                return
            tag = (json.loads(aliases.read_text()).get(self.name) or {}).get("champion")
            if tag and tag != self.current[3]["model_tag"]:
                self._load(bentoml.models.get(tag))
                print(f"genloop: now serving champion {tag}", flush=True)
            self._seen = stamp             # only once loaded: a failed load is retried
        except Exception as exc:                   # a half-promoted model must not take serving down
            print(f"genloop: could not follow the champion alias: {exc}", flush=True)
        finally:
            self._lock.release()

    def _log(self, rows: list[dict], model_tag: str) -> None:
        with bentoml.monitor("genloop_generations", monitor_class="default",
                             monitor_options={"log_path": MONITOR_DIR}) as mon:
            for row in rows:
                for key, value in {**row, "model_tag": model_tag}.items():
                    kind = "categorical" if isinstance(value, str) else "numerical"
                    role = "prediction" if key != "prompt_chars" else "feature"
                    mon.log(value, name=key, role=role, data_type=kind)

    @bentoml.api
    def generate(self,
                 n: Annotated[int, Field(ge=1, le=64)] = 1,
                 seed: Optional[int] = None,
                 label: Optional[str] = None,
                 prompt: str = "",
                 max_new_tokens: Annotated[int, Field(ge=1, le=2000)] = 200,
                 temperature: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0,
                 top_k: Annotated[int, Field(ge=0, le=256)] = 0,
                 top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0) -> dict:
        """Generate n images (optionally of class `label`; `temperature` scales the latent
        noise) or n continuations of `prompt`."""
        seed = int(seed) if seed is not None else secrets.randbelow(2**31)
        self._follow()
        model, class_names, trained, provenance = self.current
        if model.modality == "image":
            from components.data.images import to_uint8
            from components.models.base import request_labels
            from components.monitoring.features import image_features

            try:
                labels = request_labels(n, seed, label, class_names, trained)
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from None
            images, indices = model.sample(n, seed, labels=labels, temperature=temperature)
            images = to_uint8(images)
            names = [class_names[i] if class_names else str(i) for i in indices.tolist()]
            self._log(image_features(images, names), provenance["model_tag"])
            return {"images": [_png(img) for img in images], "labels": names, "format": "png/base64",
                    "seed": seed, **provenance}
        from components.monitoring.features import text_features

        texts = model.sample(n, seed, prompt=prompt, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_k=top_k, top_p=top_p)
        self._log([text_features(prompt, t) for t in texts], provenance["model_tag"])
        return {"texts": texts, "prompt": prompt, "seed": seed, **provenance}
