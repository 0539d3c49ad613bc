"""Progress lines of long steps (components/progress.py) and the stages' finish lines."""
import logging

import pytest

from components import progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_meter_logs_rate_and_time_left_every_interval_then_one_closing_line(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="components.progress")
    with progress.meter("Inception features", 100, "images", every=10, bar=False, clock=clock) as m:
        for _ in range(4):                   # 20 images in 8 s: no line yet
            clock.now += 2
            m.advance(5)
        assert caplog.messages == []
        clock.now += 2
        m.advance(5)                         # 25 images in 10 s: 2.5 images/s, 75 left: 30 s
        assert caplog.messages == ["Inception features: 25/100 images, 2.5 images/s, 30 s left"]
        clock.now += 30
        m.advance(75)
    assert caplog.messages[-1] == "Inception features: 100 images in 40.0 s (2.5 images/s)"
    assert len(caplog.messages) == 2 and progress.active() is None


def test_a_step_served_from_a_cache_says_so(caplog):
    caplog.set_level(logging.INFO, logger="components.progress")
    clock = Clock()
    with progress.meter("reference", 500, "images", bar=False, clock=clock):
        pass
    with progress.meter("reference", 500, "images", bar=False, clock=clock) as m:
        clock.now += 4
        m.advance(200)
    assert caplog.messages == ["reference: none computed (cached), 0.0 s",
                               "reference: 200 of 500 images computed (the rest cached) in 4.0 s (50.0 images/s)"]


def test_inner_work_counts_on_the_open_meter_and_opens_its_own_otherwise():
    with progress.meter("stage", 10, bar=False) as outer:
        with progress.counting("inner", 4) as inner:
            inner.advance(4)
        assert inner is outer and outer.done == 4
    with progress.counting("inner", 4, bar=False) as own:
        assert own is not outer and progress.active() is own
    assert progress.active() is None


@pytest.mark.parametrize("seconds,text", [(0.4, "0 s"), (42, "42 s"), (61, "1:01"), (3600, "60:00"),
                                          (float("inf"), "?")])
def test_duration(seconds, text):
    assert progress.duration(seconds) == text


def test_each_stage_logs_one_line_with_name_seconds_and_key_figure(caplog):
    from components.results import StageResult
    from components.stages import timed

    @timed
    def evaluate():
        return StageResult(figure="fid 27.054")

    caplog.set_level(logging.INFO, logger="components.stages")
    result = evaluate()
    assert result.seconds >= 0
    assert caplog.messages == [f"evaluate {result.seconds:6.1f} s  fid 27.054"]
