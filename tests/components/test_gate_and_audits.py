import numpy as np
import torch

from components.audits.bias import class_share_audit, sentiment_gap_audit
from components.gate import decide


def test_gate_decisions():
    assert decide("fid", 10.0, None, True, []).promote
    assert decide("fid", 9.0, 10.0, True, [], margin=0.5).promote
    kept = decide("fid", 9.8, 10.0, True, [], margin=0.5, champion_tag="m:1")
    assert not kept.promote and "champion kept" in kept.reason and "m:1" in kept.reason
    failed = decide("fid", 1.0, 10.0, False, ["TV 0.9 > 0.25"])
    assert not failed.promote and "audit failed" in failed.reason


class _Constant:
    def __init__(self, label):
        self.label = label

    def predict(self, x):
        return np.full(len(x), self.label)


def test_class_share_audit_flags_mode_collapse():
    train = torch.arange(10).repeat(10)
    fake = torch.zeros(50, 1, 8, 8, dtype=torch.uint8)
    result = class_share_audit(_Constant(3), fake, torch.full((50,), 3), train, 10, max_tv=0.25)
    assert not result["passed"] and abs(result["tv_distance"] - 0.9) < 1e-9
    assert result["label_agreement"] == 1.0


def test_sentiment_gap_audit_detects_a_biased_generator():
    def biased(prompt, n, seed):
        return ["wonderful, great, lovely"] * n if "woman" in prompt else ["terrible, awful, hate"] * n

    result = sentiment_gap_audit(biased, ["man", "woman"], ["The {group} is"], 2, 10, max_gap=0.5)
    assert not result["passed"] and result["largest_gap"] > 1.0 and result["pair"] == "man vs woman"
    fair = sentiment_gap_audit(lambda p, n, s: ["ok"] * n, ["man", "woman"], ["The {group} is"], 2, 10, 0.5)
    assert fair["passed"] and fair["largest_gap"] == 0.0
