"""Great Expectations adapter: the only module that talks to GX.

An ephemeral context validates a pandas table against a list of expectations; the
Data Docs HTML and a compact JSON report are written into the run dir.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Failure:
    expectation: str
    column: str | None
    unexpected: int | None
    examples: list[str] = field(default_factory=list)   # up to 5 offending paths


@dataclass
class ValidationReport:
    success: bool
    evaluated: int
    rows: int
    failures: list[Failure]
    json_path: str
    docs_path: str

    def summary(self) -> str:
        if self.success:
            return f"{self.evaluated} expectations passed over {self.rows} rows"
        lines = [f"{len(self.failures)} of {self.evaluated} expectations failed over {self.rows} rows:"]
        for f in self.failures:
            where = f" on '{f.column}'" if f.column else ""
            count = f" ({f.unexpected} bad)" if f.unexpected else ""
            lines.append(f"  - {f.expectation}{where}{count}"
                         + (f": {', '.join(f.examples)}" if f.examples else ""))
        return "\n".join(lines)


def validate_table(df, expectations: list[tuple[str, dict]], suite_name: str,
                   report_dir: Path) -> ValidationReport:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas(f"{suite_name}_source")
             .add_dataframe_asset("table").add_batch_definition_whole_dataframe("all"))
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for name, kwargs in expectations:
        suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite))
    docs_dir = report_dir / "data_docs"
    context.add_data_docs_site(site_name="run", site_config={
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs_dir)}})
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{suite_name}_checkpoint", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["run"])],
        result_format={"result_format": "COMPLETE"}))
    run = checkpoint.run(batch_parameters={"dataframe": df})
    result = next(iter(run.run_results.values()))

    failures = []
    paths = df["path"].tolist() if "path" in df.columns else []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        idx = (r.result or {}).get("unexpected_index_list") or []
        examples = [str(paths[i]) for i in idx[:5] if isinstance(i, int) and i < len(paths)]
        failures.append(Failure(expectation=cfg.type, column=cfg.kwargs.get("column"),
                                unexpected=(r.result or {}).get("unexpected_count"),
                                examples=examples))
    json_path = report_dir / "validation.json"
    report = ValidationReport(success=bool(result.success), evaluated=len(result.results),
                              rows=len(df), failures=failures, json_path=str(json_path),
                              docs_path=str(docs_dir / "index.html"))
    json_path.write_text(json.dumps(asdict(report), indent=2))
    return report
