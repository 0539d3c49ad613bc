"""The server's batching engines: they batch the requests in flight into shared forwards.
Imported by deploy/service.py; no BentoML here, so they are tested on their own.

- `LoopImageEngine` (the default for images, `serving.image_engine: loop`): adaptive
  batching on the event loop's own thread; the requests that arrive while a forward runs
  share the next one (its docstring says why not a thread for small models on CPU).
- `ImageEngine` (`serving.image_engine: thread`): adaptive batching on a worker thread. A
  forward takes every request waiting when the worker is free (up to `max_batch_size`
  images), after waiting at most `max_latency_ms` for more to join a batch that is not full;
  unless the last forward served one request alone and one is waiting now (a lone client
  would pay the wait on every request for nothing).
  In both, each request's latents come from its own seed and the generators render each row
  on its own, so a request gets the images it gets alone.
- `TextEngine`: continuous batching over `textgen.BatchDecoder`. Requests join and leave
  between tokens (up to `max_batch_size` rows decoding at once), so a request does not wait
  for a batch of 200-token generations to finish, and tokens can be streamed as they come.

Why not BentoML's own `@bentoml.api(batchable=True)`: its dispatcher batches only calls that
reach that API over HTTP, with a list as the body. Keeping `/generate` one JSON object per
request would take a second service (a second process holding the model, and an HTTP hop per
request); and it batches whole calls, so text could neither stream nor join a batch mid-way.
"""
from __future__ import annotations

import abc
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from components.serving import lowering, onednn

# observe(kind, rows): called once per forward with the rows (images or text rows) it held
Observer = Callable[[str, int], None]


class EngineClosed(RuntimeError):
    """The engine was closed (the model was swapped out or the server is stopping)."""


def own_torch_threads(threads: int) -> None:
    """Give the calling thread `threads` intra-op threads for good. torch keeps the count per
    thread (OpenMP's), but sets a thread's from the process-wide one (the last
    `torch.set_num_threads` anywhere) at that thread's first parallel op: a thread that only
    set its count, then ran its first op after the text engine had set 2, would run on 2.
    `get_num_threads` does that first setting now, so the count set after it stays."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def on_a_passing_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` on a new thread that ends with it; its result, or its exception raised here.

    For torch work done once on the side of a serving engine (a hot swap's load). A thread
    that runs a parallel torch op keeps an OpenMP thread team as long as it lives, and a
    second team in the process makes the engine's slower: once there are more OpenMP threads
    than cores, libgomp (torch's OpenMP) spins 100 times instead of 300,000 before a waiting
    thread sleeps (its GOMP_SPINCOUNT documentation), so each parallel op wakes its threads
    from sleep. On 2 cores, 2,000 products of 32x384 by 384x1152 on a thread of 2 took 0.40 s
    alone and 0.55-0.60 s with another thread's team alive (BENCHMARKS.md). A long-lived
    follow thread that loaded the new champion itself would keep its team for good; a thread
    that ends frees its team (the pool's `with` joins its one thread before returning)."""
    with ThreadPoolExecutor(1, thread_name_prefix="genloop-passing") as pool:
        return pool.submit(fn, *args).result()


def _resolve(future: Future, result: Any = None, exc: BaseException | None = None) -> None:
    """Set a job's outcome unless its waiter gave up (a request timed out and cancelled the
    future): that must not take the engine's thread down with InvalidStateError."""
    if future.done():
        return
    try:
        future.set_exception(exc) if exc is not None else future.set_result(result)
    except Exception:                               # cancelled in between
        pass


class _Worker(abc.ABC):
    """A daemon thread taking jobs from a pending list under a condition variable."""
    kind = "worker"
    caller_threads = 1    # the thread that submits (the event loop) only hands over: one torch thread

    def __init__(self, max_batch_size: int, observe: Observer | None = None):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}.")
        self.max_batch_size = max_batch_size
        self.observe = observe or (lambda kind, rows: None)
        self._pending: list = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"genloop-{self.kind}-engine", daemon=True)
        self._thread.start()

    def _put(self, job) -> None:
        with self._cond:
            if self._closed:
                raise EngineClosed("the engine is closed")
            self._pending.append(job)
            self._cond.notify()

    def close(self, drain: bool = True, timeout: float = 120.0) -> None:
        """Stop taking jobs; with `drain`, finish those taken and pending first."""
        with self._cond:
            self._closed = True
            if not drain:
                for job in self._pending:
                    _resolve(job.future, exc=EngineClosed("the server is stopping"))
                self._pending.clear()
            self._cond.notify()
        self._thread.join(timeout)

    @abc.abstractmethod
    def _loop(self) -> None:
        """The worker thread's body: take jobs, run them, resolve their futures; return when
        closed and drained."""


# images ------------------------------------------------------------------------------------

@dataclass(eq=False)
class ImageJob:
    n: int
    seed: int
    z: torch.Tensor                  # the request's latents (n, z_dim) and class indices (n,)
    labels: torch.Tensor
    future: Future = field(default_factory=Future)


@dataclass
class ImageResult:
    images: torch.Tensor             # (n, C, H, W) uint8
    indices: list[int]
    stats: list[dict]                # monitoring.features.image_stats of each image


class ImageEngine(_Worker):
    kind = "image"

    def __init__(self, model, max_batch_size: int = 64, max_latency_ms: float = 0.0,
                 observe: Observer | None = None, onednn_min_rows: int = 0, threads: int | None = None):
        self.model, self.max_latency = model, max_latency_ms / 1000.0
        self.onednn_min_rows = onednn_min_rows
        self.threads = threads                   # torch threads of this engine's thread (None: torch's)
        self.last_jobs: int | None = None        # requests in the last forward
        super().__init__(max_batch_size, observe)

    def submit(self, n: int, seed: int, labels=None, temperature: float = 1.0) -> ImageJob:
        """Queue n images of `seed` (labels: None to draw, a class index, or n indices). The
        latents are drawn here, on the caller's thread: a few small torch ops, each of which
        lets go of the GIL. Drawn on the engine's thread, 32 requests' draws each waited
        for the busy event loop to hand the GIL back, op by op: under load they took 65% of
        the engine's time (py-spy, images n=1 at 32 clients)."""
        z, lab = self.model.latents(n, seed, labels=labels, temperature=temperature)
        job = ImageJob(n, seed, z, lab)
        self._put(job)
        return job

    def waits(self) -> bool:
        """Whether the requests pending now wait up to max_latency for company: not when the
        last forward held one request and one is pending (no one else is asking)."""
        return not (self.last_jobs == 1 and len(self._pending) == 1)

    def _take(self) -> list[ImageJob]:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self.max_latency and self._pending and self.waits():
                deadline = time.monotonic() + self.max_latency
                while sum(j.n for j in self._pending) < self.max_batch_size and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch, images = [], 0
            while self._pending and (not batch or images + self._pending[0].n <= self.max_batch_size):
                job = self._pending.pop(0)
                if job.future.set_running_or_notify_cancel():      # False: its request gave up
                    batch.append(job)
                    images += job.n
            self.last_jobs = len(batch) or self.last_jobs
            return batch

    def _loop(self) -> None:
        if self.threads:
            own_torch_threads(self.threads)
        while True:
            batch = self._take()
            if not batch:
                if self._closed and not self._pending:           # closed and drained
                    return
                continue
            try:
                results = render_batch(self.model, batch, self.observe, self.onednn_min_rows)
            except Exception as exc:             # the model failed: these requests fail, not the engine
                for job in batch:
                    _resolve(job.future, exc=exc)
                continue
            for job, result in zip(batch, results):
                _resolve(job.future, result)


def render_batch(model, jobs: list[ImageJob], observe: Observer, onednn_min_rows: int = 0) -> list[ImageResult]:
    """One forward for `jobs` (their latents concatenated), with oneDNN only from
    `onednn_min_rows` rows (onednn.py); each job's images, class indices and monitoring stats
    (computed once for the batch)."""
    from components.data.images import to_uint8
    from components.monitoring.features import image_stats

    z = torch.cat([j.z for j in jobs]) if len(jobs) > 1 else jobs[0].z
    labels = torch.cat([j.labels for j in jobs]) if len(jobs) > 1 else jobs[0].labels
    if onednn_min_rows:
        with onednn.rows_path(len(z), onednn_min_rows):
            images = to_uint8(model.render(z, labels))
    else:                                     # the oneDNN flag as it stands, normally the process's (no context manager: ~2 us)
        images = to_uint8(model.render(z, labels))
    stats = image_stats(images)
    observe("image", len(z))
    out, start = [], 0
    parts = torch.split(images, [j.n for j in jobs]) if len(jobs) > 1 else (images,)
    for job, part in zip(jobs, parts):
        out.append(ImageResult(part, job.labels.tolist(), stats[start:start + job.n]))
        start += job.n
    return out


class LoopImageEngine:
    """Adaptive batching on the event loop's own thread (`serving.image_engine: loop`, the
    default): `await submit(...)` queues a request's latents, and the requests queued while
    the loop works through the requests that are ready now share one forward, run on the
    loop itself at the end of that pass. Under load, requests arrive while a forward runs and
    the next pass batches them; a lone client pays no hand-off.

    Why on the loop for small models on CPU: the thread engine (`ImageEngine`) hands every
    request to another thread and back, and each of a forward's torch ops lets go of the GIL
    and waits for the busy event loop to return it (up to the switch interval, op by op). For
    the 8x8 DCGAN a batched forward takes well under a millisecond, less than that traffic:
    images n=1 went from 389-457 to 595-620 req/s at one client (BENCHMARKS.md). A forward
    holds the loop while it runs, so a model whose forward is long (a large model) belongs on
    the thread engine (`serving.image_engine: thread`)."""
    kind = "image"

    def __init__(self, model, max_batch_size: int = 64, observe: Observer | None = None,
                 onednn_min_rows: int = 0, threads: int = 1):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}.")
        self.model, self.max_batch_size = model, max_batch_size
        self.caller_threads = threads             # the forwards run on the caller's (the event loop's) thread
        self.onednn_min_rows = onednn_min_rows
        self.observe = observe or (lambda kind, rows: None)
        self._pending: list[tuple[ImageJob, Any]] = []        # (job, asyncio future)
        self._scheduled = False
        self._closed = False

    def submit(self, n: int, seed: int, labels=None, temperature: float = 1.0):
        """Queue n images of `seed` from the event loop's thread; returns the asyncio future
        of its ImageResult (cancel it to give up)."""
        import asyncio

        if self._closed:
            raise EngineClosed("the engine is closed")
        z, lab = self.model.latents(n, seed, labels=labels, temperature=temperature)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._pending.append((ImageJob(n, seed, z, lab), waiter))
        if not self._scheduled:                 # after the requests that are ready now
            self._scheduled = True
            loop.call_soon(self._flush)
        return waiter

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = [(j, w) for j, w in self._pending if not w.done()], []   # done: gave up
        try:
            while pending:
                batch, images = [], 0
                while pending and (not batch or images + pending[0][0].n <= self.max_batch_size):
                    batch.append(pending.pop(0))
                    images += batch[-1][0].n
                try:
                    results = render_batch(self.model, [j for j, _ in batch], self.observe,
                                           self.onednn_min_rows)
                except Exception as exc:         # the model failed: these requests fail, not the server
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for (_, waiter), result in zip(batch, results):
                    if not waiter.done():
                        waiter.set_result(result)
        finally:                                 # anything else: no request is left waiting
            for _, waiter in pending:
                if not waiter.done():
                    waiter.set_exception(EngineClosed("the image batch could not be run"))

    def close(self, drain: bool = True, timeout: float = 120.0) -> None:
        """Take no more requests (those queued are flushed by the pass already scheduled)."""
        self._closed = True


def make_engine(model, limits, observe: Observer | None = None):
    """The engine that serves `model` under `limits` (a ServingConfig): text, continuous
    batching on a thread; images on the event loop or on a thread (`limits.image_engine`),
    the model's small convolutions lowered to matrix products in place (`limits.lower_convs`:
    the model is then for serving only, lowering.py).

    The engine's `caller_threads` is the intra-op thread count the thread that submits to it
    (the server's event loop) should run torch on: the image forwards' when it runs them
    (`image_engine: loop`), else 1, for a team of OpenMP threads there would slow the engine's
    (on_a_passing_thread says why). slot.ModelSlot.start applies it."""
    if model.modality == "text":
        return TextEngine(model, limits.max_batch_size, observe, limits.text_threads())
    # lowered first: the oneDNN choice is measured on the forward that will run
    lowered = lowering.lower_for_serving(model) if limits.lower_convs else 0
    min_rows = image_onednn_min_rows(model, limits)
    if limits.image_engine == "loop":
        engine = LoopImageEngine(model, limits.max_batch_size, observe, min_rows, limits.threads())
    else:
        engine = ImageEngine(model, limits.max_batch_size, limits.max_latency_ms, observe, min_rows,
                             limits.threads())
    engine.lowered_convs = lowered
    return engine


def image_onednn_min_rows(model, limits) -> int:
    """`limits.onednn_min_rows`, or when it is -1 the rows from which this image model's forward
    is at least as fast with oneDNN, measured now (onednn.calibrate) on the image forwards'
    thread count (`limits.threads()`, on a passing thread: the caller's may differ, e.g. the
    event loop's one thread when a thread engine runs the forwards); 0 (torch's default) when
    its forward runs no convolution."""
    if limits.onednn_min_rows >= 0:
        return limits.onednn_min_rows
    if not lowering.convolutions_rendering(model):         # all lowered (or none): nothing to choose
        return 0

    def forward_of(rows: int):
        z, labels = model.latents(rows, 0)
        return lambda: model.render(z, labels)

    def measure() -> int:
        own_torch_threads(limits.threads())
        return onednn.calibrate(forward_of, limits.max_batch_size)

    return on_a_passing_thread(measure)


def describe(engine, limits) -> str:
    """How `engine` batches and threads, for the server's start-up line."""
    if isinstance(engine, TextEngine):
        return (f"continuous batching on a thread, torch threads {limits.text_threads()} "
                f"(1 for forwards of under {engine.SMALL_ROWS} rows)")
    where = ("on the event loop" if isinstance(engine, LoopImageEngine)
             else f"on a thread, max_latency_ms {limits.max_latency_ms}")
    rows, how = engine.onednn_min_rows, ("measured" if limits.onednn_min_rows < 0 else "serving.onednn_min_rows")
    path = "oneDNN always" if rows == 0 else f"oneDNN for forwards of {rows}+ rows ({how})"
    lowered = getattr(engine, "lowered_convs", 0)
    convs = f"{lowered} convolution(s) as matrix products, " if lowered else ""
    return f"image batches {where}, torch threads {limits.threads()}, {convs}{path}"


# text --------------------------------------------------------------------------------------

class TextEngine(_Worker):
    """Decodes the text jobs in flight one token a step. A job's `on_tokens` runs on the
    engine's thread after each step (streaming hands the tokens to the request's event loop);
    its `future` gets the texts when it ends (a cancelled job's: EngineClosed-free, the
    partial texts)."""
    kind = "text"

    # rows below which a forward runs on one torch thread (see `_threads`)
    SMALL_ROWS = 8

    def __init__(self, model, max_batch_size: int = 64, observe: Observer | None = None,
                 threads: int | None = None):
        from components.models.textgen import BatchDecoder

        self.threads = threads
        self.decoder = BatchDecoder(model.decoding(), self._threads)
        super().__init__(max_batch_size, observe)

    def _threads(self, rows: int) -> None:
        """torch's intra-op threads for the next forward (the decoder calls this before each):
        `threads` for SMALL_ROWS rows or more, one below. A step holds one large forward (the
        rows past the window) beside smaller ones (the rows still in their KV cache, packed into
        one forward, and the new arrivals' prompts); a batch of 32 gains from both threads, and
        with 8 clients the server did 1.19x the requests/s with small forwards on one thread
        than on two (CPU, 2 cores). A lone batch-1 client lost 3% by it. (An earlier figure,
        small forwards 2.5x slower on two threads, was measured with a second OpenMP team in
        the process: on_a_passing_thread.) Switching costs ~0.1 us (the thread pool is kept)."""
        if not self.threads:
            return
        own_torch_threads(self.threads if rows >= self.SMALL_ROWS else 1)

    def submit(self, n: int, seed: int, prompt: str = "", max_new_tokens: int = 100,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               on_tokens: Callable | None = None):
        from components.models.textgen import TextJob

        job = TextJob(n, seed, prompt, max_new_tokens, temperature, top_k, top_p, on_tokens)
        job.future = Future()
        self._put(job)
        return job

    def _admit(self) -> bool:
        """Move pending jobs into the decoder while the rows fit; False when closed and idle."""
        with self._cond:
            while not self._pending and not self.decoder.jobs:
                if self._closed:
                    return False
                self._cond.wait()
            rows, admitted = self.decoder.rows, []
            while self._pending and (rows == 0 or rows + self._pending[0].n <= self.max_batch_size):
                job = self._pending.pop(0)
                admitted.append(job)
                rows += job.n
        admitted = [j for j in admitted if j.future.set_running_or_notify_cancel() or j.cancel()]
        self.decoder.add(admitted)
        for job in admitted:
            if job not in self.decoder.jobs:                # cancelled before it started
                _resolve(job.future, job.texts())
        return True

    def _loop(self) -> None:
        while self._admit():
            if not self.decoder.jobs:
                continue
            try:
                rows = self.decoder.rows
                ended = self.decoder.step()
                self.observe("text", rows)
            except Exception as exc:             # the model failed: the jobs in flight fail
                for job in self.decoder.jobs:
                    _resolve(job.future, exc=exc)
                self.decoder = type(self.decoder)(self.decoder.d, self._threads)
                continue
            for job in ended:
                _resolve(job.future, job.texts())
