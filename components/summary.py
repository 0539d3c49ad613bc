"""The run summary: one row per stage with its key figure and the files it wrote."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from components.results import RunStages, StageResult


def write_summary(ctx, stages: RunStages) -> dict:
    """summary.json: the run's provenance, one row per stage (data first) and the decision."""
    data = ctx.data
    dvc = "matches data.dvc" if data.data_matches_dvc else "DIFFERS from data.dvc"
    rows = {"data": StageResult(figure=f"{ctx.dataset_dir.name} md5 {ctx.dataset_md5}; data/ md5 "
                                       f"{data.data_md5} ({dvc})", files=(str(ctx.run_dir / "run.json"),))}
    rows.update({f.name: getattr(stages, f.name) for f in dataclasses.fields(stages)})

    def shown(path: str) -> str:
        return str(Path(path).relative_to(ctx.root)) if Path(path).is_relative_to(ctx.root) else path

    summary = {
        "run_id": ctx.run_id, "run_dir": str(ctx.run_dir), "model_name": ctx.config.name,
        "data_md5": data.data_md5, "data_matches_dvc": data.data_matches_dvc, "data_rev": data.data_rev,
        "git_sha": ctx.git_sha,
        "stages": [{"stage": name, "figure": result.figure, "seconds": round(result.seconds, 2),
                    "files": [shown(f) for f in result.files]} for name, result in rows.items()],
        "promoted": stages.gate.promote, "decision": stages.gate.reason,
        "model_tag": stages.package.model_tag, "bento_tag": stages.package.bento_tag,
    }
    (ctx.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def render_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"genloop run {summary['run_id']}", show_lines=True)
    table.add_column("stage", style="bold")
    table.add_column("key figure")
    table.add_column("s", justify="right")
    table.add_column("files", overflow="fold")
    for row in summary["stages"]:
        table.add_row(row["stage"], row["figure"], f"{row['seconds']:.1f}", "\n".join(row["files"]))
    console = Console(width=max(Console().width, 160))
    console.print(table)
    dvc_note = "" if summary["data_matches_dvc"] else " (differs from data.dvc!)"
    console.print(f"data md5 {summary['data_md5']}{dvc_note}; data.dvc at git {summary['data_rev']}; "
                  f"code {summary['git_sha']}")
    verdict = "[green]PROMOTED[/green]" if summary["promoted"] else "[yellow]NOT PROMOTED[/yellow]"
    console.print(f"{verdict}: {summary['decision']}")
    if summary["bento_tag"]:
        console.print(f"serve it: genloop serve --model {summary['model_name']}   (bento {summary['bento_tag']})")
    console.print(f"everything is under {summary['run_dir']}")


def render_sweep(result: dict) -> None:
    """The sweep's table (one row per run), the seed spread, the winner and the gate's decision."""
    import math

    from rich.console import Console
    from rich.table import Table

    def fmt(x) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"

    table = Table(title=f"genloop sweep {Path(result['sweep_dir']).name} on {result['cluster']}")
    for column in ("point", "seed", "status", "metric", "bootstrap hw", "audits", "s", "threads", "run"):
        table.add_column(column, overflow="fold")
    for p in result["points"]:
        label = " ".join(f"{k}={v}" for k, v in p["grid"].items()) or "(config as is)"
        ok = p["status"] == "ok"
        table.add_row(label, str(p["seed"]), "ok" if ok else f"FAILED: {p['error']}", fmt(p["value"]),
                      fmt(p["half_width"]), ("pass" if p["audits_passed"] else "FAIL") if ok else "-",
                      f"{p['seconds']:.0f}", str(p.get("threads") or "-"), p["run_id"] or "-")
    console = Console(width=max(Console().width, 160))
    console.print(table)
    for g in result["groups"]:
        console.print(f"{g['label']}: mean {fmt(g['mean'])}, sd over {len(g['values'])} seeds {fmt(g['sd'])}")
    spread = result["seed_spread"]
    console.print(f"seed-to-seed spread (training noise): sd {fmt(spread['sd'])} over {spread['runs']} runs, "
                  f"half-width {fmt(result['seed_half_width'])}; bootstrap half-width (sampling noise) "
                  f"{fmt(result['bootstrap_half_width'])}" if spread else
                  "seed-to-seed spread: not measured (no grid point finished two seeds)")
    console.print(f"winner: {result['why']}")
    if result.get("margin"):
        console.print(result["margin"])
    gate = result["gate"]
    verdict = "[green]PROMOTED[/green]" if gate["promoted"] else "[yellow]NOT PROMOTED[/yellow]"
    console.print(f"{verdict}: {gate['reason']}")
    console.print(f"{result['seconds']:.0f} s; sweep.md and sweep.json under {result['sweep_dir']}")
