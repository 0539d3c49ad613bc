"""The expectation suites, as (expectation class name, arguments) lists built from config."""
from __future__ import annotations

from components.config import DataConfig

MIN_CORPUS_CHARS = 10_000


def image_expectations(cfg: DataConfig) -> list[tuple[str, dict]]:
    mode = {1: ["L"], 3: ["RGB"]}[cfg.channels]
    return [
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToBeInSet", {"column": "decodes", "value_set": [True]}),
        ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": cfg.image_size,
                                           "max_value": cfg.image_size}),
        ("ExpectColumnValuesToBeBetween", {"column": "height", "min_value": cfg.image_size,
                                           "max_value": cfg.image_size}),
        ("ExpectColumnValuesToBeInSet", {"column": "mode", "value_set": mode}),
        ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": list(cfg.labels)}),
    ]


def text_expectations(cfg: DataConfig) -> list[tuple[str, dict]]:
    return [
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToBeInSet", {"column": "utf8", "value_set": [True]}),
        ("ExpectColumnSumToBeBetween", {"column": "chars", "min_value": MIN_CORPUS_CHARS}),
    ]
