"""Progress of the long steps (Inception features, training), for a person and for a log.

At a terminal (stderr is a TTY): a rich bar with count, rate and time left, gone when the
step ends. Otherwise (`make run | tee`, CI): a line every `every` seconds with the same
figures. Either way one line when the step ends: what, count, seconds, rate. Lines go
through logging (logger `components.progress`), so under Prefect they also land in the
run's log; the bar and the genloop command's log lines share one rich console
(`console()`), so lines print above the bar instead of through it.

The innermost `meter()` is the active one: code deep down (`inception_features`) calls
`advance()` on it, so a stage can count one step across several calls.
"""
from __future__ import annotations

import contextvars
import logging
import math
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger(__name__)

_active: contextvars.ContextVar["Meter | None"] = contextvars.ContextVar("genloop_meter", default=None)
_console = None


def console():
    """The one rich Console on stderr that the bars and the genloop command's log lines share."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def bars_enabled() -> bool:
    """Bars at a terminal, unless GENLOOP_PROGRESS_BARS=0 (a sweep's Dask workers share one)."""
    return console().is_terminal and os.environ.get("GENLOOP_PROGRESS_BARS", "1") != "0"


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class Meter:
    """Counts `done` of `total` `unit`s of the step `what`; see the module docstring."""

    def __init__(self, what: str, total: int, unit: str = "items", every: float = 15.0,
                 bar: bool | None = None, clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.unit, self.every, self.clock = what, int(total), unit, every, clock
        self.done = 0
        self.start = self.last_line = clock()
        self._bar = self._task = None
        if bar if bar is not None else bars_enabled():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=console(), transient=True)
            self._task = self._bar.add_task(what, total=self.total, rate="")
            self._bar.start()

    @property
    def seconds(self) -> float:
        return self.clock() - self.start

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float:
        return (self.total - self.done) / self.rate if self.rate > 0 else math.inf

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=f"{self.rate:.1f} {self.unit}/s")
        elif self.clock() - self.last_line >= self.every and self.done < self.total:
            self.last_line = self.clock()
            log.info("%s: %d/%d %s, %.1f %s/s, %s left", self.what, self.done, self.total, self.unit,
                     self.rate, self.unit, duration(self.eta))

    def close(self) -> str:
        """Stop the bar; log and return the step's one line."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.done >= self.total:
            line = (f"{self.what}: {self.done} {self.unit} in {self.seconds:.1f} s "
                    f"({self.rate:.1f} {self.unit}/s)")
        elif self.done == 0:
            line = f"{self.what}: none computed (cached), {self.seconds:.1f} s"
        else:                    # the rest came from a cache
            line = (f"{self.what}: {self.done} of {self.total} {self.unit} computed (the rest cached) in "
                    f"{self.seconds:.1f} s ({self.rate:.1f} {self.unit}/s)")
        log.info("%s", line)
        return line


@contextmanager
def meter(what: str, total: int, unit: str = "items", **kwargs) -> Iterator[Meter]:
    """A Meter that is the active one (see `advance`) until the block ends."""
    m = Meter(what, total, unit, **kwargs)
    token = _active.set(m)
    try:
        yield m
    finally:
        _active.reset(token)
        m.close()


def active() -> Meter | None:
    return _active.get()


@contextmanager
def counting(what: str, total: int, unit: str = "items", **kwargs) -> Iterator[Meter]:
    """The active meter when a caller opened one (its step counts this work), else a new one."""
    outer = _active.get()
    if outer is not None:
        yield outer
    else:
        with meter(what, total, unit, **kwargs) as m:
            yield m
