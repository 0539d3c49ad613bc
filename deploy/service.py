"""BentoML service for a genloop generator.

POST /generate          n images (base64 PNGs) or n continuations of a prompt, as JSON
POST /generate_stream   text models: the continuations as server-sent events, token by token
POST /generate_png      image models: the images as one PNG (a grid when n > 1)

Requests in flight share batched forwards (components/serving/engine.py: adaptive batching
for images, continuous batching for text); each request gets what it would get alone for its
seed. Every response carries provenance (model tag, dataset md5, seed), every generation is
logged in bentoml.monitor's format for drift monitoring, and genloop's counters are on /metrics.
Bearer tokens (GENLOOP_API_TOKENS / GENLOOP_API_TOKENS_FILE) guard everything but the probes,
/metrics and the docs. Imports only what sampling needs.
"""
from __future__ import annotations

import asyncio
import base64
import codecs
import collections
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import bentoml
import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from components.serving.guard import GenloopGuard, load_tokens
from components.serving.limits import ServingConfig
from components.serving.png import encode_pngs
from components.serving.servelog import ServingLog

if TYPE_CHECKING:                        # torch is imported when the model loads, not here
    from components.serving.slot import Served

HERE = Path(__file__).resolve().parent
SPEC = json.loads((HERE / "genloop_model.json").read_text())
MONITOR_DIR = os.environ.get("GENLOOP_MONITOR_DIR", str(HERE / "monitoring"))
# GENLOOP_FOLLOW=1 (`genloop serve --follow`): move to a newly promoted champion of this
# model name (the alias file beside the model store) without restarting; checked every
# FOLLOW_EVERY seconds by a background thread, loaded before it is swapped in, so no request
# fails (requests already taken finish on the old model).
FOLLOW = os.environ.get("GENLOOP_FOLLOW", "") == "1"
FOLLOW_EVERY = float(os.environ.get("GENLOOP_FOLLOW_EVERY", "2"))
LIMITS = ServingConfig.resolve(SPEC.get("serving"), os.environ)
TOKENS = load_tokens(os.environ)
# the engine's thread gets the GIL back from a busy event loop within this (limits.py says
# why): 0.5 ms against Python's 5 ms gave 2-3x the image requests/s under load (BENCHMARKS.md)
sys.setswitchinterval(LIMITS.switch_interval_ms / 1000.0)
SEED_MAX = 2**63 - 1
ROLES = {"prompt_chars": "feature"}         # serving-log columns' roles; the others: prediction


class _Seeds:
    """Seeds for requests that give none, from the OS's random bytes read 4 KiB at a time
    (an os.urandom call per request was 5% of the event loop under load). Not a seeded
    generator: every drawn seed is returned, and a Mersenne Twister's next outputs can be
    worked out from enough of them, which would let one client reproduce another's output."""

    def __init__(self, batch: int = 1024):
        self.batch, self.buffer, self.at = batch, b"", 0

    def draw(self) -> int:
        if self.at >= len(self.buffer):
            self.buffer, self.at = os.urandom(4 * self.batch), 0
        value = int.from_bytes(self.buffer[self.at:self.at + 4], "little") & 0x7FFFFFFF
        self.at += 4
        return value


_SEEDS = _Seeds()        # used on the event loop's thread only


def _seed(r: "GenerateRequest") -> int:
    """The request's seed, or one drawn (and returned in the response) when it gives none."""
    return r.seed if r.seed is not None else _SEEDS.draw()


class GenerateRequest(BaseModel):
    """One request. Strict: no unknown fields (a misspelt control is an error, not ignored),
    no strings for numbers, no NaN or infinity."""
    model_config = ConfigDict(extra="forbid", strict=True)

    n: int = Field(1, ge=1, le=LIMITS.max_n, description="images or continuations to generate")
    seed: Optional[int] = Field(None, ge=0, le=SEED_MAX, description="same seed, same output; none: drawn")
    label: Optional[str] = Field(None, max_length=LIMITS.max_label_chars,
                                 description="image models: the class to generate")
    prompt: str = Field("", max_length=LIMITS.max_prompt_chars, description="text models: the prompt")
    max_new_tokens: int = Field(200, ge=1, le=LIMITS.max_new_tokens, description="text models")
    temperature: float = Field(1.0, gt=0.0, le=10.0, allow_inf_nan=False,
                               description="text: softmax temperature; images: scales the latent noise")
    top_k: int = Field(0, ge=0, le=256, description="text models: keep the k likeliest bytes (0: all)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False, description="text models: nucleus")


class BadRequest(ValueError):
    """A request the model cannot answer (a label it has no class for, the wrong endpoint for
    its modality): HTTP 400 with {"error": reason}."""


class LogUnwritable(RuntimeError):
    """The serving log could not take a request's rows (a full disk): HTTP 507, the request
    is not answered, so no generation goes unlogged."""


class _JSON(JSONResponse):
    """starlette's JSONResponse (compact UTF-8 JSON) rendered by orjson: an images n=16
    answer's 3.4 KB took 13-20 us through the standard library's json.dumps, ~2 us here."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _bad(exc: BadRequest) -> JSONResponse:
    return _JSON({"error": str(exc)}, status_code=400)


def _unlogged(exc: LogUnwritable) -> JSONResponse:
    return _JSON({"error": str(exc)}, status_code=507)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


@bentoml.service(name="genloop_generator", traffic={"timeout": 120})
class Generator:
    model_ref = bentoml.models.BentoModel(SPEC["tag"])

    def __init__(self) -> None:
        from components.serving.engine import describe
        from components.serving.metrics import shared
        from components.serving.slot import ModelSlot

        self.name = SPEC["tag"].split(":")[0]
        self.metrics = shared()
        self._counters: dict = {}          # (model tag, label) -> its generations counter
        self.serving_log = ServingLog(MONITOR_DIR).open()        # an unwritable folder fails here
        if TOKENS:
            print(f"genloop: API guarded by {len(TOKENS)} bearer token(s)", flush=True)
        else:
            print("genloop: no API token configured: /generate is open to anyone who can reach this "
                  "port (set GENLOOP_API_TOKENS or GENLOOP_API_TOKENS_FILE)", flush=True)
        # the torch threads of this (the event loop's) thread and of a swap's load: slot.py
        self.slot = ModelSlot(self._load)
        self.slot.start(self.model_ref)
        print(f"genloop: serving {self.current.provenance['model_tag']} ({self.current.model.modality}); "
              f"max_batch_size {LIMITS.max_batch_size}, {describe(self.current.engine, LIMITS)}", flush=True)
        if FOLLOW:
            threading.Thread(target=self._follow_loop, name="genloop-follow", daemon=True).start()

    @property
    def current(self):
        return self.slot.current

    def _load(self, stored):
        from components.serving.slot import load_served

        return load_served(stored.path, stored.tag, stored.info.metadata, LIMITS, self.metrics.observe_batch)

    # hot swap ------------------------------------------------------------------------------

    def _follow_loop(self) -> None:
        seen = None
        while True:
            time.sleep(FOLLOW_EVERY)
            try:
                seen = self._follow(seen)
            except Exception as exc:               # a half-promoted model must not take serving down
                print(f"genloop: could not follow the champion alias: {exc}", flush=True)

    def _follow(self, seen):
        """Swap in the champion the alias names if it moved; returns the alias file's stamp
        once handled (a failed load raises and is retried on the next check)."""
        from bentoml._internal.configuration.containers import BentoMLContainer

        from components.serving.engine import describe

        aliases = Path(BentoMLContainer.bentoml_home.get()) / "genloop-champions.json"
        stamp = aliases.stat().st_mtime_ns if aliases.is_file() else None
        if stamp == seen:
            return seen
        tag = (json.loads(aliases.read_text()).get(self.name) or {}).get("champion")
        if tag and tag != self.current.provenance["model_tag"]:
            # loaded on a thread that ends with the load; requests the old model took finish on it
            self.slot.swap(bentoml.models.get(tag), lambda new: print(
                f"genloop: now serving champion {tag}; {describe(new.engine, LIMITS)}", flush=True))
        return stamp

    def _submit(self, submit):
        """(served, job): `submit` on the current model's engine (slot.ModelSlot.submit)."""
        from components.serving.slot import SwapInProgress

        try:
            return self.slot.submit(submit)
        except SwapInProgress as exc:
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from None

    # requests ------------------------------------------------------------------------------

    def _labels(self, served: Served, n: int, seed: int, label: Optional[str]):
        from components.models.base import request_labels

        try:
            return request_labels(n, seed, label, served.class_names, served.trained)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def _log(self, rows: list[dict], model_tag: str) -> None:
        """One serving-log row per generated item (the columns of components/monitoring/
        features.py and the model tag), in bentoml.monitor's format (servelog.py says why
        not through it)."""
        try:
            self.serving_log.write([{**row, "model_tag": model_tag} for row in rows], ROLES)
        except OSError as exc:
            raise LogUnwritable(f"the generation could not be written to the serving log ({exc.strerror or exc}) "
                                f"and was not answered; the operator must free or fix GENLOOP_MONITOR_DIR") from None

    def _count(self, model_tag: str, labels: list[str]) -> None:
        counters = self._counters          # prometheus' labels() takes a lock and checks the names per call
        for label, count in (((labels[0], 1),) if len(labels) == 1 else collections.Counter(labels).items()):
            counter = counters.get((model_tag, label))
            if counter is None:
                counter = counters[(model_tag, label)] = self.metrics.generations.labels(model_tag=model_tag,
                                                                                         label=label)
            counter.inc(count)

    async def _images(self, r: GenerateRequest, seed: int):
        def submit(served: Served):
            if served.model.modality != "image":
                raise BadRequest("this is a text model: use /generate or /generate_stream")
            labels = self._labels(served, r.n, seed, r.label)
            return served.engine.submit(r.n, seed, labels, r.temperature)

        served, job = self._submit(submit)
        # the loop engine gives an asyncio future, the thread engine a job with a thread's future
        result = await (job if isinstance(job, asyncio.Future) else asyncio.wrap_future(job.future))
        names = [served.class_names[i] if served.class_names else str(i) for i in result.indices]
        return served, result, names

    def _log_images(self, served: Served, result, names: list[str]) -> None:
        from components.monitoring.features import image_features

        tag = served.provenance["model_tag"]
        self._log(image_features(result.images, names, result.stats), tag)
        self._count(tag, names)

    def _text_job(self, r: GenerateRequest, seed: int, on_tokens=None):
        def submit(served: Served):
            if served.model.modality != "text":
                raise BadRequest("this is an image model: use /generate or /generate_png")
            return served.engine.submit(r.n, seed, r.prompt, r.max_new_tokens, r.temperature, r.top_k,
                                        r.top_p, on_tokens)

        return self._submit(submit)

    def _log_texts(self, served: Served, prompt: str, texts: list[str], tokens: int) -> None:
        from components.monitoring.features import text_features

        tag = served.provenance["model_tag"]
        self._log([text_features(prompt, t) for t in texts], tag)
        self._count(tag, ["none"] * len(texts))
        self.metrics.tokens.labels(model_tag=tag).inc(tokens)

    @bentoml.api(input_spec=GenerateRequest)
    async def generate(self, **request) -> dict:      # -> dict for the API docs; a JSONResponse
        """Generate n images (optionally of class `label`; `temperature` scales the latent
        noise) or n continuations of `prompt`."""
        r = GenerateRequest.model_construct(**request)
        seed = _seed(r)
        try:
            # rendered here: BentoML would build the output's JSON schema per response to
            # find its media type (a tenth of an image request's time under load)
            return _JSON(await self._generate(r, seed))
        except BadRequest as exc:
            return _bad(exc)
        except LogUnwritable as exc:
            return _unlogged(exc)

    async def _generate(self, r: GenerateRequest, seed: int):
        if self.current.model.modality == "image":
            served, result, names = await self._images(r, seed)
            self._log_images(served, result, names)
            pngs = [base64.b64encode(png).decode() for png in encode_pngs(result.images)]
            return {"images": pngs, "labels": names, "format": "png/base64", "seed": seed, **served.provenance}
        served, job = self._text_job(r, seed)
        try:
            texts = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:              # the request timed out or its client left
            job.cancel()
            raise
        self._log_texts(served, r.prompt, texts, job.produced * job.n)
        return {"texts": texts, "prompt": r.prompt, "seed": seed, **served.provenance}

    @bentoml.api(input_spec=GenerateRequest)
    async def generate_png(self, **request):
        """Image models: the n images as one PNG (n > 1: a grid, 8 a row); the labels, seed
        and model tag in X-Genloop-* headers."""
        from components.report import grid_png

        r = GenerateRequest.model_construct(**request)
        seed = _seed(r)
        try:
            served, result, names = await self._images(r, seed)
        except BadRequest as exc:
            return _bad(exc)
        try:
            self._log_images(served, result, names)
        except LogUnwritable as exc:
            return _unlogged(exc)
        body = encode_pngs(result.images)[0] if r.n == 1 else grid_png(result.images, columns=min(8, r.n), scale=1)
        return Response(body, media_type="image/png", headers={
            "X-Genloop-Model-Tag": served.provenance["model_tag"], "X-Genloop-Seed": str(seed),
            "X-Genloop-Labels": ",".join(names)})

    @bentoml.api(input_spec=GenerateRequest)
    async def generate_stream(self, **request):
        """Text models: server-sent events as tokens are generated, `data: {"texts": [new
        text of each row]}`, then `data: {"done": true, "texts": [...], "seed": ..., model
        provenance}`. A client that goes away stops its generation."""
        r = GenerateRequest.model_construct(**request)
        seed = _seed(r)
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        started = time.perf_counter()

        def on_tokens(job, tokens: list[int]) -> None:      # the engine's thread
            loop.call_soon_threadsafe(queue.put_nowait, tokens)

        try:
            served, job = self._text_job(r, seed, on_tokens)
        except BadRequest as exc:
            return _bad(exc)
        job.future.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
        tag = served.provenance["model_tag"]

        async def events():
            decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in range(r.n)]
            first = True
            try:
                while (tokens := await queue.get()) is not None:
                    if first:
                        self.metrics.first_token.labels(model_tag=tag).observe(time.perf_counter() - started)
                        first = False
                    yield _sse({"texts": [d.decode(bytes([t])) for d, t in zip(decoders, tokens)]})
                tails = [d.decode(b"", final=True) for d in decoders]    # a character cut at the end
                if any(tails):
                    yield _sse({"texts": tails})
                try:
                    texts = job.future.result()
                except Exception as exc:            # the model failed mid-stream: say so, then end
                    yield _sse({"error": f"generation failed: {exc.__class__.__name__}"})
                    return
                try:
                    self._log_texts(served, r.prompt, texts, job.produced * job.n)
                except LogUnwritable as exc:        # the texts were streamed; the end says so
                    yield _sse({"error": str(exc)})
                    return
                yield _sse({"done": True, "texts": texts, "prompt": r.prompt, "seed": seed, **served.provenance})
            finally:
                job.cancel()                  # the client went away (or the stream ended): stop decoding

        return StreamingResponse(events(), media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Genloop-Model-Tag": tag, "X-Genloop-Seed": str(seed)})


def _count_error(status: int, endpoint: str) -> None:
    from components.serving.metrics import shared

    shared().error(status, endpoint)


Generator.add_asgi_middleware(GenloopGuard, tokens=TOKENS, max_body_bytes=LIMITS.max_body_bytes,
                              on_error=_count_error)
