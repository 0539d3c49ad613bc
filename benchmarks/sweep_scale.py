"""Issue 12 figures: a sweep of N points on a 2-worker Dask LocalCluster (the whole `genloop sweep`
flow: cluster start, cache warm-up, the points, the record; --no-promote) vs the same N runs one
after the other in one process with all cores (components.sweep.run_candidate, no Prefect, no
Dask: the bare baseline). Both in one fresh project with `genloop data init` done; the FID
reference statistics are computed before either is timed, so both start warm.

Usage: .venv/bin/python benchmarks/sweep_scale.py [--config configs/dcgan-digits.yaml] [--seeds 0-3]
Prints one JSON object: seconds of each side, the ratio, each run's metric on both sides.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for key, value in {"DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false",
                   "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "GENLOOP_PROGRESS_BARS": "0"}.items():
    os.environ.setdefault(key, value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/dcgan-digits.yaml")
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from components.data.versioning import init_data
    from components.sweep import parse_seeds, plan_points, run_candidate, warm_caches

    root = Path(tempfile.mkdtemp(prefix="genloop-sweep-bench-"))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "configs").mkdir()
    for cfg in (REPO / "configs").glob("*.yaml"):
        (root / "configs" / cfg.name).write_text(cfg.read_text())
    os.environ["BENTOML_HOME"] = str(root / ".genloop" / "bentoml")
    init_data(root)
    seeds = parse_seeds(args.seeds)
    points = plan_points({}, seeds)
    print(f"warm: {warm_caches(str(root), args.config, points[0].overrides({}), None)}", flush=True)

    start = time.perf_counter()
    sequential = []
    for p in points:
        c = run_candidate(str(root), args.config, p.overrides({}), None)
        sequential.append(c.stages["evaluate"].value)
        print(f"sequential seed {p.seed}: {c.stages['evaluate'].metric} {sequential[-1]:.4f} in {c.seconds:.1f} s",
              flush=True)
    seq_seconds = time.perf_counter() - start

    from flows.sweep import run_sweep

    start = time.perf_counter()
    result = run_sweep(str(root), args.config, {}, seeds, {}, promote=False, workers=args.workers)
    dask_seconds = time.perf_counter() - start
    parallel = [p["value"] for p in result["points"]]
    out = {"config": args.config, "points": len(points), "workers": args.workers, "cores": os.cpu_count(),
           "sequential_seconds": round(seq_seconds, 1), "sweep_seconds": round(dask_seconds, 1),
           "sweep_flow_seconds": result["seconds"],
           "ratio_sweep_over_sequential": round(dask_seconds / seq_seconds, 3),
           "point_seconds_sweep": [round(p["seconds"], 1) for p in result["points"]],
           "metric_sequential": [round(v, 4) for v in sequential], "metric_sweep": [round(v, 4) for v in parallel],
           "sd_sequential": round(statistics.stdev(sequential), 4) if len(sequential) > 1 else None,
           "sd_sweep": round(statistics.stdev(parallel), 4) if len(parallel) > 1 else None,
           "bootstrap_half_width_mean": result["bootstrap_half_width"], "project": str(root)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
