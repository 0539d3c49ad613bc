"""The sweep flow: every point of a grid x seeds as a candidate run on a Dask cluster (prefect-dask's
DaskTaskRunner: a LocalCluster, or the scheduler at --dask-address), then the seed spread, the winner,
and at most one promotion through the normal gate, packaging and report (components/sweep.py)."""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from components import artifacts
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
    from components.config import load_project_config

    start = time.perf_counter()
    base = dict(overrides or {})
    shared = load_project_config(root, config_path, base)       # the name and gate policy every point shares
    name = shared.name
    points = sw.plan_points(grid, seeds)
    folder = sw.sweep_dir(root, name)
    print(f"sweep {folder.name}: {len(points)} runs ({len(points) // len(seeds)} grid points x {len(seeds)} seeds) "
          f"on {cluster}")
    warmed = warm.submit(root, config_path, points[0].overrides(base), data_rev, torch_threads)
    warmed.wait()
    found = warmed.state.result(raise_on_failure=False)
    print(f"warm caches: {found}" if warmed.state.is_completed() else
          f"warm caches failed ({type(found).__name__}: {str(found).strip().splitlines()[0] if str(found).strip() else ''}); "
          f"each point computes what it needs")
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
    cards = {i: sw.card_of(c) for i, c in candidates.items()}
    first = next(iter(cards.values()), None)
    summary = sw.summarize(results, first.dataset_md5 if first else "", first.protocol if first else {}, folder.name,
                           {"set": base, "grid": grid})
    decision: dict[str, Any] = {"promoted": False, "reason": "no winner", "run_id": None, "model_tag": None}
    recorded, not_recorded = sw.spread_to_record(summary.spread, list(cards.values()))
    if recorded is not None:
        sw.save_spread(root, name, recorded)
    elif not_recorded:
        print(not_recorded)
    spread, unusable = recorded, ""
    won = candidates[summary.winner.index] if summary.winner is not None and promote else None
    if won is not None:
        spread, unusable = sw.spread_for_winner(root, name, recorded, cards[summary.winner.index],
                                                won.ctx.config.gate.use_seed_spread)
    if won is not None and not unusable:
        ctx, st = won.ctx, won.stages
        gated = gate(ctx, st["evaluate"], st["audit"], spread)
        packaged = package(ctx, st["train"], st["evaluate"], st["audit"], gated)
        reported = report(ctx, st["evaluate"], st["audit"], gated)
        summary_of_run = write_summary(ctx, RunStages(st["validate"], st["augment"], st["train"], st["evaluate"],
                                                      st["audit"], gated, packaged, reported))
        about = f"genloop sweep {folder.name}, winner {ctx.run_id}: {'promoted' if gated.promote else 'not promoted'}"
        create_table_artifact(artifacts.metrics_table(summary_of_run, st["train"], st["evaluate"], gated),
                              key=artifacts.artifact_key("metrics", name), description=about)
        create_markdown_artifact(artifacts.report_markdown(reported.markdown, st["evaluate"], ctx.run_dir),
                                 key=artifacts.artifact_key("report", name), description=about)
        dashboard(root, ctx.run_dir)
        decision = {"promoted": gated.promote, "reason": gated.reason, "run_id": ctx.run_id,
                    "model_tag": packaged.model_tag, "bento_tag": packaged.bento_tag}
    elif summary.winner is not None:
        decision["reason"] = unusable or "--no-promote: the winner was not gated"
    seconds = time.perf_counter() - start
    margin = " ".join(filter(None, [sw.margin_note(shared.gate, recorded), not_recorded]))
    markdown = sw.render_markdown(name, results, summary, decision["reason"], cluster, seconds, margin)
    payload = sw.payload(name, config_path, grid, seeds, results, summary, decision, cluster, seconds, margin)
    json_path, md_path = sw.record(folder, payload, markdown)
    create_markdown_artifact(markdown, key=artifacts.artifact_key("sweep", name),
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


@contextlib.contextmanager
def environ_kept() -> Iterator[None]:
    """os.environ as it was, after the cluster is gone: a LocalCluster's nannies live in this
    process and set OMP_NUM_THREADS=1 (and MKL_, OPENBLAS_, MALLOC_TRIM_THRESHOLD_) here before
    spawning each worker (distributed.nanny.pre-spawn-environ) and never unset them; anything
    started from this process later (a training subprocess) would run on one thread."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            os.environ.pop(key, None)
        os.environ.update({k: v for k, v in before.items() if os.environ.get(k) != v})


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
    import dask
    import torch

    torch.get_num_threads()          # this process's thread pools sized now, before the nannies change the env
    # The nannies give every worker OMP/MKL/OPENBLAS_NUM_THREADS=1 (Dask's default, for many
    # one-thread tasks); a local worker runs one run at a time on its share of the cores.
    spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    if threads:
        spawn_env.update({k: threads for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    with api_for_workers(), environ_kept(), dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env}):
        return sweep.with_options(task_runner=runner)(root, config_path, grid, seeds, overrides, data_rev, promote,
                                                      threads, where)
