"""Sweeps without Dask: the grid and seeds, the plan, the seed spread and the winner, the spread
record the gate reads, and the gate's margin with training noise."""
import json
import math
import statistics

import pytest

from components.config import GateConfig
from components.errors import GenloopError
from components.gate import Scorecard, SeedSpread, decide
from components.sweep import (PointResult, load_spread, parse_grid, parse_seeds, plan_points, save_spread,
                              summarize)


def test_grid_values_are_yaml_in_the_order_given():
    assert parse_grid(["train.lr=1e-4,5e-4", "train.batch_size=32,64", "model.args.width=16"]) == {
        "train.lr": [1e-4, 5e-4], "train.batch_size": [32, 64], "model.args.width": [16]}


@pytest.mark.parametrize("spec,what", [
    ("train.lr", "KEY=V1,V2"), ("=1,2", "KEY=V1,V2"), ("train.lr=", "KEY=V1,V2"),
    ("seed=1,2", "--seeds"), ("name=a,b", "one model name"), ("train.lr=1,,2", "empty value"),
])
def test_a_bad_grid_is_one_clear_line(spec, what):
    with pytest.raises(GenloopError, match=what):
        parse_grid([spec])


def test_a_key_given_twice_is_refused():
    with pytest.raises(GenloopError, match="given twice"):
        parse_grid(["train.lr=1", "train.lr=2"])


@pytest.mark.parametrize("text,seeds", [("0,1,2", [0, 1, 2]), ("0-4", [0, 1, 2, 3, 4]), ("0-2,7", [0, 1, 2, 7]),
                                        ("5", [5])])
def test_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["a", "1,1", "-1", "", "0-2,1"])
def test_bad_seeds(text):
    with pytest.raises(GenloopError, match="--seeds"):
        parse_seeds(text)


def test_every_grid_combination_with_every_seed():
    points = plan_points({"train.lr": [1e-4, 5e-4], "train.batch_size": [32, 64]}, [0, 1, 2])
    assert len(points) == 12 and [p.index for p in points] == list(range(12))
    assert [p.seed for p in points[:3]] == [0, 1, 2] and points[0].grid == points[2].grid
    assert {p.label for p in points} == {f"train.lr={lr} train.batch_size={b}" for lr in (1e-4, 5e-4)
                                         for b in (32, 64)}
    assert points[4].overrides({"train.steps": 10, "seed": 99}) == {"train.steps": 10, "train.lr": 1e-4,
                                                                    "train.batch_size": 64, "seed": 1}
    assert [p.label for p in plan_points({}, [0, 1])] == ["(config as is)"] * 2


def _r(i, lr, seed, value, passed=True, status="ok", half=2.0):
    return PointResult(i, {"train.lr": lr}, seed, status, "" if status == "ok" else "boom", f"run{i}", f"/r{i}",
                       "fid", value, half if status == "ok" else 0.0, passed)


def test_spread_is_pooled_over_grid_points_and_the_winner_is_the_best_mean():
    results = [_r(0, 1, 0, 10.0), _r(1, 1, 1, 14.0), _r(2, 1, 2, 12.0),      # mean 12, sd 2
               _r(3, 2, 0, 9.0), _r(4, 2, 1, 13.0), _r(5, 2, 2, 11.0, passed=False)]   # mean 11: best
    s = summarize(results, "md5", {"samples": 500}, "sweep-x")
    assert [g.mean for g in s.groups] == [pytest.approx(12.0), pytest.approx(11.0)]
    assert s.groups[0].sd == pytest.approx(2.0) and s.groups[1].sd == pytest.approx(2.0)
    pooled = math.sqrt((2 * 4.0 + 2 * 4.0) / 4)
    assert s.spread.sd == pytest.approx(pooled) and s.spread.runs == 6 and s.spread.half_width == pytest.approx(1.96 * pooled)
    assert s.spread.dataset_md5 == "md5" and s.spread.protocol == {"samples": 500}
    # group 2's mean over eligible runs is 11 (9, 13); its best eligible run is seed 0
    assert s.winner.index == 3 and "train.lr=2" in s.why and "seed 0" in s.why
    assert s.bootstrap_half_width == pytest.approx(2.0)


def test_failed_and_non_finite_points_never_win_and_do_not_count_in_the_spread():
    results = [_r(0, 1, 0, 5.0, status="failed"), _r(1, 1, 1, math.nan), _r(2, 2, 0, 20.0), _r(3, 2, 1, 30.0)]
    s = summarize(results)
    assert s.groups[0].values == [] and s.groups[0].failed == 1
    assert s.spread.runs == 2 and s.spread.sd == pytest.approx(statistics.stdev([20.0, 30.0]))
    assert s.winner.index == 2


def test_no_finished_point_means_no_winner_and_no_spread():
    s = summarize([_r(0, 1, 0, 0.0, status="failed"), _r(1, 1, 1, 1.0, passed=False)])
    assert s.winner is None and s.spread is None and "nothing to promote" in s.why


def test_the_spread_record_round_trips_and_bad_records_are_clear(tmp_path):
    spread = SeedSpread("fid", 3.5, 5, "md5", {"samples": 500, "reference_samples": 500}, "sweep-1")
    path = save_spread(tmp_path, "m", spread)
    assert json.loads(path.read_text())["sd"] == 3.5
    assert load_spread(tmp_path, "m", "fid") == spread
    with pytest.raises(GenloopError, match="perplexity"):
        load_spread(tmp_path, "m", "perplexity")
    with pytest.raises(GenloopError, match="no seed spread has been measured for 'other'.*genloop sweep"):
        load_spread(tmp_path, "other", "fid")
    path.write_text("{not json")
    with pytest.raises(GenloopError, match="not a seed-spread record"):
        load_spread(tmp_path, "m", "fid")
    path.write_text(json.dumps({**json.loads(json.dumps(spread.__dict__)), "runs": 1}))
    with pytest.raises(GenloopError, match="not a spread"):
        load_spread(tmp_path, "m", "fid")


def _card(value, half=0.0, seed_sd=0.0, runs=0, tag=None):
    return Scorecard("fid", value, half, "d", {"samples": 500, "reference_samples": 500}, tag, seed_sd, runs)


def test_the_seed_spread_widens_the_margin_only_when_switched_on():
    challenger, champion = _card(8.0, half=1.5, seed_sd=1.0, runs=5), _card(10.0, tag="m:1")
    sampling_only = decide(challenger, champion, True, [], GateConfig())
    assert sampling_only.promote and "not training noise (gate.use_seed_spread off)" in sampling_only.reason
    both = decide(challenger, champion, True, [], GateConfig(use_seed_spread=True))
    margin = math.hypot(1.5, 1.96)
    assert not both.promote and f"margin {margin:.4g}" in both.reason
    assert "evaluation sampling noise (bootstrap half-width 1.5)" in both.reason
    assert "training noise (seed half-width 1.96 = 1.96 x sd 1 over 5 seeds)" in both.reason
    training_only = decide(challenger, champion, True, [], GateConfig(use_interval=False, use_seed_spread=True))
    assert training_only.promote and "margin 1.96 " in training_only.reason
    assert "not evaluation sampling noise" in training_only.reason


def test_a_spread_under_two_runs_adds_nothing_and_the_scorecard_keeps_it():
    assert _card(1.0, seed_sd=4.0, runs=1).seed_half_width == 0.0
    card = _card(1.0, seed_sd=2.0, runs=5).with_seed_spread(None)
    back = Scorecard.from_metadata("m:2", card.to_metadata())
    assert (back.seed_sd, back.seed_runs, back.seed_half_width) == (2.0, 5, pytest.approx(3.92))
    old = {k: v for k, v in card.to_metadata().items() if not k.startswith("seed")}
    assert Scorecard.from_metadata("m:1", old).seed_runs == 0          # a champion stored before sweeps


def test_an_unreachable_dask_scheduler_is_one_line():
    from components.sweep import check_scheduler

    with pytest.raises(GenloopError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 .*dask scheduler"):
        check_scheduler("tcp://127.0.0.1:9", timeout=2)
