"""The model a server serves, and how it is loaded, swapped and submitted to.

`ModelSlot` holds the current `Served` (a model, its batching engine and its provenance):
- `start(stored)` loads the first one on the calling thread (the server's event loop), on one
  torch thread, then gives that thread the count its engine asks of it (`caller_threads`);
- `swap(stored)` loads a newly promoted champion on a thread that ends with the load, swaps
  it in, and lets the old engine finish the requests it took (`genloop serve --follow`);
- `submit(fn)` hands a request to the current engine, and to the new one when a swap closed
  the old between reading and submitting.

The thread counts are the point (engine.on_a_passing_thread says why): a team of OpenMP
threads left on the event loop's thread, or on the long-lived follow thread, slows every
parallel op of the engine's own team once the process has more OpenMP threads than cores.
deploy/service.py wires BentoML to this; the policy is tested here, without a server."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from components.serving.engine import EngineClosed, Observer, make_engine, on_a_passing_thread, own_torch_threads


@dataclass
class Served:
    """One model being served; swapped as a whole (a request keeps the one it started with)."""
    model: Any
    engine: Any
    class_names: list
    trained: list | None
    provenance: dict


def load_served(path: str | Path, tag: Any, metadata: dict, limits, observe: Observer | None = None) -> Served:
    """The packaged model in `path` (its `checkpoint`) with an engine under `limits`, and the
    provenance every response carries."""
    from components.models.io import load_checkpoint

    model, _ = load_checkpoint(Path(path) / "checkpoint")
    engine = make_engine(model, limits, observe)
    return Served(model, engine, list(metadata.get("class_names") or []), metadata.get("trained_classes"),
                  {"model_tag": str(tag), "dataset_md5": metadata.get("dataset_md5"),
                   "data_md5": metadata.get("data_md5"), "git_sha": metadata.get("git_sha")})


class SwapInProgress(RuntimeError):
    """Every engine a request was offered closed under it (swaps in a row): retry."""


class ModelSlot:
    """The current model of a server. `load(stored) -> Served` loads one (load_served, with the
    server's limits). The event loop's thread count is set at `start` only: a swap follows the
    same model name, so the modality and the engine's kind stay."""

    def __init__(self, load: Callable[[Any], Served]):
        self.load = load                          # stored model -> Served
        self.current: Served | None = None

    def start(self, stored) -> Served:
        own_torch_threads(1)                      # the load's parallel ops leave no team of 2+ here
        self.current = self.load(stored)
        own_torch_threads(self.current.engine.caller_threads)
        return self.current

    def swap(self, stored, swapped: Callable[[Served], None] | None = None) -> Served:
        """Load `stored` on a passing thread, make it current (then `swapped(new)`, e.g. to say
        so), then close the old engine after the requests it took: they finish on the old
        model, which can take a long text's time. A failed load raises and leaves the current
        model serving."""
        new = on_a_passing_thread(self.load, stored)
        old, self.current = self.current, new
        try:
            if swapped is not None:
                swapped(new)
        finally:                                  # a failing callback must not leave the old engine running
            if old is not None:
                old.engine.close(drain=True)
        return new

    def submit(self, submit: Callable[[Served], Any], tries: int = 3) -> tuple[Served, Any]:
        """`submit(served)` on the current model; a swap between reading `current` and
        submitting closes the old engine (EngineClosed), so take the new one then."""
        for _ in range(tries):
            served = self.current
            try:
                return served, submit(served)
            except EngineClosed:
                continue
        raise SwapInProgress("the model is being swapped; retry")
