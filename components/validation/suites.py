"""The expectation suites, as (expectation class name, arguments) lists built from config."""
from __future__ import annotations

from components.config import DataConfig, ValidateConfig


def image_expectations(data: DataConfig, v: ValidateConfig, folders: list[str]) -> list[tuple[str, dict]]:
    mode = {1: ["L"], 3: ["RGB"]}[data.channels]
    return [
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToBeInSet", {"column": "decodes", "value_set": [True]}),
        ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": data.image_size,
                                           "max_value": data.image_size}),
        ("ExpectColumnValuesToBeBetween", {"column": "height", "min_value": data.image_size,
                                           "max_value": data.image_size}),
        ("ExpectColumnValuesToBeInSet", {"column": "mode", "value_set": mode}),
        ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": list(data.labels)}),
        # an empty class folder (or, with validate.all_classes, a configured class with no
        # folder) is a missing label
        ("ExpectColumnDistinctValuesToContainSet", {"column": "label", "value_set": sorted(
            (set(data.labels) if v.all_classes else set()) | set(folders))}),
        ("ExpectColumnUniqueValueCountToBeBetween", {"column": "label", "min_value": v.min_classes}),
        ("ExpectColumnValuesToBeBetween", {"column": "class_share", "min_value": v.min_class_share}),
        ("ExpectColumnValuesToBeInSet", {"column": "duplicate", "value_set": [False],
                                         "mostly": 1 - v.max_duplicate_share}),
    ]


def document_expectations(v: ValidateConfig) -> list[tuple[str, dict]]:
    return [
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToBeInSet", {"column": "utf8", "value_set": [True]}),
        ("ExpectColumnValuesToBeBetween", {"column": "chars", "min_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "printable_share", "min_value": v.min_printable_share}),
        ("ExpectColumnSumToBeBetween", {"column": "chars", "min_value": v.min_corpus_chars}),
    ]


def line_expectations(v: ValidateConfig) -> list[tuple[str, dict]]:
    return [
        ("ExpectColumnValuesToBeBetween", {"column": "chars", "max_value": v.max_line_chars}),
        ("ExpectColumnValuesToBeInSet", {"column": "duplicate", "value_set": [False],
                                         "mostly": 1 - v.max_duplicate_line_share}),
    ]
