"""The promotion gate: champion/challenger on one lower-is-better metric. Every rule of the
policy lives in `decide`; the config's `gate:` section (GateConfig) sets its knobs."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from components.config import GateConfig
from components.errors import GenloopError

# What must match for two evaluations to be comparable, per metric: FID is biased by the
# sample counts; perplexity depends on the window, the stride and how many tokens were scored.
PROTOCOL_KEYS = {"fid": ("samples", "reference_samples"), "perplexity": ("tokens", "window", "stride")}


@dataclass(frozen=True)
class Scorecard:
    """One evaluated model, as the gate compares it (stored in the model's metadata)."""
    metric: str
    value: float
    half_width: float                         # bootstrap interval half-width (0: none)
    dataset_md5: str                          # the dataset it was evaluated on
    protocol: dict[str, int] = field(default_factory=dict)
    tag: str | None = None                    # model tag, once stored
    seed_sd: float = 0.0                      # training noise: the metric's standard deviation over
    seed_runs: int = 0                        # this many training seeds of the same config (0: unmeasured)

    @property
    def seed_half_width(self) -> float:
        """Half-width of the band that holds 95% of single training runs (normal, 1.96 sd):
        the training-noise counterpart of the bootstrap half-width (0 under two seeds)."""
        return SEED_Z * self.seed_sd if self.seed_runs >= 2 else 0.0

    def with_seed_spread(self, spread: "SeedSpread | None") -> "Scorecard":
        if spread is None:
            return self
        return dataclasses.replace(self, seed_sd=spread.sd, seed_runs=spread.runs)

    @classmethod
    def of(cls, metric: str, metrics: dict[str, Any], dataset_md5: str, tag: str | None = None) -> "Scorecard":
        """From an evaluation's metrics.json."""
        interval = metrics.get(f"{metric}_interval") or {"half_width": 0.0}
        return cls(metric, float(metrics[metric]), float(interval["half_width"]), dataset_md5,
                   {k: int(metrics[k]) for k in PROTOCOL_KEYS.get(metric, ()) if k in metrics}, tag)

    @classmethod
    def from_metadata(cls, tag: str, card: dict[str, Any]) -> "Scorecard":
        """From what `to_metadata` wrote into a stored model's metadata["scorecard"]."""
        if not card:
            raise GenloopError(f"champion {tag} has no gate scorecard (packaged by an older genloop); "
                               f"point the alias at a newer model with `genloop champion NAME --set TAG`.")
        return cls(card["metric"], float(card["value"]), float(card["half_width"]), card["dataset_md5"],
                   {k: int(v) for k, v in card["protocol"].items()}, tag,
                   float(card.get("seed_sd", 0.0)), int(card.get("seed_runs", 0)))

    def to_metadata(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "half_width": self.half_width,
                "dataset_md5": self.dataset_md5, "protocol": dict(self.protocol),
                "seed_sd": self.seed_sd, "seed_runs": self.seed_runs}


SEED_Z = 1.96


@dataclass(frozen=True)
class SeedSpread:
    """Training noise of one config: its metric over several training seeds, everything else
    the same (measured by `genloop sweep`, components/sweep.py)."""
    metric: str
    sd: float                                 # sample standard deviation over the seeds (ddof 1)
    runs: int                                 # finished runs it is measured on (>= 2)
    dataset_md5: str
    protocol: dict[str, int] = field(default_factory=dict)
    source: str = ""                          # the sweep that measured it
    settings: dict[str, Any] = field(default_factory=dict)   # its --set overrides and --grid values

    @property
    def half_width(self) -> float:
        return SEED_Z * self.sd

    def check(self, challenger: Scorecard) -> str:
        """Whether this spread may stand for `challenger`'s training noise. Another evaluation
        protocol (FID sample counts, perplexity window) has other noise: refused. Other data is
        the normal case in a retraining loop (the spread of a config changes slowly with its
        data): allowed, and said. Returns that note ("" when the data is the same)."""
        gaps = [f"{key} {self.protocol.get(key)} there vs {challenger.protocol.get(key)} here"
                for key in sorted(self.protocol.keys() | challenger.protocol.keys())
                if self.protocol and self.protocol.get(key) != challenger.protocol.get(key)]
        if gaps:
            raise GenloopError(f"the seed spread of {self.source or 'the recorded sweep'} was measured with "
                               f"another evaluation protocol ({'; '.join(gaps)}): rerun `genloop sweep --seeds "
                               f"0-4` with this config, or set gate.use_seed_spread: false.")
        where = f"seed spread sd {self.sd:.4g} over {self.runs} runs from {self.source or 'a sweep'}"
        changed = (self.settings or {}).get("set") or {}
        if changed:
            where += f" (its --set {', '.join(f'{k}={v}' for k, v in changed.items())})"
        if self.dataset_md5 and self.dataset_md5 != challenger.dataset_md5:
            return f"{where}, measured on dataset md5 {self.dataset_md5}, this run's data is {challenger.dataset_md5}. "
        return f"{where}. "


def noise_margin(challenger: Scorecard, policy: GateConfig) -> tuple[float, str]:
    """The noise the gate's margin covers, and in words. Sampling noise (the FID bootstrap
    half-width, `gate.use_interval`) and training noise (the seed half-width, with
    `gate.use_seed_spread`) are independent, so they add in quadrature."""
    sampling = challenger.half_width if policy.use_interval else 0.0
    training = challenger.seed_half_width if policy.use_seed_spread else 0.0
    parts = []
    if policy.use_interval:
        parts.append(f"evaluation sampling noise (bootstrap half-width {sampling:.4g})" if sampling else
                     "evaluation sampling noise: none measured (no bootstrap interval)")
    else:
        parts.append("not evaluation sampling noise (gate.use_interval off)")
    if policy.use_seed_spread:
        parts.append(f"training noise (seed half-width {training:.4g} = {SEED_Z} x sd {challenger.seed_sd:.4g} "
                     f"over {challenger.seed_runs} seeds)")
    else:
        parts.append("not training noise (gate.use_seed_spread off)")
    return math.hypot(sampling, training), "; ".join(parts)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def differences(challenger: Scorecard, champion: Scorecard) -> list[str]:
    """What makes the two scores incomparable (empty: comparable)."""
    out = []
    if challenger.metric != champion.metric:
        out.append(f"metric {champion.metric} vs {challenger.metric}")
    if challenger.dataset_md5 != champion.dataset_md5:
        out.append(f"dataset md5 {champion.dataset_md5} vs {challenger.dataset_md5}")
    for key in sorted(champion.protocol.keys() | challenger.protocol.keys()):
        mine, theirs = challenger.protocol.get(key), champion.protocol.get(key)
        if mine != theirs:
            out.append(f"{key} {theirs} vs {mine}")
    return out


def needs_rescore(challenger: Scorecard, champion: Scorecard | None, policy: GateConfig) -> bool:
    """A champion evaluated on other data or with another protocol, on the same metric, is
    re-measured the challenger's way (components/evaluation/rescore.py) before `decide`,
    unless `gate.rescore_champion` is off. This is what lets a retraining on new data
    replace a champion trained on the old."""
    return (champion is not None and policy.rescore_champion and champion.metric == challenger.metric
            and bool(differences(challenger, champion)))


def decide(challenger: Scorecard, champion: Scorecard | None, audits_passed: bool,
           audit_reasons: tuple[str, ...] | list[str], policy: GateConfig) -> Decision:
    """Promote only a challenger that passes its audits and has a finite score, when there
    is no champion, or when it beats the champion's score by more than the margin on
    the same metric, dataset and evaluation protocol. The margin is the larger of `gate.margin`
    and the noise (`noise_margin`): with `gate.use_interval` the bootstrap half-width (sampling
    noise), with `gate.use_seed_spread` also the seed half-width (training noise). Incomparable scores keep the
    champion unless `gate.allow_incomparable` is set."""
    name = challenger.metric
    if not audits_passed:
        return Decision(False, "audit failed: " + "; ".join(audit_reasons))
    if not math.isfinite(challenger.value):
        return Decision(False, f"the challenger's {name} is {challenger.value}: not a score; nothing promoted")
    if champion is None:
        return Decision(True, f"no champion yet; {name} {challenger.value:.4g}")
    gaps = differences(challenger, champion)
    across = f" (compared across: {'; '.join(gaps)}, as gate.allow_incomparable says)" if gaps else ""
    if gaps and not policy.allow_incomparable:
        return Decision(False, f"not comparable with champion {champion.tag} (champion vs challenger: "
                               f"{'; '.join(gaps)}); champion kept. Evaluate both the same way, or set "
                               f"gate.allow_incomparable: true to compare anyway")
    if challenger.metric != champion.metric:
        return Decision(True, f"champion {champion.tag} is scored on {champion.metric}, the challenger on "
                              f"{name}: no common scale, so the challenger replaces it{across}")
    noise, covers = noise_margin(challenger, policy)
    margin = max(policy.margin, noise)
    why = (f"margin {margin:.4g} = max(gate.margin {policy.margin:.4g}, noise {noise:.4g}; it covers "
           f"{covers})")
    if challenger.value < champion.value - margin:
        return Decision(True, f"{name} {challenger.value:.4g} beats champion {champion.tag} "
                              f"({champion.value:.4g}) by more than the {why}{across}")
    return Decision(False, f"{name} {challenger.value:.4g} does not beat champion {champion.tag} "
                           f"({champion.value:.4g}) by more than the {why}; champion kept{across}")
