"""What each stage hands the next: typed, frozen, made of paths, hashes and plain values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.augment import AugmentPlan
from components.gate import Scorecard


@dataclass(frozen=True, kw_only=True)
class StageResult:
    figure: str                          # the key figure, one line, for the run summary
    files: tuple[str, ...] = ()          # what the stage wrote
    seconds: float = 0.0                 # wall time (set by `timed`)


@dataclass(frozen=True, kw_only=True)
class Validated(StageResult):
    report_json: str                     # compact JSON; the GX Data Docs are the other file


@dataclass(frozen=True, kw_only=True)
class Augmented(StageResult):
    plan: AugmentPlan                    # the transform train applies to every batch


@dataclass(frozen=True, kw_only=True)
class Trained(StageResult):
    checkpoint: str
    steps: int
    device: str


@dataclass(frozen=True, kw_only=True)
class Evaluated(StageResult):
    metric: str                          # the gate's metric: "fid" | "perplexity"
    metrics: dict[str, Any] = field(default_factory=dict)     # metrics.json
    reference_csv: str                   # per-generation features: the drift monitor's reference
    generated_features: str = ""         # images: Inception features of the scored samples (staleness)

    @property
    def value(self) -> float:
        return float(self.metrics[self.metric])


@dataclass(frozen=True, kw_only=True)
class Audited(StageResult):
    passed: bool
    reasons: tuple[str, ...]
    bias: dict[str, Any] = field(default_factory=dict)
    memorisation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Gated(StageResult):
    promote: bool
    reason: str
    challenger: Scorecard                # what the gate compared (stored with a promoted model)
    champion: Scorecard | None           # the champion it was compared with
    approval: dict[str, Any] | None = None   # a person's decision (components/approval.py), when
                                             # gate.require_approval asked for one; else None


@dataclass(frozen=True, kw_only=True)
class Packaged(StageResult):
    model_tag: str | None                # None when not promoted
    bento_tag: str | None


@dataclass(frozen=True, kw_only=True)
class Reported(StageResult):
    markdown: str


@dataclass(frozen=True)
class RunStages:
    """Every stage's result of one retraining run, in flow order."""
    validate: Validated
    augment: Augmented
    train: Trained
    evaluate: Evaluated
    audit: Audited
    gate: Gated
    package: Packaged
    report: Reported
