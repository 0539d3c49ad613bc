"""Validate a dataset as the config describes it."""
from __future__ import annotations

from pathlib import Path

from components.config import RunConfig
from components.validation.gx_adapter import ValidationReport, validate_tables
from components.validation.suites import document_expectations, image_expectations, line_expectations
from components.validation.tables import class_folders, image_table, text_tables


def validate_dataset(dataset_dir: Path, cfg: RunConfig, report_dir: Path) -> ValidationReport:
    if cfg.data.kind == "image":
        suites = [("image_files", image_table(dataset_dir),
                   image_expectations(cfg.data, cfg.validate, class_folders(dataset_dir)))]
    else:
        documents, lines = text_tables(dataset_dir)
        suites = [("text_documents", documents, document_expectations(cfg.validate)),
                  ("text_lines", lines, line_expectations(cfg.validate))]
    return validate_tables(suites, report_dir)
