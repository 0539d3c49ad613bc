"""The retraining flow: validate -> augment -> train -> evaluate -> audit -> gate -> (a person's
approval, with gate.require_approval) -> package -> report; every run publishes the Prefect
artifacts `metrics-<model>` (table) and `report-<model>` (markdown, sample grid embedded):
components/artifacts.py."""
from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from components import approval, artifacts, stages
from components.dashboard.workspace import record_run
from components.results import RunStages
from components.runs import prepare_run
from components.summary import write_summary
from components.sweep import require_spread_for
from flows.approval import await_approval, require_server

_task = task(cache_policy=NO_CACHE, retries=0)

prepare = _task(prepare_run, name="prepare")
validate = _task(stages.validate, name="validate")
augment = _task(stages.augment, name="augment")
train = _task(stages.train, name="train")
evaluate = _task(stages.evaluate, name="evaluate")
audit = _task(stages.audit, name="audit")
gate = _task(stages.gate, name="gate")
package = _task(stages.package, name="package")
report = _task(stages.report, name="report")
dashboard = _task(record_run, name="dashboard")


@flow(name="genloop-retrain", log_prints=True)
def retrain(root: str, config_path: str, overrides: dict | None = None,
            data_rev: str | None = None) -> dict:
    require_spread_for(root, config_path, overrides)   # deployed runs too: gate.use_seed_spread, nothing recorded
    ctx = prepare(root, config_path, overrides, data_rev)
    if ctx.config.gate.require_approval:
        require_server("gate.require_approval")          # before training, not after
    validated = validate(ctx)
    augmented = augment(ctx)
    trained = train(ctx, augmented)
    evaluated = evaluate(ctx, trained)
    audited = audit(ctx, trained)
    gated = gate(ctx, evaluated, audited)
    if approval.needs_approval(gated, ctx.config.gate.require_approval):
        gated = await_approval(ctx, evaluated, audited, gated)
    packaged = package(ctx, trained, evaluated, audited, gated)
    reported = report(ctx, evaluated, audited, gated)
    summary = write_summary(ctx, RunStages(validated, augmented, trained, evaluated, audited, gated,
                                           packaged, reported))
    name, about = ctx.config.name, f"genloop run {ctx.run_id}: {'promoted' if gated.promote else 'not promoted'}"
    create_table_artifact(artifacts.metrics_table(summary, trained, evaluated, gated),
                          key=artifacts.artifact_key("metrics", name), description=about)
    create_markdown_artifact(artifacts.report_markdown(reported.markdown, evaluated, ctx.run_dir),
                             key=artifacts.artifact_key("report", name), description=about)
    dashboard(root, ctx.run_dir)                       # the Evidently workspace's snapshot of this run
    return summary
