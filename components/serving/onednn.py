"""Which CPU convolution path an image forward takes, by the rows it holds.

torch runs a CPU convolution through oneDNN (mkldnn) whenever it can. For the small batches an
image server renders at low load that is the slower path: each call sets up oneDNN primitives
and reorders the weights, which for a small generator costs more than the arithmetic. Measured
on CPU (AMD EPYC), a DCGAN generator's forward with oneDNN / without:

    8x8, width 32, 1 thread:    batch 1   293 / 179 us   batch 4   325 / 397   batch 64  1028 / 5219
    8x8, width 32, 2 threads:   batch 1   342 / 150 us   batch 16  536 / 358   batch 64  1128 / 1208
    28x28, width 64, 2 threads: batch 1  1090 / 395 us   batch 16 2003 / 1689  batch 32  2251 / 2994

The crossover depends on the model, the thread count and the machine, so the server measures it
when it loads the model, with its own thread count (`calibrate`: 12 forwards each at 1, 2, 4, ...
rows up to `serving.max_batch_size`, stopping at the first row count where oneDNN is not slower;
30 ms for the 8x8 DCGAN, seconds for a large model), unless `serving.onednn_min_rows` fixes it, and
each forward runs with oneDNN only from that many rows (`rows_path`). Both paths compute the same
convolution in a different order: images differ at most by the rounding a batch size already
brings (a pixel level, tested), so a request still gets what it gets alone.

torch keeps the switch in one process-wide flag; `rows_path` sets it for one forward and puts
back the process's own setting, read once at import (0.1 us each way: the public
`torch.backends.mkldnn.flags()` context costs 9 us). Putting back that setting, rather than
whatever the flag held a moment before, keeps two threads from locking it off: a calibration on
the hot-swap thread could otherwise save the "off" of a forward in flight and restore it after
that forward had restored "on". A forward running on another thread meanwhile may take the other
path: slower or faster, never different beyond that rounding. A calibration during a hot swap
competes with the traffic the old model still serves: its timings, and so its choice, may be off
(never its images); `serving.onednn_min_rows` fixes the choice.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import torch


# the process's own setting (torch's default: on), what every switch below puts back
PROCESS_SETTING = torch._C._get_mkldnn_enabled()


def available() -> bool:
    return torch.backends.mkldnn.is_available()


@contextlib.contextmanager
def rows_path(rows: int, min_rows: int) -> Iterator[None]:
    """Run the block with oneDNN on when `rows` >= `min_rows` (0: always on, torch's default),
    off below it; a process that turned oneDNN off keeps it off."""
    want = PROCESS_SETTING and rows >= min_rows
    if want == PROCESS_SETTING and torch._C._get_mkldnn_enabled() == want:
        yield
        return
    torch._C._set_mkldnn_enabled(want)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(PROCESS_SETTING)


def _fastest(forward: Callable[[], object], enabled: bool, reps: int) -> float:
    torch._C._set_mkldnn_enabled(enabled)
    try:
        forward()                                   # the first call builds what later ones reuse
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            forward()
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        torch._C._set_mkldnn_enabled(PROCESS_SETTING)


def calibrate(forward_of: Callable[[int], Callable[[], object]], max_rows: int, reps: int = 5) -> int:
    """The rows from which a forward is at least as fast with oneDNN as without, trying 1, 2,
    4, ... up to `max_rows` rows; `forward_of(rows)` gives a forward of that many rows to time
    (its fastest of `reps` calls each way: the least disturbed by other work on the machine).
    0 when oneDNN is not there or is never slower; `max_rows + 1` when it never wins."""
    if not available() or not PROCESS_SETTING:
        return 0
    rows = 1
    while rows <= max_rows:
        forward = forward_of(rows)
        with torch.no_grad():
            if _fastest(forward, True, reps) <= _fastest(forward, False, reps):
                return 0 if rows == 1 else rows
        rows *= 2
    return max_rows + 1
