"""Validate a dataset as the config describes it."""
from __future__ import annotations

from pathlib import Path

from components.config import DataConfig
from components.validation.gx_adapter import ValidationReport, validate_table
from components.validation.suites import image_expectations, text_expectations
from components.validation.tables import image_table, text_table


def validate_dataset(dataset_dir: Path, cfg: DataConfig, report_dir: Path) -> ValidationReport:
    if cfg.kind == "image":
        return validate_table(image_table(dataset_dir), image_expectations(cfg),
                              "image_suite", report_dir)
    return validate_table(text_table(dataset_dir), text_expectations(cfg), "text_suite", report_dir)
