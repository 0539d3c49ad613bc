"""Sweeps: many retraining runs of one config, a grid of overrides times training seeds.

Each point is a candidate run (validate -> augment -> train -> evaluate -> audit, in its own
runs/<run-id>/) that a Dask worker runs (flows/sweep.py: prefect-dask's DaskTaskRunner). Then
the seed-to-seed spread of the metric (training noise), the winner (the grid point with the
best mean over seeds, its best seed), and at most one promotion through the normal gate.
A point that fails (bad config, NaN loss) is reported; the others go on.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.errors import GenloopError
from components.gate import SeedSpread
from components.paths import ProjectPaths

WORKER_PRELOAD = "flows.dask_worker"   # each worker's console, telemetry and warnings (Dask's --preload)
RESERVED_KEYS = {"seed", "name"}       # seeds come from --seeds; one sweep is one model name


# -- the plan -------------------------------------------------------------------------------------

def parse_grid(specs: list[str]) -> dict[str, list[Any]]:
    """`--grid train.lr=1e-4,5e-4 --grid train.batch_size=32,64` -> {key: [values]} (YAML
    values, in the order given)."""
    import yaml

    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise GenloopError(f"--grid takes KEY=V1,V2,... (e.g. train.lr=1e-4,5e-4), got {spec!r}.")
        if key in RESERVED_KEYS:
            raise GenloopError(f"--grid {key}=...: {'use --seeds 0,1,2' if key == 'seed' else 'a sweep trains one model name'}"
                               f" instead.")
        if key in grid:
            raise GenloopError(f"--grid {key} is given twice; put all its values in one --grid {key}=V1,V2.")
        try:
            parsed = [_number_or_yaml(v.strip()) for v in values.split(",")]
        except yaml.YAMLError as exc:
            raise GenloopError(f"--grid {spec!r}: a value is not valid YAML ({exc}).") from None
        if any(v is None for v in parsed):
            raise GenloopError(f"--grid {spec!r} has an empty value; write KEY=V1,V2 without empty items.")
        if any(a == b for i, a in enumerate(parsed) for b in parsed[i + 1:]):
            raise GenloopError(f"--grid {spec!r} gives one value twice (1e-4 and 0.0001 are one value): the "
                               f"repeats would count as extra seeds and shrink the spread; give each once.")
        grid[key] = parsed
    return grid


def _number_or_yaml(text: str) -> Any:
    """A grid value: YAML, except that 1e-4 is a number (YAML 1.1 reads it as a string)."""
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` or `0-4` (inclusive) or both: `0-2,7`."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1)
                seeds.extend(range(int(low), int(high) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise GenloopError(f"--seeds takes integers like 0,1,2 or 0-4, got {text!r}.") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise GenloopError(f"--seeds must list distinct integers >= 0 (e.g. 0,1,2 or 0-4), got {text!r}.")
    return seeds


def label_of(grid_values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in grid_values.items()) or "(config as is)"


@dataclass(frozen=True)
class SweepPoint:
    index: int
    grid: dict[str, Any]            # this point's grid values (no seed)
    seed: int

    @property
    def label(self) -> str:
        return label_of(self.grid)

    def overrides(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**base, **self.grid, "seed": self.seed}


def plan_points(grid: dict[str, list[Any]], seeds: list[int]) -> list[SweepPoint]:
    """Every combination of the grid's values, each with every seed (seeds innermost)."""
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    return [SweepPoint(i, combo, seed) for i, (combo, seed) in enumerate(itertools.product(combos, seeds))]


def check_grid(root: Path | str, config_path: str, base: dict[str, Any], grid: dict[str, list[Any]]) -> list[str]:
    """Load every grid combination's config before any cluster starts. A key the config does not
    have (a typo) would fail every point, and so would a grid none of whose combinations loads:
    refused here, in one line. A combination that is only refused on its value (train.lr=nan)
    is left to fail as its own points, reported beside the others. Returns those refusals."""
    from components.config import load_project_config

    refused: list[str] = []
    combos = plan_points(grid, [0])
    for point in combos:
        try:
            load_project_config(root, config_path, {**base, **point.grid})
        except GenloopError as exc:
            if "unknown key" in str(exc):
                raise GenloopError(f"--grid {', '.join(grid)}: {exc}") from None
            refused.append(f"{point.label}: {exc}")
    if combos and len(refused) == len(combos):
        raise GenloopError(f"no grid point has a config genloop accepts; the first: {refused[0]}")
    return refused


# -- one point ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One finished candidate run: what the gate and packaging need of it (stage results)."""
    ctx: Any                        # components.runs.RunContext
    stages: dict[str, Any]          # validate, augment, train, evaluate, audit results
    seconds: float                  # its wall time on the worker
    worker: str                     # host:pid of the process that ran it
    threads: int = 0                # torch threads it trained with (on CPU they change the network)


def run_candidate(root: str, config_path: str, overrides: dict[str, Any], data_rev: str | None,
                  torch_threads: int | None = None) -> Candidate:
    """One sweep point: the retraining flow's stages up to and including the audit, in this
    process (a Dask worker). Raises what the stage raises: the flow reports it."""
    from components import stages
    from components.runs import prepare_run

    import torch

    start = time.perf_counter()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    ctx = prepare_run(root, config_path, overrides, data_rev)
    validated = stages.validate(ctx)
    augmented = stages.augment(ctx)
    trained = stages.train(ctx, augmented)
    evaluated = stages.evaluate(ctx, trained)
    audited = stages.audit(ctx, trained)
    return Candidate(ctx, {"validate": validated, "augment": augmented, "train": trained,
                           "evaluate": evaluated, "audit": audited}, time.perf_counter() - start,
                     f"{socket.gethostname()}:{os.getpid()}", torch.get_num_threads())


def warm_caches(root: str, config_path: str, overrides: dict[str, Any], data_rev: str | None,
                torch_threads: int | None = None) -> str:
    """Do once, before the points start, what every point would otherwise do at the same time:
    check out --data-rev's data version, and for images compute the real images' Inception
    statistics (training set and evaluate.reference_dataset) and the domain classifier."""
    from components.config import load_project_config
    from components.data.hashing import folder_md5
    from components.runs import data_source

    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)      # a LocalCluster's nanny sets one thread
    try:
        cfg = load_project_config(root, config_path, overrides)
        source = data_source(Path(root), data_rev)
    except GenloopError as exc:
        return f"skipped ({exc}): the points will say so"
    data_note = f"data version {data_rev} checked out; " if data_rev else ""
    if cfg.data.kind != "image":
        return f"{data_note}text: nothing else to warm"
    from components.data.images import list_images, load_image_folder
    from components.evaluation.run import domain_model, heldout_statistics, reference_dir, reference_statistics
    from components.training.device import pick_device

    dataset_dir = source.data_dir / cfg.data.dataset
    if not dataset_dir.is_dir():
        return f"{dataset_dir} missing: every point will say so"
    paths, md5, device = ProjectPaths.at(root), folder_md5(dataset_dir), str(pick_device())
    data = load_image_folder(dataset_dir, cfg.data.labels, cfg.data.channels)
    files = [path for path, _ in list_images(dataset_dir)]
    *_, cached = reference_statistics(data, cfg, md5, paths, device, files)
    heldout = ""
    if cfg.evaluate.reference_dataset:
        heldout_statistics(cfg, reference_dir(cfg, files, paths), paths, device)
        heldout = f", held-out reference {cfg.evaluate.reference_dataset} ready"
    domain_model(data, cfg, md5, paths)
    return f"{data_note}reference statistics {'cached' if cached else 'computed'}{heldout}; domain classifier ready"


# -- results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PointResult:
    index: int
    grid: dict[str, Any]
    seed: int
    status: str                     # "ok" | "failed"
    error: str = ""
    run_id: str = ""
    run_dir: str = ""
    metric: str = ""
    value: float = math.nan
    half_width: float = 0.0         # bootstrap half-width (sampling noise)
    audits_passed: bool = False
    seconds: float = 0.0
    worker: str = ""                # host:pid that ran it
    threads: int = 0                # torch threads it trained with

    @property
    def label(self) -> str:
        return label_of(self.grid)

    @property
    def eligible(self) -> bool:
        """Could be promoted: finished, a finite score, audits passed."""
        return self.status == "ok" and math.isfinite(self.value) and self.audits_passed


def point_result(point: SweepPoint, candidate: Candidate | None, error: BaseException | None) -> PointResult:
    if candidate is None:
        message = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else repr(error)
        return PointResult(point.index, point.grid, point.seed, "failed", f"{type(error).__name__}: {message}")
    evaluated, audited = candidate.stages["evaluate"], candidate.stages["audit"]
    interval = evaluated.metrics.get(f"{evaluated.metric}_interval") or {}
    return PointResult(point.index, point.grid, point.seed, "ok", run_id=candidate.ctx.run_id,
                       run_dir=str(candidate.ctx.run_dir), metric=evaluated.metric, value=evaluated.value,
                       half_width=float(interval.get("half_width", 0.0)), audits_passed=audited.passed,
                       seconds=candidate.seconds, worker=candidate.worker, threads=candidate.threads)


@dataclass(frozen=True)
class GroupStats:
    """One grid point over its seeds."""
    label: str
    grid: dict[str, Any]
    values: list[float]             # finite scores of the finished runs
    failed: int
    mean: float
    sd: float                       # over seeds, ddof 1 (nan under two runs)
    bootstrap_half_width: float     # mean over the runs (nan: none)


@dataclass(frozen=True)
class SweepSummary:
    metric: str
    groups: list[GroupStats]
    spread: SeedSpread | None       # pooled over the grid points with >= 2 finished seeds
    winner: PointResult | None
    why: str                        # how the winner was chosen, or why there is none
    bootstrap_half_width: float     # mean over all finished runs (for comparison with the spread)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def summarize(results: list[PointResult], dataset_md5: str = "", protocol: dict[str, int] | None = None,
              source: str = "", settings: dict[str, Any] | None = None) -> SweepSummary:
    """Per grid point: mean and sd over seeds. The seed spread is the pooled sd (each grid
    point's variance weighted by its degrees of freedom: the points are assumed to be equally
    noisy). The winner is the best run of the grid point with the best mean, among runs that
    finished with a finite score and passed their audits (lower is better)."""
    metric = next((r.metric for r in results if r.status == "ok"), "")
    groups: list[GroupStats] = []
    for label in dict.fromkeys(r.label for r in results):
        mine = [r for r in results if r.label == label]
        values = [r.value for r in mine if r.status == "ok" and math.isfinite(r.value)]
        halves = [r.half_width for r in mine if r.status == "ok" and r.half_width > 0]
        groups.append(GroupStats(label, mine[0].grid, values, sum(r.status != "ok" for r in mine), _mean(values),
                                 statistics.stdev(values) if len(values) >= 2 else math.nan, _mean(halves)))
    measured = [g for g in groups if len(g.values) >= 2]
    dof = sum(len(g.values) - 1 for g in measured)
    spread = None
    if dof:
        pooled = math.sqrt(sum((len(g.values) - 1) * g.sd ** 2 for g in measured) / dof)
        spread = SeedSpread(metric, pooled, sum(len(g.values) for g in measured), dataset_md5,
                            dict(protocol or {}), source, dict(settings or {}))
    ranked = sorted((g for g in groups if any(r.eligible and r.label == g.label for r in results)),
                    key=lambda g: _mean([r.value for r in results if r.eligible and r.label == g.label]))
    winner, why = None, ""
    if ranked:
        best = ranked[0]
        winner = min((r for r in results if r.eligible and r.label == best.label), key=lambda r: r.value)
        why = (f"{best.label}: best mean {metric} over its seeds; its best seed {winner.seed} "
               f"({metric} {winner.value:.4g}, run {winner.run_id})")
    else:
        why = "no run finished with a finite score and passed audits: nothing to promote"
    halves = [r.half_width for r in results if r.status == "ok" and r.half_width > 0]
    return SweepSummary(metric, groups, spread, winner, why, _mean(halves))


# -- the record -----------------------------------------------------------------------------------

def sweep_dir(root: Path | str, name: str) -> Path:
    import secrets

    path = ProjectPaths.at(root).runs / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"
    path.mkdir(parents=True)
    return path


def _fmt(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


def margin_note(policy: Any, spread: SeedSpread | None) -> str:
    """Which noise the gate's margin covers for this model (`policy`: its GateConfig), said
    whether or not this sweep promoted anything."""
    sampling = ("evaluation sampling noise (the bootstrap half-width)" if policy.use_interval else
                "no evaluation sampling noise (gate.use_interval: false)")
    if policy.use_seed_spread:
        if spread is None:
            return (f"The gate's margin covers {sampling} and training noise (gate.use_seed_spread: true): 1.96 x "
                    f"the seed sd an earlier sweep recorded for this model (this sweep recorded none), added in "
                    f"quadrature.")
        return (f"The gate's margin covers {sampling} and training noise (gate.use_seed_spread: true): "
                f"the seed half-width, 1.96 x sd {spread.sd:.4g} over {spread.runs} runs, added in quadrature.")
    found = f" (sd {spread.sd:.4g} here)" if spread else ""
    return (f"The gate's margin covers {sampling} only, not training noise (gate.use_seed_spread: false); "
            f"set it true to add the seed spread this sweep measured{found}.")


def render_markdown(name: str, results: list[PointResult], summary: SweepSummary, decision: str,
                    cluster: str, seconds: float, margin: str = "") -> str:
    m = summary.metric or "metric"
    lines = [f"# Sweep of {name}", "", f"{len(results)} runs on {cluster} in {seconds:.0f} s; "
             f"{sum(r.status != 'ok' for r in results)} failed.", "",
             f"| point | seed | status | {m} | bootstrap half-width | audits | s | torch threads | run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        status = "ok" if r.status == "ok" else f"FAILED: {r.error}"
        lines.append(f"| {r.label} | {r.seed} | {status} | {_fmt(r.value)} | {_fmt(r.half_width)} | "
                     f"{'pass' if r.audits_passed else ('FAIL' if r.status == 'ok' else '-')} | {r.seconds:.0f} | "
                     f"{r.threads or '-'} | {r.run_id or '-'} |")
    lines += ["", f"| point | finished seeds | mean {m} | sd over seeds | mean bootstrap half-width |",
              "|---|---|---|---|---|"]
    for g in summary.groups:
        lines.append(f"| {g.label} | {len(g.values)} | {_fmt(g.mean)} | {_fmt(g.sd)} | {_fmt(g.bootstrap_half_width)} |")
    s = summary.spread
    lines += ["", (f"Seed-to-seed spread (training noise): sd {_fmt(s.sd)} over {s.runs} runs, half-width "
                   f"{_fmt(s.half_width)} (1.96 sd); the bootstrap half-width (evaluation sampling noise) "
                   f"averages {_fmt(summary.bootstrap_half_width)}." if s else
                   "Seed-to-seed spread: not measured (no grid point finished with two or more seeds)."),
              "", f"Winner: {summary.why}." + (
                  f" It is the best of {len(best.values)} seeds, so its score is optimistic: a retraining of these "
                  f"settings would score nearer their mean {_fmt(best.mean)}." if (best := _winning_group(summary))
                  and len(best.values) > 1 and best.sd > 0 else ""),
              "", f"Gate: {decision}", ""] + ([margin, ""] if margin else [])
    return "\n".join(lines)


def _winning_group(summary: SweepSummary) -> GroupStats | None:
    if summary.winner is None:
        return None
    return next((g for g in summary.groups if g.label == summary.winner.label), None)


def record(folder: Path, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """sweep.json and sweep.md, each written whole (temp file, then rename)."""
    out = []
    body = json.dumps(_json_safe(payload), indent=2, default=str, allow_nan=False)
    for name, text in (("sweep.json", body), ("sweep.md", markdown)):
        path = folder / name
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        out.append(path)
    return out[0], out[1]


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a failed point's score, a grid value) as null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def payload(name: str, config_path: str, grid: dict[str, list[Any]], seeds: list[int], results: list[PointResult],
            summary: SweepSummary, decision: dict[str, Any], cluster: str, seconds: float,
            margin: str = "") -> dict[str, Any]:
    return {"name": name, "config": config_path, "grid": grid, "seeds": seeds, "cluster": cluster,
            "seconds": round(seconds, 2), "points": [asdict(r) for r in results],
            "groups": [asdict(g) for g in summary.groups],
            "seed_spread": asdict(summary.spread) if summary.spread else None,
            "seed_half_width": summary.spread.half_width if summary.spread else None,
            "bootstrap_half_width": summary.bootstrap_half_width,
            "winner": asdict(summary.winner) if summary.winner else None, "why": summary.why,
            "gate": decision, "margin": margin}


# -- the measured spread, for later gates ----------------------------------------------------------

def spread_path(root: Path | str, name: str) -> Path:
    return ProjectPaths.at(root).state / "seed-spread" / f"{name}.json"


def save_spread(root: Path | str, name: str, spread: SeedSpread) -> Path:
    """The newest seed spread measured for model `name`: what `gate.use_seed_spread` reads
    in later retraining runs (written whole)."""
    path = spread_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(spread), indent=2))
    tmp.replace(path)
    return path


def load_spread(root: Path | str, name: str, metric: str) -> SeedSpread:
    """The seed spread `genloop sweep` measured for `name`, for `gate.use_seed_spread`."""
    path = spread_path(root, name)
    hint = (f"run `genloop sweep --config <its config> --seeds 0-4` to measure it, or set "
            f"gate.use_seed_spread: false")
    if not path.is_file():
        raise GenloopError(f"gate.use_seed_spread is on but no seed spread has been measured for {name!r} "
                           f"({path} missing): {hint}.")
    try:
        raw = json.loads(path.read_text())
        spread = SeedSpread(raw["metric"], float(raw["sd"]), int(raw["runs"]), raw["dataset_md5"],
                            {k: int(v) for k, v in raw.get("protocol", {}).items()}, raw.get("source", ""),
                            dict(raw.get("settings") or {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise GenloopError(f"{path} is not a seed-spread record ({exc}); {hint}.") from None
    if spread.metric != metric:
        raise GenloopError(f"the seed spread measured for {name!r} is of {spread.metric}, this run scores "
                           f"{metric}; {hint}.")
    if not math.isfinite(spread.sd) or spread.sd < 0 or spread.runs < 2:
        raise GenloopError(f"{path}: sd {spread.sd} over {spread.runs} runs is not a spread; {hint}.")
    return spread


def card_of(candidate: Candidate) -> Any:
    """The gate's scorecard of a finished point (metric, interval, dataset md5, protocol)."""
    from components.gate import Scorecard

    evaluated = candidate.stages["evaluate"]
    return Scorecard.of(evaluated.metric, evaluated.metrics, candidate.ctx.dataset_md5)


def spread_to_record(spread: SeedSpread | None, cards: list[Any]) -> tuple[SeedSpread | None, str]:
    """The measured spread to record for later gates, or None and why not: points evaluated
    with different protocols (a grid over evaluate.samples) have different noise, so their
    pooled sd stands for none of them."""
    if spread is None:
        return None, ""
    protocols = [dict(p) for p in dict.fromkeys(tuple(sorted(c.protocol.items())) for c in cards)]
    if len(protocols) > 1:
        return None, (f"The spread was not recorded: the points were evaluated with {len(protocols)} different "
                      f"protocols ({'; '.join(', '.join(f'{k} {v}' for k, v in p.items()) for p in protocols)}).")
    return spread, ""


def spread_for_winner(root: Path | str, name: str, recorded: SeedSpread | None, winner: Any,
                      switched: bool) -> tuple[SeedSpread | None, str]:
    """The spread the winner's gate gets, and "" or why the winner cannot be gated. With
    gate.use_seed_spread on it must exist (this sweep's, else one recorded before) and be of
    the winner's evaluation protocol; refusing here reports it instead of failing the sweep."""
    if not switched:
        return recorded, ""
    try:
        spread = recorded or load_spread(root, name, winner.metric)
        spread.check(winner)
    except GenloopError as exc:
        return None, f"the winner was not gated: {exc}"
    return spread, ""


def require_spread_for(root: Path | str, config_path: str, overrides: dict[str, Any] | None) -> SeedSpread | None:
    """`require_spread` from a config file: for flows, before they make a run folder."""
    from components.config import load_project_config

    return require_spread(root, load_project_config(root, config_path, overrides))


def require_spread(root: Path | str, cfg: Any) -> SeedSpread | None:
    """Before any training: with gate.use_seed_spread on, the recorded spread must be there
    (the gate would refuse after training otherwise). None when the switch is off."""
    if not cfg.gate.use_seed_spread:
        return None
    return load_spread(root, cfg.name, "fid" if cfg.data.kind == "image" else "perplexity")


# -- the Dask cluster ------------------------------------------------------------------------------

def check_scheduler(address: str, timeout: float = 5.0) -> int:
    """Connect to an existing Dask scheduler; its worker count. One line when unreachable."""
    from distributed import Client

    try:
        with Client(address, timeout=timeout, set_as_default=False) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
    except (OSError, TimeoutError, ValueError) as exc:
        raise GenloopError(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}); start one with "
                           f"`dask scheduler` and `dask worker {address}` on machines that share this "
                           f"project folder, or leave out --dask-address for a local cluster.") from None
    start = f"`dask worker {address} --nthreads 1 --preload {WORKER_PRELOAD}`"
    if not workers:
        raise GenloopError(f"the Dask scheduler at {address} has no workers: start some with {start} "
                           f"(on machines that see this project folder).")
    # Points in threads of one process would share torch's global random state and thread
    # count: two seeds at once would not train what either seed trains alone.
    threaded = sorted(f"{w.get('name', addr)} ({w.get('nthreads')} threads)"
                      for addr, w in workers.items() if int(w.get("nthreads") or 1) > 1)
    if threaded:
        raise GenloopError(f"Dask workers at {address} run several tasks at once in one process "
                           f"({', '.join(threaded[:3])}{' ...' if len(threaded) > 3 else ''}), and runs that share "
                           f"a process share torch's random state: start them with {start}, one per run "
                           f"that should go at once.")
    return len(workers)


def local_cluster_kwargs(workers: int, cores: int | None = None) -> tuple[dict[str, Any], int]:
    """A LocalCluster of `workers` processes, one task each, and the torch threads per worker
    that share the machine's cores between them."""
    import logging

    cores = cores or os.cpu_count() or 1
    return ({"n_workers": workers, "threads_per_worker": 1, "processes": True, "preload": [WORKER_PRELOAD],
             "silence_logs": logging.ERROR, "dashboard_address": ":0"}, max(1, cores // workers))

