"""GenloopValue: an Evidently metric holding one figure genloop measured (FID, a drift
score, a class share) so that Evidently's dashboards can draw it over time.

Evidently's own metrics compute from the rows of a dataset; genloop's figures (FID from
Inception features, MMD from embeddings, the gate's decision) are computed elsewhere and
only need storing. So the snapshot's dataset is one row of figures and this metric reads
one column of it. Its only parameter is the column name: that is the series label the
dashboard panels select on (a value in the parameters would make every point its own
series). The UI needs no import of this module: snapshots store the metric's config and
result, not its class."""
from __future__ import annotations

from typing import List, Optional

from evidently.core.datasets import Dataset
from evidently.core.metric_types import BoundTest, SingleValueCalculation, SingleValueMetric

TITLES = {
    "fid": "FID of the run's model", "fid_low": "FID interval low", "fid_high": "FID interval high",
    "kid": "KID", "precision": "precision (prdc)", "recall": "recall (prdc)", "density": "density (prdc)",
    "coverage": "coverage (prdc)", "perplexity": "perplexity of the run's model",
    "bits_per_char": "bits per character",
    "champion_score": "champion's score the gate compared with", "promoted": "promoted (1) or kept (0)",
    "promoted_score": "score of a promoted model", "audit_passed": "audits passed (1) or not (0)",
    "tv_distance": "class-share TV distance to the training data",
    "data_drift_score": "data drift score (embeddings)", "data_drift_threshold": "data drift threshold",
    "class_share_tv": "class-share TV distance, newest data vs the champion's",
    "staleness_score": "champion's score on the newest data", "staleness_limit": "staleness limit",
    "output_drift_share": "share of drifted output columns", "output_drift_threshold": "output drift threshold",
    "fired_data": "data drift fired", "fired_staleness": "staleness fired", "fired_output": "output drift fired",
}


def title(column: str) -> str:
    if column.startswith("share:"):
        return f"share of class {column[6:]} in generated samples"
    if column.startswith("data_share:"):
        return f"share of class {column[11:]} in the newest data"
    return TITLES.get(column, column)


class GenloopValue(SingleValueMetric):
    """One figure genloop measured: the value of `column` in the snapshot's one-row dataset."""

    column: str

    def _default_tests(self, context) -> List[BoundTest]:
        return []

    def _default_tests_with_reference(self, context) -> List[BoundTest]:
        return []


class GenloopValueCalculation(SingleValueCalculation[GenloopValue]):
    def calculate(self, context, current_data: Dataset, reference_data: Optional[Dataset]):
        return self.result(float(current_data.as_dataframe()[self.metric.column].iloc[0])), None

    def display_name(self) -> str:
        return title(self.metric.column)
