"""benchmarks/serving_load.py's verdicts from a result (no server): text at 32 clients is judged
on the median of its rounds, each against the bare samples just before and after it."""
import importlib.util
import sys

import pytest

from tests.conftest import REPO

SPEC = importlib.util.spec_from_file_location("serving_load", REPO / "benchmarks" / "serving_load.py")
serving_load = sys.modules.setdefault("serving_load", importlib.util.module_from_spec(SPEC))
SPEC.loader.exec_module(serving_load)


def _result(round_rps, bare):
    """A result with the text part's 32-client rounds (requests/s of 200-token answers) and the
    bare batch-32 samples taken around them."""
    rounds = [{"seconds": 6.0, "ok_rps": rps, "p50_s": 2.0, "p99_s": 2.5} for rps in round_rps]
    done = [r for r in round_rps if r is not None]
    row = {"target": "text 200 tokens", "clients": 32, "ok_rps": sum(done) / len(done),
           "items_per_s": sum(done) / len(done), "rounds": rounds}
    return {"load": [row], "bare": {"text": {"interleaved_batch32": {
        "tokens_per_s": sum(bare) / len(bare), "rounds": bare}}}}


def _text(result):
    (entry,) = serving_load.figures(result)["text_vs_bare"]
    return entry


def test_each_round_is_judged_against_the_bare_samples_around_it():
    # the server's steady 15 req/s (3,000 tokens/s) against bare samples around its rounds of
    # 6,000/2,000, 2,000/2,000, 2,000/2,000: 0.75, 1.5, 1.5 (against all four pooled: 1.0)
    entry = _text(_result([15, 15, 15], [6000, 2000, 2000, 2000]))
    assert entry["round_ratios"] == [0.75, 1.5, 1.5] and entry["ratio_vs_bare_interleaved"] == 1.0
    assert entry["paired_median"] == 1.5 and entry["met"]
    # the verdicts differ: one fast bare sample after the last round pulls the pooled ratio to
    # 0.75 (not met); the rounds' own ratios are 1.5, 1.5, 0.5 (median 1.5: met)
    split = _text(_result([15, 15, 15], [2000, 2000, 2000, 10000]))
    assert split["ratio_vs_bare_interleaved"] == 0.75 and split["round_ratios"] == [1.5, 1.5, 0.5]
    assert split["paired_median"] == 1.5 and split["met"]
    low = _text(_result([12, 15, 12], [4000, 4000, 4000, 4000]))
    assert low["round_ratios"] == [0.6, 0.75, 0.6] and low["paired_median"] == 0.6 and not low["met"]


def test_a_round_without_figures_is_left_out_and_the_others_keep_their_own_bare_samples():
    entry = _text(_result([15, None, 15, 15], [3000, 9999, 9999, 3000, 3000]))
    # round 3 sits between 9,999 and 3,000: not moved onto the dropped round 2's samples
    assert entry["round_ratios"] == [0.462, 0.462, 1.0]
    assert entry["paired_median"] == 0.462 and not entry["met"]


@pytest.mark.parametrize("round_rps, bare", [([15, 15, 15], [3000, 3000, 3000]),     # an older result: no sample after
                                             ([15, 15], [3000, 3000, 3000])])        # under 3 rounds
def test_without_a_sample_after_each_round_the_pooled_ratio_is_judged(round_rps, bare):
    entry = _text(_result(round_rps, bare))
    assert "paired_median" not in entry
    assert entry["ratio_vs_bare_interleaved"] == 1.0 and entry["met"]
