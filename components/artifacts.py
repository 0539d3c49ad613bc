"""What genloop publishes as Prefect artifacts, as plain data: the key of each artifact
(one per model, so the Prefect UI shows its history), the metrics table of a retraining
run, its markdown report with the pictures embedded, and the monitor's table of checks.
No Prefect here (tests/components/test_layering.py): flows/ hands these to
prefect.artifacts.create_table_artifact / create_markdown_artifact.

Keys (`artifact_key(kind, model)`):

| key | type | published by |
|---|---|---|
| `metrics-<model>` | table | every retraining run (flows/training.py) |
| `report-<model>` | markdown | every retraining run |
| `approval-<model>` | markdown | a run paused for approval (flows/approval.py) |
| `monitor-<model>` | markdown | every monitor run (flows/monitoring.py) |
| `monitor-checks-<model>` | table | every monitor run |
"""
from __future__ import annotations

import base64
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from components.errors import GenloopError
from components.results import Evaluated, Gated, Trained

KINDS = ("metrics", "report", "approval", "monitor", "monitor-checks", "sweep")
MAX_TEXT_SAMPLES = 4000         # characters of samples.txt shown in a markdown artifact
MAX_EMBEDDED_BYTES = 2_000_000  # a picture larger than this is named by its path, not embedded

_KEY_CHARS = re.compile(r"[^a-z0-9-]+")


def artifact_key(kind: str, model_name: str) -> str:
    """`<kind>-<model>`, a valid Prefect artifact key (lowercase letters, digits and dashes
    only): the model name is lowercased and every run of other characters (dots,
    underscores, spaces) becomes one dash, so `My_Model.v2` -> `metrics-my-model-v2`.
    Names differing only in those characters share a key (and a history)."""
    if kind not in KINDS:
        raise GenloopError(f"artifact kind {kind!r} is not one of {', '.join(KINDS)}.")
    if not isinstance(model_name, str) or not model_name.strip():
        raise GenloopError(f"an artifact key needs a model name, got {model_name!r}.")
    slug = _KEY_CHARS.sub("-", model_name.lower()).strip("-")
    if not slug:
        raise GenloopError(f"model name {model_name!r} has no letter or digit to build a Prefect artifact key "
                           f"from; name the model with letters, digits and dashes (the config's `name`).")
    return f"{kind}-{slug}"


# ---------------------------------------------------------------- pictures and samples

def png_data_uri(path: Path) -> str:
    """`data:image/png;base64,...` of a PNG file (an artifact cannot point at a local file)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise GenloopError(f"{path} is not a PNG file.")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _sample_file(evaluated: Evaluated) -> Path | None:
    for name in evaluated.files:
        if Path(name).name.startswith("samples.") and Path(name).is_file():
            return Path(name)
    return None


def samples_markdown(evaluated: Evaluated) -> list[str]:
    """The sample grid embedded as a data URI, or the text samples in a code block (cut
    at MAX_TEXT_SAMPLES characters). Used by the report and the approval page."""
    path = _sample_file(evaluated)
    if path is None:
        return ["(no samples were written)"]
    if path.suffix == ".png":
        if path.stat().st_size > MAX_EMBEDDED_BYTES:
            return [f"(sample grid too large to embed: {path})"]
        return [f"![samples]({png_data_uri(path)})"]
    text = path.read_text(errors="replace")
    if len(text) > MAX_TEXT_SAMPLES:
        text = text[:MAX_TEXT_SAMPLES] + "\n..."
    return ["```", text.replace("```", "'''").rstrip(), "```"]


_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def report_markdown(report_md: str, evaluated: Evaluated, run_dir: Path) -> str:
    """report.md as a Prefect markdown artifact: its sample grid replaced by the embedded one
    (`samples_markdown`), its other pictures (class shares) embedded too, and for text
    models the generated samples added, since report.md has none for them."""
    run_dir = Path(run_dir)
    lines: list[str] = []
    has_samples = False
    for line in report_md.splitlines():
        match = _IMAGE_LINK.fullmatch(line.strip())
        if match and Path(match.group(2)).name.startswith("samples."):
            lines += samples_markdown(evaluated)
            has_samples = True
            continue
        if match and not match.group(2).startswith("data:"):
            path = run_dir / match.group(2)
            if path.is_file() and path.stat().st_size <= MAX_EMBEDDED_BYTES:
                line = f"![{match.group(1)}]({png_data_uri(path)})"
            else:
                line = f"({match.group(1)}: {path})"
        lines.append(line)
    if not has_samples:
        lines += ["", "## Samples", "", *samples_markdown(evaluated)]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- tables

def _number(value: Any) -> Any:
    """Floats to 5 significant digits (JSON-safe: inf/nan as text); the rest unchanged."""
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    if not math.isfinite(value):
        return str(value)
    return float(f"{value:.5g}")


def _row(name: str, value: Any) -> dict[str, Any]:
    return {"quantity": name, "value": _number(value)}


def _interval(name: str, interval: Any) -> dict[str, Any] | None:
    if not isinstance(interval, dict) or not {"low", "high"} <= interval.keys():
        return None
    level = interval.get("level")
    label = f"{name} {level:.0%} interval" if isinstance(level, (int, float)) else f"{name} interval"
    text = f"{_number(float(interval['low']))} .. {_number(float(interval['high']))}"
    if interval.get("rounds"):
        text += f" ({interval['rounds']} bootstrap resamples)"
    return _row(label, text)


# shown right after the gate's metric, so the first page of the Prefect UI's table holds them
HEADLINE = {"fid": ("kid",), "perplexity": ("bits_per_char",)}
SUMMARY_KEYS = ("run_id", "model_name", "data_md5", "promoted", "model_tag", "stages")


def metrics_table(summary: dict, trained: Trained, evaluated: Evaluated, gated: Gated,
                  finished_at: str | None = None) -> list[dict[str, Any]]:
    """The `metrics-<model>` table of one retraining run: a row per quantity (columns
    `quantity`, `value`). First what a person looks for (the Prefect UI shows ten rows a
    page): the model, the gate's metric with its interval, KID (images) or bits per
    character (text), promoted yes/no, the gate's decision, the champion compared with and
    its score; then every other scalar of metrics.json, the gate's reason, the model tag,
    the approval (when asked for), and provenance: run id, data md5, dataset md5, train
    steps and device, the run's seconds and when it finished (UTC).

    `summary` is what components/summary.py `write_summary` returns."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise GenloopError(f"the run summary lacks {', '.join(missing)}: pass what write_summary returned.")
    metrics, metric = evaluated.metrics, evaluated.metric
    if metric not in metrics:
        raise GenloopError(f"the evaluation has no {metric!r} among its metrics ({', '.join(metrics) or 'none'}).")
    champion = gated.champion
    rows = [_row("model", summary["model_name"]), _row(metric, metrics[metric])]
    if (interval := _interval(metric, metrics.get(f"{metric}_interval"))) is not None:
        rows.append(interval)
    rows += [_row(key, metrics[key]) for key in HEADLINE.get(metric, ()) if key in metrics]
    rows += [_row("promoted", "yes" if summary["promoted"] else "no"),
             _row("gate decision", "promote" if gated.promote else "keep the champion"),
             _row("champion", champion.tag if champion and champion.tag else "(none)"),
             _row(f"champion {champion.metric if champion else metric}", champion.value if champion else "(none)")]
    shown = {metric, f"{metric}_interval", *HEADLINE.get(metric, ())}
    for key, value in metrics.items():
        if key in shown or value is None:
            continue
        if isinstance(value, (dict, list)):
            if key.endswith("_interval") and (row := _interval(key.removesuffix("_interval"), value)):
                rows.append(row)
            continue
        rows.append(_row("evaluate seconds" if key == "seconds" else key, value))
    rows += [_row("reason", gated.reason), _row("model tag", summary["model_tag"] or "(not promoted)")]
    if gated.approval:
        rows.append(_row("approval", f"{gated.approval.get('decision', '')} "
                                     f"{gated.approval.get('reviewer', '')}".strip()))
    seconds = sum(float(stage.get("seconds") or 0.0) for stage in summary["stages"])
    rows += [_row("run id", summary["run_id"]), _row("data md5", summary["data_md5"]),
             _row("dataset md5", gated.challenger.dataset_md5),
             _row("train steps", trained.steps), _row("device", trained.device),
             _row("run seconds", round(seconds, 1)),
             _row("finished (UTC)", finished_at or datetime.now(timezone.utc).isoformat(timespec="seconds"))]
    return rows


def monitor_table(checks: Iterable[Any]) -> list[dict[str, Any]]:
    """The `monitor-checks-<model>` table: one row per check (data, staleness, output) with
    whether it fired, its score, the threshold and the one-line summary."""
    rows = []
    for check in checks:
        for attr in ("kind", "fired", "score", "threshold", "summary"):
            if not hasattr(check, attr):
                raise GenloopError(f"{check!r} is not a monitor check (no {attr!r}).")
        rows.append({"check": check.kind, "fired": "yes" if check.fired else "no",
                     "score": _number(float(check.score)), "threshold": _number(float(check.threshold)),
                     "summary": check.summary})
    if not rows:
        raise GenloopError("a monitor table needs at least one check.")
    return rows
