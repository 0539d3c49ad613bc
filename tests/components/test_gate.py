"""The gate: one test per rule of `decide`, and the scorecard's round trip through metadata."""
import dataclasses
import math

import pytest

from components.config import GateConfig
from components.gate import Scorecard, decide

POLICY = GateConfig(margin=0.5, use_interval=True)


def card(value, half_width=0.0, dataset="d1", samples=500, metric="fid", tag=None, window=64):
    protocol = ({"samples": samples, "reference_samples": 500} if metric == "fid"
                else {"tokens": 100, "window": window, "stride": window})
    return Scorecard(metric, value, half_width, dataset, protocol, tag)


def test_no_champion_promotes_a_passing_challenger():
    d = decide(card(10.0), None, True, [], POLICY)
    assert d.promote and "no champion yet" in d.reason


def test_failed_audit_never_promotes():
    d = decide(card(1.0), None, False, ["TV 0.9 > 0.25"], POLICY)
    assert not d.promote and d.reason == "audit failed: TV 0.9 > 0.25"
    assert not decide(card(1.0), card(10.0, tag="m:1"), False, ["x"], POLICY).promote


def test_a_score_that_is_not_finite_is_not_promoted():
    d = decide(card(math.nan), None, True, [], POLICY)
    assert not d.promote and "nan" in d.reason


def test_beating_the_champion_by_more_than_the_margin_promotes():
    d = decide(card(9.0), card(10.0, tag="m:1"), True, [], POLICY)
    assert d.promote and "beats champion m:1" in d.reason and "margin 0.5" in d.reason


def test_within_the_margin_keeps_the_champion():
    d = decide(card(9.8), card(10.0, tag="m:1"), True, [], POLICY)
    assert not d.promote and "champion kept" in d.reason and "m:1" in d.reason


def test_the_interval_widens_the_margin_unless_turned_off():
    wide = card(9.0, half_width=2.0)
    kept = decide(wide, card(10.0, tag="m:1"), True, [], POLICY)
    assert not kept.promote and "margin 2 " in kept.reason
    off = GateConfig(margin=0.5, use_interval=False)
    assert decide(wide, card(10.0, tag="m:1"), True, [], off).promote


@pytest.mark.parametrize("challenger,what", [
    (card(1.0, dataset="d2"), "dataset md5 d1 vs d2"),
    (card(1.0, samples=24), "samples 500 vs 24"),
    (card(1.0, metric="perplexity"), "metric fid vs perplexity"),
])
def test_incomparable_scores_keep_the_champion_and_say_why(challenger, what):
    d = decide(challenger, card(10.0, tag="m:1"), True, [], POLICY)
    assert not d.promote and "not comparable" in d.reason and what in d.reason
    assert "gate.allow_incomparable" in d.reason


def test_perplexities_with_other_windows_are_not_compared():
    d = decide(card(4.0, metric="perplexity", window=128), card(5.0, metric="perplexity", tag="m:1"),
               True, [], POLICY)
    assert not d.promote and "window 64 vs 128" in d.reason and "stride 64 vs 128" in d.reason
    same = decide(card(4.0, metric="perplexity"), card(5.0, metric="perplexity", tag="m:1"), True, [], POLICY)
    assert same.promote


def test_a_champion_without_a_scorecard_is_a_clear_error():
    from components.errors import GenloopError

    with pytest.raises(GenloopError, match="no gate scorecard"):
        Scorecard.from_metadata("old:1", {})


def test_allow_incomparable_compares_anyway_and_says_so():
    told = GateConfig(margin=0.0, allow_incomparable=True)
    better = decide(card(1.0, dataset="d2"), card(10.0, tag="m:1"), True, [], told)
    assert better.promote and "compared across: dataset md5 d1 vs d2" in better.reason
    worse = decide(card(11.0, samples=24), card(10.0, tag="m:1"), True, [], told)
    assert not worse.promote and "samples 500 vs 24" in worse.reason
    other = decide(card(50.0, metric="perplexity"), card(10.0, tag="m:1"), True, [], told)
    assert other.promote and "no common scale" in other.reason


def test_scorecard_from_metrics_and_through_metadata():
    metrics = {"fid": 23.6, "fid_interval": {"half_width": 1.2}, "samples": 500, "reference_samples": 400,
               "kid": 0.01, "seconds": 3.0}
    c = Scorecard.of("fid", metrics, "abc")
    assert (c.value, c.half_width, c.protocol) == (23.6, 1.2, {"samples": 500, "reference_samples": 400})
    back = Scorecard.from_metadata("m:2", c.to_metadata())
    assert back == Scorecard("fid", 23.6, 1.2, "abc", {"samples": 500, "reference_samples": 400}, "m:2")
    text = Scorecard.of("perplexity", {"perplexity": 5.4, "tokens": 900, "window": 64, "stride": 64}, "t")
    assert text.half_width == 0.0 and text.protocol == {"tokens": 900, "window": 64, "stride": 64}


def test_only_a_champion_on_other_data_or_protocol_with_the_same_metric_is_rescored():
    from components.gate import needs_rescore

    mine = Scorecard("fid", 20.0, 1.0, "new", {"samples": 500, "reference_samples": 500})
    same = dataclasses.replace(mine, value=25.0)
    other_data = dataclasses.replace(mine, dataset_md5="old")
    other_count = dataclasses.replace(mine, protocol={"samples": 1000, "reference_samples": 500})
    other_metric = Scorecard("perplexity", 5.0, 0.0, "old", {})
    on = GateConfig()
    assert not needs_rescore(mine, None, on) and not needs_rescore(mine, same, on)
    assert needs_rescore(mine, other_data, on) and needs_rescore(mine, other_count, on)
    assert not needs_rescore(mine, other_metric, on)
    assert not needs_rescore(mine, other_data, dataclasses.replace(on, rescore_champion=False))
