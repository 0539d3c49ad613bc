"""The run summary: one row per stage with its key figure and the files it wrote."""
from __future__ import annotations

import json
from pathlib import Path


def write_summary(ctx: dict, stages: dict[str, dict]) -> dict:
    run_dir = Path(ctx["run_dir"])
    dvc = "matches data.dvc" if ctx["data_matches_dvc"] else "DIFFERS from data.dvc"
    data_row = {"figure": f"{Path(ctx['dataset_dir']).name} md5 {ctx['dataset_md5']}; data/ md5 "
                          f"{ctx['data_md5']} ({dvc})", "files": [str(run_dir / "run.json")]}
    stages = {"data": data_row, **stages}
    summary = {
        "run_id": ctx["run_id"], "run_dir": str(run_dir), "data_md5": ctx["data_md5"],
        "data_matches_dvc": ctx["data_matches_dvc"], "data_rev": ctx["data_rev"],
        "git_sha": ctx["git_sha"],
        "stages": [{"stage": name, "figure": result.get("figure", ""), "seconds": result.get("seconds"),
                    "files": [str(Path(f).relative_to(ctx["root"])) if str(f).startswith(ctx["root"]) else str(f)
                              for f in result.get("files", [])]}
                   for name, result in stages.items()],
        "promoted": bool(stages.get("gate", {}).get("promote")),
        "decision": stages.get("gate", {}).get("reason", ""),
        "model_tag": stages.get("package", {}).get("model_tag"),
        "bento_tag": stages.get("package", {}).get("bento_tag"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
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
        table.add_row(row["stage"], row["figure"], f"{row.get('seconds') or 0:.1f}", "\n".join(row["files"]))
    console = Console(width=max(Console().width, 160))
    console.print(table)
    dvc_note = "" if summary["data_matches_dvc"] else " (differs from data.dvc!)"
    console.print(f"data md5 {summary['data_md5']}{dvc_note}; data.dvc at git {summary['data_rev']}; "
                  f"code {summary['git_sha']}")
    verdict = "[green]PROMOTED[/green]" if summary["promoted"] else "[yellow]NOT PROMOTED[/yellow]"
    console.print(f"{verdict}: {summary['decision']}")
    if summary.get("bento_tag"):
        console.print(f"serve it: genloop serve   (bento {summary['bento_tag']})")
    console.print(f"everything is under {summary['run_dir']}")
