import numpy as np
import pytest
from components.audits.bias import class_share_audit, sentiment_gap_audit


def test_class_share_audit_flags_mode_collapse():
    train = np.arange(10).repeat(10)
    requested = np.arange(10).repeat(5)
    result = class_share_audit(np.full(50, 3), requested, train, 10, max_tv=0.25)
    assert not result["passed"] and abs(result["tv_distance"] - 0.9) < 1e-9
    assert result["chi_square_p_value"] < 1e-6 and result["classes_covered"] == 1
    assert result["agreement_by_class"]["3"] == 1.0 and result["agreement_by_class"]["4"] == 0.0
    assert result["worst_class_ratio"] == 0.0


def test_class_share_audit_passes_a_faithful_generator():
    requested = np.arange(10).repeat(20)
    result = class_share_audit(requested.copy(), requested, np.arange(10).repeat(10), 10, max_tv=0.25)
    assert result["passed"] and result["tv_distance"] == 0.0 and result["worst_class_ratio"] == 1.0
    assert result["chi_square_p_value"] > 0.99


def test_sentiment_gap_audit_detects_a_biased_generator():
    def biased(prompt, n, seed):
        return ["wonderful, great, lovely"] * n if "woman" in prompt else ["terrible, awful, hate"] * n

    result = sentiment_gap_audit(biased, ["man", "woman"], ["The {group} is"], 2, 10, max_gap=0.5)
    assert not result["passed"] and result["largest_gap"] > 1.0 and result["pair"] == "man vs woman"
    fair = sentiment_gap_audit(lambda p, n, s: ["ok"] * n, ["man", "woman"], ["The {group} is"], 2, 10, 0.5)
    assert fair["passed"] and fair["largest_gap"] == 0.0


def test_sentiment_audit_reports_wasserstein_and_representation():
    from components.audits.bias import representation

    def biased(prompt, n, seed):
        return ["wonderful"] * n if "woman" in prompt else ["awful"] * n

    result = sentiment_gap_audit(biased, ["man", "woman"], ["The {group} is"], 2, 10, max_gap=0.5)
    assert result["wasserstein_1"]["man vs woman"] == result["largest_gap"] > 1.0
    rep = representation(["The man and the man", "a woman", "no one"], ["man", "woman"])
    assert rep["mentions"] == {"man": 2, "woman": 1} and abs(rep["share"]["man"] - 2 / 3) < 1e-9


def test_memorisation_audits_find_copies():
    from components.audits.memorisation import image_memorisation, text_memorisation

    rng = np.random.default_rng(0)
    train = rng.random((200, 64))
    copies = image_memorisation(train[:50].copy(), train, max_copy_share=0.05)
    assert not copies["passed"] and copies["near_copy_share"] == 1.0
    fresh = image_memorisation(rng.random((50, 64)), train, max_copy_share=0.05)
    assert fresh["passed"] and fresh["distance_ratio"] > 0.5
    corpus = "".join(rng.choice(list("abcdefgh "), 5000))
    assert text_memorisation([corpus[100:400]], corpus, 0.1)["verbatim_window_share"] == 1.0
    assert text_memorisation(["".join(rng.choice(list("abcdefgh "), 300))], corpus, 0.1)["passed"]


def test_class_share_audit_on_data_missing_classes_gives_a_p_value():
    """Digits 0-4 only, ten classes configured: the chi-square skips the classes the data
    lacks (no NaN); a sample in one of those classes gives p = 0."""
    train = np.repeat(np.arange(5), 20)
    faithful = class_share_audit(train, train, train, 10, 0.25)
    assert faithful["chi_square_p_value"] == pytest.approx(1.0) and faithful["passed"]
    stray = np.concatenate([train[:-1], [7]])
    assert class_share_audit(stray, stray, train, 10, 0.25)["chi_square_p_value"] == 0.0
