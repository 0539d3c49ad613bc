"""Great Expectations adapter: the only module that talks to GX.

One ephemeral context validates one or more pandas tables, each against its list of
expectations; the Data Docs HTML and a compact JSON report are written into the run dir.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAX_EXAMPLES = 5


@dataclass
class Failure:
    suite: str
    expectation: str
    column: str | None
    unexpected: int | None
    observed: object = None
    examples: list[str] = field(default_factory=list)   # up to 5 offending files or lines


@dataclass
class ValidationReport:
    success: bool
    evaluated: int
    rows: dict[str, int]
    failures: list[Failure]
    json_path: str
    docs_path: str

    def summary(self) -> str:
        rows = ", ".join(f"{n} {name} rows" for name, n in self.rows.items())
        if self.success:
            return f"{self.evaluated} expectations passed over {rows}"
        lines = [f"{len(self.failures)} of {self.evaluated} expectations failed over {rows}:"]
        for f in self.failures:
            where = f" on '{f.column}'" if f.column else ""
            count = f" ({f.unexpected} bad)" if f.unexpected else ""
            observed = f" (observed {f.observed})" if f.observed is not None and not f.examples else ""
            lines.append(f"  - {f.suite}: {f.expectation}{where}{count}{observed}"
                         + (f": {', '.join(f.examples)}" if f.examples else ""))
        return "\n".join(lines)


def _context(docs_dir: Path):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(site_name="run", site_config={
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}})
    return context


def _failures(suite_name: str, result, df) -> list[Failure]:
    paths = df["path"].tolist() if "path" in df.columns else []
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg, res = r.expectation_config, (r.result or {})
        idx = res.get("unexpected_index_list") or []
        examples = [str(paths[i]) for i in idx[:MAX_EXAMPLES] if isinstance(i, int) and i < len(paths)]
        if not examples and res.get("partial_unexpected_list") and not paths:
            examples = [str(v) for v in res["partial_unexpected_list"][:MAX_EXAMPLES]]
        if res.get("partial_missing_list"):          # e.g. a class folder with no files
            examples = [f"missing {v}" for v in res["partial_missing_list"][:MAX_EXAMPLES]]
        if r.exception_info and r.exception_info.get("raised_exception"):
            examples = [r.exception_info.get("exception_message", "")[:200]]
        observed = res.get("observed_value")
        out.append(Failure(suite=suite_name, expectation=cfg.type, column=cfg.kwargs.get("column"),
                           unexpected=res.get("unexpected_count"),
                           observed=observed if isinstance(observed, (int, float, str, list)) else None,
                           examples=examples))
    return out


def validate_tables(suites: list[tuple[str, "pandas.DataFrame", list[tuple[str, dict]]]],  # noqa: F821
                    report_dir: Path) -> ValidationReport:
    """suites: (name, table, [(expectation class, kwargs)]). One report over all of them."""
    import great_expectations as gx

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    docs_dir = report_dir / "data_docs"
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("genloop")
    failures, evaluated, rows, success = [], 0, {}, True
    for name, df, expectations in suites:
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        for expectation, kwargs in expectations:
            suite.add_expectation(getattr(gx.expectations, expectation)(**kwargs))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{name}_checkpoint", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["run"])],
            result_format={"result_format": "COMPLETE"}))
        result = next(iter(checkpoint.run(batch_parameters={"dataframe": df}).run_results.values()))
        success &= bool(result.success)
        evaluated += len(result.results)
        rows[name] = len(df)
        failures += _failures(name, result, df)
    json_path = report_dir / "validation.json"
    report = ValidationReport(success=success, evaluated=evaluated, rows=rows, failures=failures,
                              json_path=str(json_path), docs_path=str(docs_dir / "index.html"))
    json_path.write_text(json.dumps(asdict(report), indent=2, default=str))
    return report
