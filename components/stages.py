"""The stages of the retraining loop. Each takes the run context (components/runs.py)
and what earlier stages returned, and returns a typed result (components/results.py)
with its key figure and the files it wrote; the Prefect flow only calls these in order."""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from pathlib import Path

from components.errors import GenloopError
from components.gate import SeedSpread
from components.results import (Audited, Augmented, Evaluated, Gated, Packaged, Reported, StageResult,
                                Trained, Validated)
from components.runs import RunContext

log = logging.getLogger(__name__)


class ValidationFailed(GenloopError):
    pass


def finished_line(name: str, result: StageResult) -> str:
    """The one line a stage logs as it finishes: name, seconds, key figure."""
    return f"{name:<8} {result.seconds:6.1f} s  {result.figure}"


def timed(stage):
    """Add the stage's wall time to its result (shown in the run summary) and log the
    stage's one line as it finishes (`finished_line`)."""
    @functools.wraps(stage)
    def wrapper(*args, **kwargs) -> StageResult:
        start = time.perf_counter()
        result = stage(*args, **kwargs)
        result = dataclasses.replace(result, seconds=time.perf_counter() - start)
        log.info("%s", finished_line(stage.__name__, result))
        return result
    return wrapper


def _write_json(path: Path, payload) -> str:
    path.write_text(json.dumps(payload, indent=2, default=str))
    return str(path)


@timed
def validate(ctx: RunContext) -> Validated:
    from components.validation.run import validate_dataset

    report = validate_dataset(ctx.dataset_dir, ctx.config, ctx.run_dir / "validation")
    if not report.success:
        raise ValidationFailed(f"data validation failed for {ctx.dataset_dir}; nothing was trained "
                               f"or promoted.\n{report.summary()}\nReport: {report.json_path}\n"
                               f"Data Docs: {report.docs_path}")
    return Validated(figure=report.summary(), files=(report.json_path, report.docs_path),
                     report_json=report.json_path)


@timed
def augment(ctx: RunContext) -> Augmented:
    """The augmentation train will apply, and (images) a preview: 50 images, then the same
    50 augmented."""
    from components.training.run import plan_augmentation

    cfg = ctx.config
    plan = plan_augmentation(ctx)
    if plan.kind == "text":
        return Augmented(figure=plan.describe(), plan=plan)
    import torch

    from components.data.images import to_uint8
    from components.data.loaders import run_images
    from components.report import save_grid

    batch = run_images(ctx).images[:50]
    torch.manual_seed(cfg.seed)
    preview = torch.cat([batch, plan.image_transform()(batch)])
    path = save_grid(to_uint8(preview), ctx.run_dir / "augment_preview.png")
    return Augmented(figure=plan.describe(), files=(path,), plan=plan)


@timed
def train(ctx: RunContext, augmented: Augmented) -> Trained:
    from components.training.run import train_run

    return train_run(ctx, augmented.plan)


@timed
def evaluate(ctx: RunContext, trained: Trained) -> Evaluated:
    import pandas as pd

    from components.models.io import load_checkpoint
    from components.training.device import pick_device

    device = pick_device()
    model, _ = load_checkpoint(Path(trained.checkpoint), device=str(device))
    out = ctx.run_dir / "evaluate"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if model.modality == "image":
        from components.data.images import list_images
        from components.data.loaders import run_images
        from components.evaluation.run import evaluate_images
        files = [path for path, _ in list_images(ctx.dataset_dir)]
        metrics, features, sample_file = evaluate_images(run_images(ctx), ctx.config, model, ctx.dataset_md5,
                                                         ctx.paths, out, str(device), files)
    else:
        from components.data.loaders import run_text
        from components.evaluation.run import evaluate_text
        metrics, features, sample_file = evaluate_text(run_text(ctx)[1], ctx.config, model, out, str(device))
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    metrics_path = _write_json(out / "metrics.json", metrics)
    reference = out / "reference.csv"
    pd.DataFrame(features).to_csv(reference, index=False)
    generated = out / "generated_features.npy"
    return Evaluated(figure=f"{model.metric} {metrics[model.metric]:.3f}",
                     files=(metrics_path, sample_file, str(reference)), metric=model.metric,
                     metrics=metrics, reference_csv=str(reference),
                     generated_features=str(generated) if generated.is_file() else "")


@timed
def audit(ctx: RunContext, trained: Trained) -> Audited:
    from components.models.io import load_checkpoint
    from components.training.device import pick_device

    model, _ = load_checkpoint(Path(trained.checkpoint), device=str(pick_device()))
    if model.modality == "image":
        from components.audits.run import audit_images
        from components.data.loaders import run_images
        bias, memo = audit_images(run_images(ctx), ctx.config, model, ctx.dataset_md5, ctx.paths)
    else:
        from components.audits.run import audit_text
        from components.data.loaders import run_text
        bias, memo = audit_text(run_text(ctx)[0], ctx.config, model)
    files = (_write_json(ctx.run_dir / "bias.json", bias), _write_json(ctx.run_dir / "memorisation.json", memo))
    passed = bias["passed"] and memo["passed"]
    reasons = (bias["reason"], memo["reason"])
    return Audited(figure=("pass: " if passed else "FAIL: ") + "; ".join(reasons), files=files,
                   passed=passed, reasons=reasons, bias=bias, memorisation=memo)


@timed
def gate(ctx: RunContext, evaluated: Evaluated, audited: Audited, seed_spread: SeedSpread | None = None) -> Gated:
    """Champion vs challenger (components/gate.py). With gate.use_seed_spread the margin also
    covers training noise: `seed_spread` (a sweep's own measurement), else the spread the newest
    `genloop sweep` of this model recorded."""
    from components.gate import Scorecard, decide, differences, needs_rescore
    from components.registry import champion_summary

    if ctx.config.gate.use_seed_spread and seed_spread is None:
        from components.sweep import load_spread

        seed_spread = load_spread(ctx.root, ctx.config.name, evaluated.metric)
    current = champion_summary(ctx.config.name)
    champion = None if current is None else Scorecard.from_metadata(current.tag, current.metadata.get("scorecard", {}))
    at_promotion = champion
    challenger = Scorecard.of(evaluated.metric, evaluated.metrics, ctx.dataset_md5)
    note = ""
    if ctx.config.gate.use_seed_spread:            # the margin uses it: it must be of this protocol
        note = seed_spread.check(challenger)
    challenger = challenger.with_seed_spread(seed_spread)
    if current is not None and needs_rescore(challenger, champion, ctx.config.gate):
        from components.evaluation.rescore import rescore
        from components.training.device import pick_device

        gaps = "; ".join(differences(challenger, champion))
        try:
            champion = rescore(current, champion, challenger, ctx.config, ctx.dataset_dir, ctx.paths,
                               str(pick_device()))
            note += (f"champion {champion.tag} re-scored this run's way ({gaps}): {champion.metric} "
                    f"{champion.value:.4g}, {at_promotion.value:.4g} at promotion. ")
        except GenloopError as exc:
            note += f"champion {champion.tag} could not be re-scored this run's way ({exc}). "
    decision = decide(challenger, champion, audited.passed, audited.reasons, ctx.config.gate)
    reason = note + decision.reason
    path = _write_json(ctx.run_dir / "gate.json",
                       {"promote": decision.promote, "reason": reason,
                        "challenger": dataclasses.asdict(challenger),
                        "champion": champion and dataclasses.asdict(champion),
                        "champion_at_promotion": at_promotion and dataclasses.asdict(at_promotion),
                        "seed_spread": seed_spread and dataclasses.asdict(seed_spread)})
    return Gated(figure=("PROMOTE: " if decision.promote else "KEEP: ") + reason, files=(path,),
                 promote=decision.promote, reason=reason, challenger=challenger, champion=champion)


def _trained_classes(ctx: RunContext) -> list[str]:
    """The configured classes the training data held (a dataset may lack some: the
    service then refuses those labels and draws unlabelled requests among these)."""
    if ctx.config.data.kind != "image":
        return []
    from components.data.images import list_images

    present = {label for _, label in list_images(ctx.dataset_dir)}
    return [name for name in ctx.config.data.labels if name in present]


@timed
def package(ctx: RunContext, trained: Trained, evaluated: Evaluated, audited: Audited,
            gated: Gated) -> Packaged:
    """Save the promoted model in the store, build its bento, then make it the champion."""
    if not gated.promote:
        return Packaged(figure="not promoted: nothing packaged", model_tag=None, bento_tag=None)
    from components.registry import promote

    cfg = ctx.config
    metadata = {**ctx.provenance(), "metrics": evaluated.metrics,
                "audit": {"bias": audited.bias, "memorisation": audited.memorisation},
                "decision": gated.reason, "scorecard": gated.challenger.to_metadata(), "config": cfg.to_dict(),
                "class_names": list(cfg.data.labels), "trained_classes": _trained_classes(ctx),
                "modality": cfg.data.kind, "approval": gated.approval or {"required": False}}
    files = {"checkpoint": Path(trained.checkpoint), "reference.csv": Path(evaluated.reference_csv)}
    if evaluated.generated_features:
        files["generated_features.npy"] = Path(evaluated.generated_features)
    tag, bento = promote(cfg.name, files, {"family": cfg.model.family, "modality": cfg.data.kind}, metadata,
                         ctx.run_dir / "bento" if cfg.package else None,
                         replaces=gated.champion.tag if gated.champion else None)
    path = _write_json(ctx.run_dir / "package.json", {"model_tag": tag, "bento_tag": bento})
    return Packaged(figure=f"champion {tag}" + (f", bento {bento}" if bento else ""), files=(path,),
                    model_tag=tag, bento_tag=bento)


@timed
def report(ctx: RunContext, evaluated: Evaluated, audited: Audited, gated: Gated) -> Reported:
    from components.report import write_report

    path, markdown = write_report(ctx.run_dir, ctx.run_id, evaluated, audited, gated)
    return Reported(figure="report.md", files=(path,), markdown=markdown)
