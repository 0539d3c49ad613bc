"""Human approval, the plain logic (components/approval.py): the final decision from the
gate's and a person's, what is recorded, and the page the reviewer sees."""
import base64
import json

import pytest

from components.approval import Approval, apply, approval_markdown, needs_approval, record
from components.artifacts import artifact_key, samples_markdown
from components.gate import Scorecard
from components.results import Evaluated, Gated

CHALLENGER = Scorecard("fid", 41.5, 2.0, "md5-new", {"samples": 24, "reference_samples": 24})
CHAMPION = Scorecard("fid", 55.25, 3.0, "md5-new", {"samples": 24, "reference_samples": 24}, tag="dcgan-digits:old")


def _gated(promote: bool) -> Gated:
    reason = "fid 41.5 beats champion dcgan-digits:old" if promote else "fid 41.5 does not beat it; champion kept"
    return Gated(figure=("PROMOTE: " if promote else "KEEP: ") + reason, files=("gate.json",), promote=promote,
                 reason=reason, challenger=CHALLENGER, champion=CHAMPION)


def test_an_approval_promotes_and_says_who():
    final = apply(_gated(True), Approval.decided(True, " alice ", "looks good", at="2026-01-01T00:00:00+00:00"))
    assert final.promote and final.figure.startswith("PROMOTE: ")
    assert final.reason == "fid 41.5 beats champion dcgan-digits:old; approved by alice: looks good"
    assert final.approval == {"required": True, "decision": "approve", "approved": True, "reviewer": "alice",
                              "comment": "looks good", "decided_at": "2026-01-01T00:00:00+00:00",
                              "gate_promote": True, "gate_reason": "fid 41.5 beats champion dcgan-digits:old"}
    assert final.challenger == CHALLENGER and final.champion == CHAMPION       # the rest is the gate's


def test_a_rejection_is_not_promoted_and_says_who_and_why():
    final = apply(_gated(True), Approval.decided(False, "bob", "grid looks blurry"))
    assert not final.promote and final.figure.startswith("KEEP: ")
    assert final.reason.startswith("rejected by bob: grid looks blurry; not promoted")
    assert "the gate said: fid 41.5 beats" in final.reason
    assert final.approval["decision"] == "reject" and final.approval["reviewer"] == "bob"
    assert final.approval["decided_at"]                                         # stamped when received


def test_no_decision_in_time_is_not_promoted():
    final = apply(_gated(True), Approval.no_decision(3600))
    assert not final.promote
    assert final.reason.startswith("no decision within 3600 s: not promoted")
    assert final.approval["decision"] == "timeout" and final.approval["timeout"] == 3600
    assert final.approval["reviewer"] == "" and final.approval["approved"] is False


def test_a_champion_the_gate_keeps_stays_kept():
    kept = _gated(False)
    assert not needs_approval(kept, True)                       # nobody is asked
    assert needs_approval(_gated(True), True) and not needs_approval(_gated(True), False)
    final = apply(kept, Approval.decided(True, "alice"))        # and an approval would not promote it
    assert not final.promote and final.reason == kept.reason


def test_metadata_holds_no_none(tmp_path):
    """BentoML metadata refuses None values."""
    from bentoml._internal.utils import validate_metadata

    for approval in (Approval.decided(True, "a"), Approval.decided(False, "b", "c"), Approval.no_decision(5)):
        entry = apply(_gated(True), approval).approval
        assert None not in entry.values()
        validate_metadata({"approval": entry})


def test_record_writes_approval_json_and_adds_it_to_gate_json(tmp_path):
    (tmp_path / "gate.json").write_text(json.dumps({"promote": True, "reason": "gate's"}))
    final = record(tmp_path, apply(_gated(True), Approval.decided(False, "bob", "no")))
    written = json.loads((tmp_path / "approval.json").read_text())
    assert written["decision"] == "reject" and written["promote"] is False and written["reviewer"] == "bob"
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["promote"] is False and gate["reason"] == final.reason    # the final decision on top ...
    assert gate["approval"] == written and written["gate_promote"] is True  # ... the gate's own kept inside
    assert final.files == ("gate.json", str(tmp_path / "approval.json"))


def test_artifact_key_is_a_valid_prefect_key():
    assert artifact_key("approval", "dcgan-digits") == "approval-dcgan-digits"
    assert artifact_key("approval", "My_Model.v2") == "approval-my-model-v2"


def _evaluated(tmp_path, sample_name: str, content: bytes) -> Evaluated:
    sample = tmp_path / sample_name
    sample.write_bytes(content)
    return Evaluated(figure="fid 41.500", files=(str(tmp_path / "metrics.json"), str(sample)), metric="fid",
                     metrics={"fid": 41.5, "kid": 0.0123456, "samples": 24,
                              "fid_interval": {"low": 39.5, "high": 43.5, "half_width": 2.0}},
                     reference_csv=str(tmp_path / "reference.csv"))


def test_markdown_has_the_metrics_the_grid_and_the_command(tmp_path):
    from PIL import Image

    Image.new("L", (12, 8), 200).save(tmp_path / "grid.png")
    png = (tmp_path / "grid.png").read_bytes()
    evaluated = _evaluated(tmp_path, "samples.png", png)
    md = approval_markdown(model_name="dcgan-digits", run_id="20260101-dcgan", flow_run_id="1234-abcd",
                           evaluated=evaluated, gated=_gated(True), audit_passed=True,
                           audit_reasons=("TV distance 0.1 <= 0.2",), timeout=900)
    assert "| fid | 41.5 | 55.25 |" in md                          # challenger vs champion
    assert "| kid | 0.01235 |" in md and "| samples | 24 |" in md   # the metrics table
    assert "FID bootstrap interval: 39.5 .. 43.5" in md
    assert "dcgan-digits:old" in md and "TV distance 0.1 <= 0.2" in md
    assert "genloop approve 1234-abcd" in md and "--reject" in md and "No decision within 900 s" in md
    embedded = md.split("![samples](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(embedded) == png                       # the grid itself, not a path


def test_text_samples_go_in_a_code_block(tmp_path):
    evaluated = _evaluated(tmp_path, "samples.txt", b"'The' -> 'The cat'\n" * 1000)
    lines = samples_markdown(evaluated)
    assert lines[0] == "```" and lines[-1] == "```" and "'The' -> 'The cat'" in lines[1]
    assert len(lines[1]) < 4100                                    # a long file is cut
    assert samples_markdown(Evaluated(figure="", metric="fid", reference_csv="")) == ["(no samples were written)"]


@pytest.mark.parametrize("approval, decision", [(Approval.decided(True, "a"), "approve"),
                                                (Approval.decided(False, "a"), "reject"),
                                                (Approval.no_decision(1), "timeout")])
def test_decision_names(approval, decision):
    assert approval.decision == decision
