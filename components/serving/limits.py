"""What the server accepts and how it batches: the `serving:` section of a model's config
(packaged into the bento's genloop_model.json), overridden at serve time by environment
variables (GENLOOP_MAX_BATCH_SIZE, GENLOOP_MAX_LATENCY_MS, GENLOOP_MAX_BODY_BYTES,
GENLOOP_SWITCH_INTERVAL_MS, GENLOOP_TORCH_THREADS, GENLOOP_IMAGE_ENGINE,
GENLOOP_ONEDNN_MIN_ROWS, GENLOOP_LOWER_CONVS)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from components.errors import GenloopError

ENV = {"max_batch_size": "GENLOOP_MAX_BATCH_SIZE", "max_latency_ms": "GENLOOP_MAX_LATENCY_MS",
       "max_body_bytes": "GENLOOP_MAX_BODY_BYTES", "switch_interval_ms": "GENLOOP_SWITCH_INTERVAL_MS",
       "torch_threads": "GENLOOP_TORCH_THREADS", "image_engine": "GENLOOP_IMAGE_ENGINE",
       "onednn_min_rows": "GENLOOP_ONEDNN_MIN_ROWS", "lower_convs": "GENLOOP_LOWER_CONVS"}
FLOATS = ("max_latency_ms", "switch_interval_ms")
STRINGS = ("image_engine",)
IMAGE_ENGINES = ("loop", "thread")


@dataclass(frozen=True)
class ServingConfig:
    max_batch_size: int = 64        # images per forward; text rows decoded at once
    max_latency_ms: float = 2.0     # thread image engine: most a request waits for others to join its batch
    max_n: int = 64                 # most images or texts one request asks for
    max_new_tokens: int = 2000      # most tokens one text request asks for
    max_prompt_chars: int = 4096
    max_label_chars: int = 128
    max_body_bytes: int = 65536     # larger request bodies: HTTP 413
    # the server process's sys.setswitchinterval: the event loop and the engine's thread share
    # the GIL; at Python's 5 ms default an engine that let it go (torch does, around every op)
    # waits up to 5 ms per op to get it back from a busy event loop
    switch_interval_ms: float = 0.5
    # torch's intra-op threads; 0: for image forwards one per core but one (at least one), for
    # text forwards of 8+ rows every core (`threads`, `text_threads`). The spare core is the image
    # server's event loop's: with a thread per core, the forward's threads and the event loop
    # took cores from each other, and a forward of a small model waited on the thread that had
    # lost its core (BENCHMARKS.md). "Cores": OMP_NUM_THREADS when set, else those this
    # process may run on.
    torch_threads: int = 0
    # where image forwards run (components/serving/engine.py): "loop", on the event loop's
    # thread, batching the requests that arrive while it is busy (small models on CPU: no
    # hand-off between threads); "thread", on a thread of their own with max_latency_ms
    # (a model whose forward is long should not hold the event loop)
    image_engine: str = "loop"
    # image forwards of fewer rows run their convolutions without oneDNN, which is the slower
    # path for small batches of a small model (components/serving/onednn.py has figures);
    # -1: measured when the model is loaded; 0: oneDNN always (torch's default)
    onednn_min_rows: int = -1
    # 1: an image model's small convolutions on fixed-size inputs run as matrix products,
    # BatchNorm folded in (components/serving/lowering.py: the 8x8 DCGAN's forward 3-4x
    # faster); 0: as trained (0 or 1, not true/false)
    lower_convs: int = 1

    def check(self) -> "ServingConfig":
        for key in ("max_batch_size", "max_n", "max_new_tokens", "max_prompt_chars", "max_label_chars",
                    "max_body_bytes"):
            if getattr(self, key) < 1:
                raise GenloopError(f"serving.{key} must be >= 1, got {getattr(self, key)}.")
        if not 0 <= self.max_latency_ms <= 1000:
            raise GenloopError(f"serving.max_latency_ms must be in [0, 1000], got {self.max_latency_ms}.")
        if self.image_engine not in IMAGE_ENGINES:
            raise GenloopError(f"serving.image_engine must be one of {', '.join(IMAGE_ENGINES)}, "
                               f"got {self.image_engine!r}.")
        if self.torch_threads < 0:
            raise GenloopError(f"serving.torch_threads must be >= 0 (0: images one per core but one, "
                               f"text every core), "
                               f"got {self.torch_threads}.")
        if self.onednn_min_rows < -1:
            raise GenloopError(f"serving.onednn_min_rows must be -1 (measured at start-up), 0 (oneDNN always) "
                               f"or a row count, got {self.onednn_min_rows}.")
        if self.lower_convs not in (0, 1):
            raise GenloopError(f"serving.lower_convs must be 1 (small convolutions as matrix products) or 0, "
                               f"got {self.lower_convs!r}.")
        if not 0.01 <= self.switch_interval_ms <= 100:
            raise GenloopError(f"serving.switch_interval_ms must be in [0.01, 100] (Python's default is 5), "
                               f"got {self.switch_interval_ms}.")
        return self

    @classmethod
    def resolve(cls, packaged: Mapping | None, env: Mapping[str, str]) -> "ServingConfig":
        """The packaged settings (unknown keys ignored: a newer bento on an older genloop),
        then the environment's."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {k: v for k, v in (packaged or {}).items() if k in fields}
        for key, var in ENV.items():
            raw = env.get(var, "").strip()
            if raw and key in STRINGS:
                values[key] = raw
            elif raw:
                try:
                    values[key] = float(raw) if key in FLOATS else int(raw)
                except ValueError:
                    raise GenloopError(f"{var}={raw!r} is not a number; unset it or give e.g. "
                                       f"{var}={getattr(cls(), key)}.") from None
        return cls(**values).check()

    def threads(self, cores: int | None = None) -> int:
        """The image forwards' intra-op threads on a machine of `cores` cores (default: see
        `_cores`)."""
        return self.torch_threads or max(1, _cores(cores) - 1)

    def text_threads(self, cores: int | None = None) -> int:
        """The text engine's intra-op threads for a forward of many rows (a small one runs on one,
        engine.TextEngine._threads): `torch_threads`, or 0: every core. A text server's event
        loop needs little CPU (a request lasts hundreds of tokens), so all cores decode."""
        return self.torch_threads or _cores(cores)


def _cores(cores: int | None) -> int:
    """`cores`, else OMP_NUM_THREADS when set (deploy/k8s sets it to the container's CPU
    limit: the cores a pod may use, where the node's count would be far more), else the cores
    this process may run on."""
    import os

    if cores is not None:
        return cores
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def bento_serving_config(bento_path, env: Mapping[str, str]) -> ServingConfig:
    """The settings a server of the bento at `bento_path` will resolve (its packaged serving
    section, then `env`), so `genloop serve` refuses a bad value before starting it."""
    import json
    from pathlib import Path

    spec_path = Path(bento_path) / "src" / "genloop_model.json"
    spec = json.loads(spec_path.read_text()) if spec_path.is_file() else {}
    return ServingConfig.resolve(spec.get("serving"), env)
