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


def test_a_recorded_spread_stands_only_for_the_same_protocol_and_says_when_the_data_moved():
    spread = SeedSpread("fid", 2.0, 5, "old-md5", {"samples": 500, "reference_samples": 500}, "sweep-7",
                        {"set": {"train.steps": 300}, "grid": {}})
    same = Scorecard("fid", 20.0, 1.0, "old-md5", {"samples": 500, "reference_samples": 500})
    moved = Scorecard("fid", 20.0, 1.0, "new-md5", {"samples": 500, "reference_samples": 500})
    assert spread.check(same) == "seed spread sd 2 over 5 runs from sweep-7 (its --set train.steps=300). "
    assert "from sweep-7 (its --set train.steps=300), measured on dataset md5 old-md5, this run's data is new-md5" \
        in spread.check(moved)
    other = Scorecard("fid", 20.0, 1.0, "old-md5", {"samples": 2000, "reference_samples": 500})
    with pytest.raises(GenloopError, match="another evaluation protocol \\(samples 500 there vs 2000 here\\)"):
        spread.check(other)


def test_the_record_keeps_the_settings_the_spread_was_measured_under(tmp_path):
    spread = SeedSpread("fid", 3.5, 5, "md5", {}, "sweep-1", {"set": {"train.steps": 300}, "grid": {"train.lr": [1e-4]}})
    save_spread(tmp_path, "m", spread)
    assert load_spread(tmp_path, "m", "fid").settings == {"set": {"train.steps": 300}, "grid": {"train.lr": [1e-4]}}
    s = summarize([_r(0, 1, 0, 10.0), _r(1, 1, 1, 12.0)], "md5", {}, "sweep-2", {"set": {"a": 1}, "grid": {}})
    assert s.spread.settings == {"set": {"a": 1}, "grid": {}}


def test_the_switch_off_needs_no_record_and_on_needs_one(tmp_path):
    from components.config import load_config
    from components.sweep import require_spread
    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / "dcgan-digits.yaml")
    assert require_spread(tmp_path, cfg) is None
    on = load_config(REPO / "configs" / "dcgan-digits.yaml", {"gate.use_seed_spread": True})
    with pytest.raises(GenloopError, match="no seed spread has been measured for 'dcgan-digits'"):
        require_spread(tmp_path, on)
    save_spread(tmp_path, "dcgan-digits", SeedSpread("fid", 1.0, 3, "md5"))
    assert require_spread(tmp_path, on).sd == 1.0


def test_a_typo_in_a_grid_key_is_refused_before_anything_runs_and_bad_values_only_warn():
    from components.sweep import check_grid
    from tests.conftest import REPO

    config = str(REPO / "configs" / "dcgan-digits.yaml")
    with pytest.raises(GenloopError, match=r"--grid train.lrr: config: unknown key 'train.lrr'"):
        check_grid(REPO, config, {}, {"train.lrr": [1e-4, 2e-4]})
    refused = check_grid(REPO, config, {}, {"train.lr": [2e-4, math.nan]})
    assert len(refused) == 1 and refused[0].startswith("train.lr=nan: config: train.lr must be > 0")
    with pytest.raises(GenloopError, match="no grid point has a config genloop accepts; the first: train.lr=-1"):
        check_grid(REPO, config, {}, {"train.lr": [-1, math.nan]})


def test_the_margin_note_says_which_noise_is_covered_with_and_without_the_switch():
    from components.sweep import margin_note

    spread = SeedSpread("fid", 1.87, 4, "md5")
    off = margin_note(GateConfig(), spread)
    assert "evaluation sampling noise (the bootstrap half-width) only, not training noise" in off
    assert "(sd 1.87 here)" in off
    on = margin_note(GateConfig(use_seed_spread=True), spread)
    assert "and training noise (gate.use_seed_spread: true): the seed half-width, 1.96 x sd 1.87 over 4 runs" in on
    assert "no evaluation sampling noise" in margin_note(GateConfig(use_interval=False), None)
    assert "an earlier sweep recorded for this model (this sweep recorded none)" in \
        margin_note(GateConfig(use_seed_spread=True), None)


def test_the_markdown_says_the_winner_is_a_best_of_seeds_and_the_margin():
    from components.sweep import render_markdown

    results = [_r(0, 1, 0, 10.0), _r(1, 1, 1, 14.0)]
    md = render_markdown("m", results, summarize(results), "PROMOTE: ...", "Dask", 3.0, "The gate's margin covers X.")
    assert "best of 2 seeds, so its score is optimistic" in md and "nearer their mean 12" in md
    assert md.rstrip().endswith("The gate's margin covers X.")


def test_a_dask_worker_with_several_threads_is_refused():
    from distributed import LocalCluster

    from components.sweep import check_scheduler

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        with pytest.raises(GenloopError, match=r"run several tasks at once in one process .*--nthreads 1"):
            check_scheduler(cluster.scheduler_address)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        assert check_scheduler(cluster.scheduler_address) == 2


def test_the_terminal_summary_shows_each_run_the_spread_the_winner_and_the_margin(capsys):
    from dataclasses import asdict

    from components.summary import render_sweep

    results = [_r(0, 1, 0, 10.0), _r(1, 1, 1, 14.0), _r(2, 2, 0, 0.0, status="failed")]
    summary = summarize(results, "md5", {}, "sweep-1")
    result = {"sweep_dir": "/x/runs/sweep-1", "cluster": "Dask", "points": [asdict(r) for r in results],
              "groups": [asdict(g) for g in summary.groups], "seed_spread": asdict(summary.spread),
              "seed_half_width": summary.spread.half_width, "bootstrap_half_width": 2.0, "why": summary.why,
              "gate": {"promoted": False, "reason": "--no-promote: the winner was not gated"}, "seconds": 5.0,
              "margin": "The gate's margin covers evaluation sampling noise only."}
    render_sweep(result)
    out = " ".join(capsys.readouterr().out.split())
    assert "FAILED: boom" in out and "sd 2.828 over 2 runs, half-width 5.544" in out
    assert "winner: train.lr=1: best mean fid" in out and "NOT PROMOTED: --no-promote" in out
    assert "The gate's margin covers evaluation sampling noise only." in out


def test_one_value_twice_in_a_grid_is_refused():
    with pytest.raises(GenloopError, match="gives one value twice"):
        parse_grid(["train.lr=1e-4,0.0001"])


def test_the_record_is_strict_json_and_a_nan_score_is_null(tmp_path):
    from components.sweep import record

    json_path, _ = record(tmp_path, {"points": [{"value": math.nan, "grid": {"train.lr": math.inf}}], "ok": 1.5}, "md")
    assert json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")) == \
        {"points": [{"value": None, "grid": {"train.lr": None}}], "ok": 1.5}


def test_points_of_different_protocols_record_no_spread():
    from components.sweep import spread_to_record

    spread = SeedSpread("fid", 2.0, 4, "md5", {"samples": 500, "reference_samples": 500})
    cards = [Scorecard("fid", 1.0, 0.0, "md5", {"samples": n, "reference_samples": 500}) for n in (500, 500, 1000)]
    assert spread_to_record(spread, cards[:2]) == (spread, "")
    kept, why = spread_to_record(spread, cards)
    assert kept is None and "2 different protocols (reference_samples 500, samples 500; reference_samples 500, " \
                               "samples 1000)" in why


def test_the_winner_is_reported_not_gated_when_the_switch_needs_a_spread_it_cannot_use(tmp_path):
    from components.sweep import spread_for_winner

    card = Scorecard("fid", 1.0, 0.0, "md5", {"samples": 500, "reference_samples": 500})
    assert spread_for_winner(tmp_path, "m", None, card, switched=False) == (None, "")
    spread, why = spread_for_winner(tmp_path, "m", None, card, switched=True)
    assert spread is None and why.startswith("the winner was not gated: gate.use_seed_spread is on but no seed spread")
    other = SeedSpread("fid", 2.0, 4, "md5", {"samples": 2000, "reference_samples": 500}, "sweep-9")
    save_spread(tmp_path, "m", other)
    spread, why = spread_for_winner(tmp_path, "m", None, card, switched=True)
    assert spread is None and "sweep-9 was measured with another evaluation protocol" in why
    mine = SeedSpread("fid", 2.0, 4, "md5", {"samples": 500, "reference_samples": 500})
    assert spread_for_winner(tmp_path, "m", mine, card, switched=True) == (mine, "")


def test_the_environment_the_nannies_change_is_put_back():
    import os

    from flows.sweep import environ_kept

    os.environ["GENLOOP_TEST_KEEP"] = "mine"
    os.environ.pop("GENLOOP_TEST_NEW", None)
    try:
        with environ_kept():
            os.environ["GENLOOP_TEST_NEW"] = "1"
            os.environ["GENLOOP_TEST_KEEP"] = "theirs"
        assert os.environ["GENLOOP_TEST_KEEP"] == "mine" and "GENLOOP_TEST_NEW" not in os.environ
        with environ_kept():
            del os.environ["GENLOOP_TEST_KEEP"]
        assert os.environ["GENLOOP_TEST_KEEP"] == "mine"
    finally:
        os.environ.pop("GENLOOP_TEST_KEEP", None)


@pytest.mark.slow
def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    import secrets

    from components.data.versioning import init_data
    from components.runs import prepare_run
    from tests.conftest import make_project

    root = make_project(tmp_path / "p")
    init_data(root)
    tokens = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(tokens))
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-000000")
    first = prepare_run(root, "configs/dcgan-digits.yaml")
    second = prepare_run(root, "configs/dcgan-digits.yaml")
    assert (first.run_id, second.run_id) == ("20260101-000000-dcgan-digits-aaaa", "20260101-000000-dcgan-digits-bbbb")
