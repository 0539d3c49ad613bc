"""The promotion gate: champion/challenger on one lower-is-better metric."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(metric: str, challenger: float, champion: float | None, audits_passed: bool,
           audit_reasons: list[str], margin: float = 0.0, champion_tag: str | None = None) -> Decision:
    if not audits_passed:
        return Decision(False, "audit failed: " + "; ".join(audit_reasons))
    if champion is None:
        return Decision(True, f"no champion yet; {metric} {challenger:.4g}")
    if challenger < champion - margin:
        return Decision(True, f"{metric} {challenger:.4g} beats champion {champion_tag} "
                              f"({champion:.4g}) by more than {margin:.4g}")
    return Decision(False, f"{metric} {challenger:.4g} does not beat champion {champion_tag} "
                           f"({champion:.4g}) by more than {margin:.4g}; champion kept")
