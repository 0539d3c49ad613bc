"""`genloop sweep` for real: a Prefect flow whose points run on Dask worker processes (prefect-dask's
DaskTaskRunner on a LocalCluster, then on an existing scheduler), a bad point reported while the
others go on, the seed spread recorded, and the winner promoted through the normal gate."""
import json
import math
import os
import statistics
from pathlib import Path

import pytest

from tests.conftest import TINY_DCGAN

pytestmark = pytest.mark.slow


def test_a_sweep_runs_its_points_on_dask_workers_and_promotes_one_winner(data_project, prefect_harness):
    from components.registry import champion_tag, get_model
    from components.sweep import load_spread
    from flows.sweep import run_sweep

    base = {**TINY_DCGAN, "name": "sweep-dcgan", "package": False}
    environ = dict(os.environ)
    result = run_sweep(str(data_project), "configs/dcgan-digits.yaml", {"train.lr": [2e-4, math.nan]}, [0, 1],
                       base, workers=2)
    assert dict(os.environ) == environ          # the nannies' OMP_NUM_THREADS=1 does not stay behind
    points = result["points"]
    assert [(p["grid"]["train.lr"], p["seed"]) for p in points][:2] == [(2e-4, 0), (2e-4, 1)]
    ok, bad = points[:2], points[2:]
    assert all(p["status"] == "ok" and math.isfinite(p["value"]) and Path(p["run_dir"]).is_dir() for p in ok)
    assert all(p["status"] == "failed" and "train.lr must be > 0" in p["error"] for p in bad)   # reported, others went on
    workers = {p["worker"] for p in ok}
    assert all(w.split(":")[-1] != str(os.getpid()) for w in workers)      # ran on Dask workers, not here
    assert {p["threads"] for p in ok} == {max(1, (os.cpu_count() or 1) // 2)}    # the cores split between them
    sd = statistics.stdev(p["value"] for p in ok)
    assert result["seed_spread"]["sd"] == pytest.approx(sd) and result["seed_spread"]["runs"] == 2
    assert load_spread(data_project, "sweep-dcgan", "fid").sd == pytest.approx(sd)
    winner = min(ok, key=lambda p: p["value"])
    assert result["winner"]["run_id"] == winner["run_id"]
    gate = result["gate"]
    assert gate["promoted"] and gate["run_id"] == winner["run_id"] and champion_tag("sweep-dcgan") == gate["model_tag"]
    card = get_model(gate["model_tag"]).metadata["scorecard"]
    assert (card["seed_runs"], card["seed_sd"]) == (2, pytest.approx(sd))
    assert json.loads((Path(winner["run_dir"]) / "summary.json").read_text())["promoted"]
    loser = next(p for p in ok if p is not winner)
    assert not (Path(loser["run_dir"]) / "gate.json").exists()           # only the winner meets the gate
    md = Path(result["markdown"]).read_text()
    assert "Seed-to-seed spread (training noise): sd" in md and "FAILED: GenloopError" in md
    assert "The gate's margin covers evaluation sampling noise (the bootstrap half-width) only" in md
    assert result["margin"] in md and "best of 2 seeds, so its score is optimistic" in md
    assert json.loads(Path(result["json"]).read_text())["winner"]["index"] == winner["index"]


def test_a_sweep_on_an_existing_dask_scheduler(data_project, prefect_harness):
    from distributed import LocalCluster

    from components.sweep import WORKER_PRELOAD
    from flows.sweep import environ_kept, run_sweep

    base = {"evaluate.max_windows": 20, "name": "sweep-remote"}           # the n-gram: the cheapest run
    with environ_kept(), LocalCluster(n_workers=1, threads_per_worker=1, processes=True, preload=[WORKER_PRELOAD],
                      dashboard_address=":0") as cluster:
        result = run_sweep(str(data_project), "configs/ngram-pydocs.yaml", {}, [3], base, promote=False,
                           dask_address=cluster.scheduler_address)
    (point,) = result["points"]
    assert point["status"] == "ok" and point["seed"] == 3 and point["worker"].split(":")[-1] != str(os.getpid())
    assert result["cluster"] == f"Dask at {cluster.scheduler_address} (1 workers)"
    assert result["seed_spread"] is None and not result["gate"]["promoted"]
    assert "--no-promote" in result["gate"]["reason"]
