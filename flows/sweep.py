"""The sweep flow: every point of a grid x seeds as a candidate run on a Dask cluster (prefect-dask's
DaskTaskRunner: a LocalCluster, or the scheduler at --dask-address), then the seed spread, the winner,
and at most one promotion through the normal gate, packaging and report (components/sweep.py)."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components import sweep as sw
from components.dashboard.workspace import record_run
from components.errors import GenloopError
from components.results import RunStages
from components.summary import write_summary
from flows.training import gate, package, report

candidate = task(sw.run_candidate, name="candidate", cache_policy=NO_CACHE, retries=0)
warm = task(sw.warm_caches, name="warm-caches", cache_policy=NO_CACHE, retries=0)
dashboard = task(record_run, name="dashboard", cache_policy=NO_CACHE)


@flow(name="genloop-sweep", log_prints=True)
def sweep(root: str, config_path: str, grid: dict[str, list[Any]], seeds: list[int],
          overrides: dict[str, Any] | None = None, data_rev: str | None = None, promote: bool = True,
          torch_threads: int | None = None, cluster: str = "Dask") -> dict[str, Any]:
    from components.config import load_config

    start = time.perf_counter()
    base = dict(overrides or {})
    name = load_config(Path(root) / config_path if not Path(config_path).is_absolute() else config_path, base).name
    points = sw.plan_points(grid, seeds)
    folder = sw.sweep_dir(root, name)
    print(f"sweep {folder.name}: {len(points)} runs ({len(points) // len(seeds)} grid points x {len(seeds)} seeds) "
          f"on {cluster}")
    print(f"warm caches: {warm.submit(root, config_path, points[0].overrides(base), data_rev).result()}")
    futures = [candidate.submit(root, config_path, p.overrides(base), data_rev, torch_threads) for p in points]
    results, candidates = [], {}
    for point, future in zip(points, futures):
        future.wait()
        state = future.state
        if state.is_completed():
            found = future.result()
            candidates[point.index] = found
            result = sw.point_result(point, found, None)
        else:                                       # the others go on; this one is reported
            result = sw.point_result(point, None, state.result(raise_on_failure=False))
        results.append(result)
        print(f"  {result.label} seed {result.seed}: " + (f"{result.metric} {result.value:.4g}" if result.status == "ok"
                                                          else f"FAILED ({result.error})"))
    first = next((c for c in candidates.values()), None)
    evaluated0 = first.stages["evaluate"] if first else None
    protocol = {}
    if evaluated0 is not None:
        from components.gate import Scorecard

        protocol = Scorecard.of(evaluated0.metric, evaluated0.metrics, first.ctx.dataset_md5).protocol
    summary = sw.summarize(results, first.ctx.dataset_md5 if first else "", protocol, folder.name)
    decision: dict[str, Any] = {"promoted": False, "reason": "no winner", "run_id": None, "model_tag": None}
    if summary.spread is not None:
        sw.save_spread(root, name, summary.spread)
    spread, unusable = summary.spread, ""
    switched = summary.winner is not None and candidates[summary.winner.index].ctx.config.gate.use_seed_spread
    if promote and switched and spread is None:
        try:                                       # too few seeds finished: the spread a sweep recorded before
            spread = sw.load_spread(root, name, summary.metric)
        except GenloopError as exc:
            unusable = f"the winner was not gated: {exc}"
    if summary.winner is not None and promote and not unusable:
        won = candidates[summary.winner.index]
        ctx, st = won.ctx, won.stages
        gated = gate(ctx, st["evaluate"], st["audit"], spread)
        packaged = package(ctx, st["train"], st["evaluate"], st["audit"], gated)
        reported = report(ctx, st["evaluate"], st["audit"], gated)
        write_summary(ctx, RunStages(st["validate"], st["augment"], st["train"], st["evaluate"], st["audit"],
                                     gated, packaged, reported))
        dashboard(root, ctx.run_dir)
        decision = {"promoted": gated.promote, "reason": gated.reason, "run_id": ctx.run_id,
                    "model_tag": packaged.model_tag, "bento_tag": packaged.bento_tag}
    elif summary.winner is not None:
        decision["reason"] = unusable or "--no-promote: the winner was not gated"
    seconds = time.perf_counter() - start
    markdown = sw.render_markdown(name, results, summary, decision["reason"], cluster, seconds)
    payload = sw.payload(name, config_path, grid, seeds, results, summary, decision, cluster, seconds)
    json_path, md_path = sw.record(folder, payload, markdown)
    create_markdown_artifact(markdown, key=f"sweep-{name}".lower().replace("_", "-"),
                             description=f"genloop sweep {folder.name}")
    return {**payload, "sweep_dir": str(folder), "json": str(json_path), "markdown": str(md_path)}


@contextlib.contextmanager
def api_for_workers() -> Iterator[str]:
    """The Prefect API the Dask workers report to. Worker processes do not share the flow's
    ephemeral in-process API (each would start its own, and time out), so without a configured
    server a temporary one is started here and named in the environment they inherit."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    url = get_current_settings().api.url
    if url:
        before = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = str(url)
        try:
            yield str(url)
        finally:
            if before is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = before
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)       # the run's last log lines, while the server still listens
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def run_sweep(root: str, config_path: str, grid: dict[str, list[Any]], seeds: list[int],
              overrides: dict[str, Any] | None = None, data_rev: str | None = None, promote: bool = True,
              workers: int = 1, dask_address: str | None = None) -> dict[str, Any]:
    """The sweep flow on a LocalCluster of `workers` processes, or on the scheduler at
    `dask_address` (its workers must see this project folder at the same path)."""
    from prefect_dask import DaskTaskRunner

    if dask_address:
        from prefect.settings import get_current_settings

        found = sw.check_scheduler(dask_address)
        if not get_current_settings().api.url:
            raise GenloopError("--dask-address: the cluster's workers report to the Prefect API, so it must be "
                               "a server they can reach: `prefect server start`, then export "
                               "PREFECT_API_URL=http://HOST:4200/api here and on the workers.")
        runner, threads, where = DaskTaskRunner(address=dask_address), None, f"Dask at {dask_address} ({found} workers)"
    else:
        kwargs, threads = sw.local_cluster_kwargs(workers)
        runner = DaskTaskRunner(cluster_kwargs=kwargs)
        where = f"a local Dask cluster of {workers} worker{'s' if workers > 1 else ''} x {threads} torch threads"
    with api_for_workers():
        return sweep.with_options(task_runner=runner)(root, config_path, grid, seeds, overrides, data_rev, promote,
                                                      threads, where)
