"""The framework's ceiling for benchmarks/serving_load.py: a BentoML service whose one API
takes the same JSON as genloop's POST /generate (so request parsing and validation cost
the same) and returns a constant dict about the size of an image n=1 response (~460 bytes:
one 8x8 PNG in base64 plus provenance), with no model, no sampling and no monitoring.

Served the way the genloop service is: `bentoml serve trivial_service:Trivial` (cwd this
folder). TRIVIAL_SERVICE_CONFIG (JSON: the genloop service's `workers`, `threads` and
`traffic` settings, which serving_load.py reads from the service it benchmarks) makes both
run with the same worker and thread counts; unset, BentoML's defaults (1 worker).
TRIVIAL_ASYNC=1 makes the API a coroutine (as the genloop service's /generate may be).
"""
from __future__ import annotations

import functools
import json
import os
from typing import Annotated, Optional

import bentoml
from pydantic import Field

CONFIG = {key: value for key, value in json.loads(os.environ.get("TRIVIAL_SERVICE_CONFIG") or "{}").items()
          if key in ("workers", "threads", "traffic")}
ASYNC = os.environ.get("TRIVIAL_ASYNC", "") == "1"
# what an 8x8 grey DCGAN image n=1 response carries, byte for byte about the same size
REPLY = {"images": ["iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAU0lEQVR4nAFIALf/AAEHnvLxiQ0CAv8Uw6H5UPcC"
                    "AAQCBDHyrAQPAv3/C00ECyL2AAIRxv30al8BAAMKv/pUAwEAAAIEs+oBAAACAv8ADZ0AAAD/nXIXSK0Z"
                    "lsgAAAAASUVORK5CYII="],
         "labels": ["7"], "format": "png/base64", "model_tag": "trivial:constant",
         "dataset_md5": "b54786453a13bd0a6c9609f875f1190d", "data_md5": "652afcc8d6d4dfb324749d73718edd5e",
         "git_sha": "eb7fcfd6bb8941f62190e40c676078c46ed8202b"}


def generate(self,
             n: Annotated[int, Field(ge=1, le=64)] = 1,
             seed: Optional[int] = None,
             label: Optional[str] = None,
             prompt: str = "",
             max_new_tokens: Annotated[int, Field(ge=1, le=2000)] = 200,
             temperature: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0,
             top_k: Annotated[int, Field(ge=0, le=256)] = 0,
             top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0) -> dict:
    """A constant reply: what BentoML costs per request, with nothing behind it."""
    return {**REPLY, "seed": 0 if seed is None else seed}


@functools.wraps(generate)
async def generate_async(self, *args, **kwargs) -> dict:
    return generate(self, *args, **kwargs)


@bentoml.service(name="trivial", **({"traffic": {"timeout": 120}} | CONFIG))
class Trivial:
    generate = bentoml.api(generate_async if ASYNC else generate)
