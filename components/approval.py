"""Human approval before packaging (`gate.require_approval`): what a person decided, how it
turns the gate's decision into the final one, and the page the reviewer looks at. Plain
Python; the pause itself (Prefect `pause_flow_run`) and `genloop approve` live in flows/.
The page's key and its embedded samples come from components/artifacts.py."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from components.artifacts import samples_markdown
from components.results import Evaluated, Gated

PAUSE_KEY = "approval"          # Prefect pause key of the approval pause (one per flow run)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Approval:
    """A person's decision on a promotion, or the lack of one within the timeout."""
    approved: bool
    reviewer: str = ""
    comment: str = ""
    decided_at: str = ""            # ISO-8601 UTC: when the flow received the decision (or gave up)
    timed_out: bool = False
    timeout: int | None = None      # the gate.approval_timeout it waited, seconds

    @classmethod
    def decided(cls, approved: bool, reviewer: str, comment: str = "", at: str | None = None) -> "Approval":
        return cls(bool(approved), reviewer.strip(), comment.strip(), at or _now())

    @classmethod
    def no_decision(cls, timeout: int, at: str | None = None) -> "Approval":
        return cls(False, decided_at=at or _now(), timed_out=True, timeout=int(timeout))

    @property
    def decision(self) -> str:
        return "timeout" if self.timed_out else ("approve" if self.approved else "reject")

    def describe(self) -> str:
        if self.timed_out:
            return f"no decision within {self.timeout} s"
        verb = "approved" if self.approved else "rejected"
        return f"{verb} by {self.reviewer}" + (f": {self.comment}" if self.comment else "")

    def to_metadata(self) -> dict[str, Any]:
        """What is stored with the model (and in the run's approval.json): no None values,
        which BentoML metadata refuses."""
        out: dict[str, Any] = {"required": True, "decision": self.decision, "approved": self.approved,
                               "reviewer": self.reviewer, "comment": self.comment, "decided_at": self.decided_at}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out


def needs_approval(gated: Gated, require_approval: bool) -> bool:
    """Only a promotion waits for a person; a champion the gate keeps needs nobody."""
    return bool(require_approval and gated.promote)


def apply(gated: Gated, approval: Approval) -> Gated:
    """The final decision: promote only when the gate promotes AND a person approved. The
    reason says who decided and why, then what the gate said."""
    if not gated.promote:                  # the gate kept the champion: no approval changes that
        promote, reason = False, gated.reason
    elif approval.timed_out:
        promote, reason = False, f"{approval.describe()}: not promoted (the gate said: {gated.reason})"
    elif approval.approved:
        promote, reason = True, f"{gated.reason}; {approval.describe()}"
    else:
        promote, reason = False, f"{approval.describe()}; not promoted (the gate said: {gated.reason})"
    return dataclasses.replace(gated, promote=promote, reason=reason,
                               figure=("PROMOTE: " if promote else "KEEP: ") + reason,
                               approval={**approval.to_metadata(), "gate_promote": gated.promote,
                                         "gate_reason": gated.reason})


def record(run_dir: Path, final: Gated) -> Gated:
    """Write approval.json, add the approval to gate.json, and list approval.json among the
    gate's files."""
    run_dir = Path(run_dir)
    entry = {**(final.approval or {}), "promote": final.promote, "reason": final.reason}
    path = run_dir / "approval.json"
    path.write_text(json.dumps(entry, indent=2))
    gate_json = run_dir / "gate.json"
    if gate_json.is_file():
        gate = json.loads(gate_json.read_text())
        gate.update(approval=entry, promote=final.promote, reason=final.reason)   # the final decision
        gate_json.write_text(json.dumps(gate, indent=2, default=str))
    return dataclasses.replace(final, files=(*final.files, str(path)))


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def approval_markdown(*, model_name: str, run_id: str, flow_run_id: str, evaluated: Evaluated,
                      gated: Gated, audit_passed: bool, audit_reasons: tuple[str, ...] | list[str],
                      timeout: int) -> str:
    """The page a reviewer decides on: what the gate said, the scores, the metrics, the audit
    and the samples, and how to answer."""
    c, champ = gated.challenger, gated.champion
    lines = [f"# Approval needed: {model_name}", "",
             f"genloop run `{run_id}`, flow run `{flow_run_id}`", "",
             f"**The gate says promote:** {gated.reason}", "",
             "Approve: `genloop approve " + flow_run_id + " --reviewer NAME --comment \"...\"`  ",
             "Reject: `genloop approve " + flow_run_id + " --reject --reviewer NAME --comment \"...\"`  ",
             "or **Resume** this flow run in the Prefect UI and fill in the form "
             "(approve ticked promotes; unticked rejects).", "",
             f"No decision within {timeout} s: not promoted.", "",
             "## Scores", "", "| | challenger | champion |", "|---|---|---|",
             f"| {c.metric} | {_value(c.value)} | {_value(champ.value) if champ else '(none)'} |",
             f"| interval half-width | {_value(c.half_width)} | {_value(champ.half_width) if champ else ''} |",
             f"| dataset md5 | {c.dataset_md5} | {champ.dataset_md5 if champ else ''} |",
             f"| model | (this run) | {champ.tag if champ else ''} |", "",
             "## Metrics", "", "| metric | value |", "|---|---|"]
    for key, value in evaluated.metrics.items():
        if not isinstance(value, (dict, list)):
            lines.append(f"| {key} | {_value(value)} |")
    interval = evaluated.metrics.get("fid_interval")
    if isinstance(interval, dict) and {"low", "high"} <= interval.keys():
        lines += ["", f"FID bootstrap interval: {_value(interval['low'])} .. {_value(interval['high'])}"]
    lines += ["", f"## Audit: {'pass' if audit_passed else 'FAIL'}", "", *[f"- {r}" for r in audit_reasons], "",
              "## Samples", "", *samples_markdown(evaluated), ""]
    return "\n".join(lines)
