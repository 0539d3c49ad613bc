"""The `genloop` command. Heavy libraries load inside the commands, so --help is fast."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from components.errors import GenloopError

app = typer.Typer(help="genloop: validate, augment, train, evaluate, audit, gate, package, "
                       "serve and monitor generative models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Datasets under data/, versioned with DVC.", no_args_is_help=True)
app.add_typer(data_app, name="data")
demo_app = typer.Typer(help="Scenarios you can replay end to end.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")

TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false",
                 "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _root() -> Path:
    return Path.cwd().resolve()


def _setup() -> Path:
    import logging

    from components.registry import configure_bentoml_home

    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "components")
    # Prefect waits 20 s for its temporary API server; a busy 2-core machine (a CI runner, a sweep
    # beside it) can take longer to start it, which failed a run before any stage began.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.console import configure_console

    configure_console()          # plain lines above progress bars; Prefect's per-run chatter kept in its log
    from flows.storage import configure_result_storage

    configure_result_storage()   # GENLOOP_RESULTS_URL=s3://...: Prefect results there (no-op unset)
    logging.getLogger("components").setLevel(logging.INFO)
    root = _root()
    configure_bentoml_home(root)
    return root


def _parse_overrides(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise GenloopError(f"--set takes KEY=VALUE (e.g. train.steps=50), got {pair!r}.")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


@data_app.command("init")
def data_init() -> None:
    """Write the embedded datasets (digits PNGs, pydocs corpus) into data/ and version them with DVC."""
    from components.data.versioning import init_data

    root = _setup()
    version = init_data(root)
    changed = ", ".join(k for k, v in version.changed.items() if v) or "nothing (already up to date)"
    typer.echo(f"data/: {version.files} files, {version.size / 1e6:.2f} MB, md5 {version.md5}; "
               f"rewritten: {changed}")
    if version.matches_dvc:
        typer.echo("data.dvc matches these bytes; `dvc status` is clean and the local remote holds them.")
    else:
        typer.secho(f"WARNING: data/ (md5 {version.md5}) differs from data.dvc (md5 {version.recorded_md5}); "
                    f"data.dvc was left unchanged. This Python's embedded data is not the committed "
                    f"version. Run `dvc add data` and commit data.dvc to version it.", fg="yellow", err=True)


@data_app.command("add")
def data_add(path: Path = typer.Argument(..., help="An image folder (class sub-folders, or flat) or text file(s)/folder."),
             name: str = typer.Option(..., "--name", help="Dataset name: it lands in data/NAME.")) -> None:
    """Copy a dataset into data/NAME, `dvc add data`, push to the DVC remote, print the new version."""
    from components.data.datasets import add_dataset

    import time

    root = _setup()
    start = time.perf_counter()
    info, data_md5 = add_dataset(root, path, name)
    typer.echo(f"data/{info.name}: {info.kind}, {info.files} files, {info.size / 1e6:.2f} MB, "
               f"md5 {info.md5}; data/ is now md5 {data_md5} "
               f"({time.perf_counter() - start:.1f}s). Commit data.dvc to record this version.")


@data_app.command("status")
def data_status() -> None:
    """Each dataset under data/: md5, file count, size, and whether the DVC remote holds it."""
    from rich.console import Console
    from rich.table import Table

    from components.data.datasets import dataset_status
    from components.data.versioning import current_version

    root = _setup()
    version = current_version(root)
    table = Table(title=f"data/ md5 {version.md5} "
                        f"({'matches' if version.matches_dvc else 'DIFFERS from'} data.dvc)")
    for column in ("dataset", "kind", "md5", "files", "MB", "in remote"):
        table.add_column(column)
    for d in dataset_status(root):
        held = "unknown" if d.in_remote is None else ("yes" if d.in_remote else "NO: run `dvc push`")
        table.add_row(d.name, d.kind, d.md5, str(d.files), f"{d.size / 1e6:.2f}", held)
    Console(width=120).print(table)


data_import_app = typer.Typer(help="Import a real dataset already on this machine into data/NAME, "
                                   "versioned with DVC (nothing is downloaded).", no_args_is_help=True)
data_app.add_typer(data_import_app, name="import")


def _echo_imported(result, seconds: float, what: str) -> None:
    typer.echo(f"data/{result.name}: {what}; {result.files} files, {result.size / 1e6:.2f} MB, md5 {result.md5}; "
               f"data/ is now md5 {result.data_md5} ({seconds:.1f}s). Commit data.dvc to record this version.")


@data_import_app.command("fashion-mnist")
def data_import_fashion_mnist(
        from_: Optional[Path] = typer.Option(None, "--from", help="Folder with the four IDX files, gzipped or not "
                                             "(default: /usr/share/datasets/fashion-mnist, Debian's "
                                             "dataset-fashion-mnist)."),
        name: str = typer.Option("fashion-mnist", "--name", help="Dataset name: it lands in data/NAME.")) -> None:
    """Fashion-MNIST IDX files -> data/NAME/{train,test}/<class>/<index>.png, checked, versioned with DVC."""
    import time

    from components.data.imports import import_fashion_mnist

    root = _setup()
    start = time.perf_counter()
    r = import_fashion_mnist(root, from_, name)
    size = "x".join(map(str, r.details["image_size"]))
    _echo_imported(r, time.perf_counter() - start, f"{r.details['train']} train and {r.details['test']} test "
                                                   f"images of {size} from {r.details['source']}")


@data_import_app.command("python-stdlib")
def data_import_python_stdlib(
        name: str = typer.Option("python-stdlib", "--name", help="Dataset name: it lands in data/NAME."),
        max_bytes: Optional[int] = typer.Option(None, "--max-bytes", help="Stop before the corpus passes this "
                                                "many bytes (whole files, in path order).")) -> None:
    """This Python's standard-library sources -> data/NAME/corpus.txt, versioned with DVC."""
    import time

    from components.data.imports import import_python_stdlib

    root = _setup()
    start = time.perf_counter()
    r = import_python_stdlib(root, name, max_bytes=max_bytes)
    skipped = ", ".join(f"{why}: {n}" for why, n in r.details["skipped"].items()) or "nothing"
    _echo_imported(r, time.perf_counter() - start, f"{r.details['source_files']} source files of Python "
                                                   f"{r.details['python']} from {r.details['source']} "
                                                   f"(skipped: {skipped})")


@app.command()
def run(config: Path = typer.Option(Path("configs/dcgan-digits.yaml"), help="YAML config under configs/."),
        seed: Optional[int] = typer.Option(None, help="Override the config's seed."),
        steps: Optional[int] = typer.Option(None, help="Override train.steps."),
        set_: list[str] = typer.Option([], "--set", help="Override any key: --set train.lr=1e-3"),
        data_rev: Optional[str] = typer.Option(None, "--data-rev", help="Train on data.dvc's version at this "
                                               "git revision, fetched from the DVC remote.")) -> None:
    """Run the retraining flow (Prefect): validate -> augment -> train -> evaluate -> audit -> gate -> package."""
    from components.config import load_project_config
    from components.data.versioning import current_version

    root = _setup()
    overrides = _parse_overrides(set_)
    if seed is not None:
        overrides["seed"] = seed
    if steps is not None:
        overrides["train.steps"] = steps
    cfg = load_project_config(root, config, overrides)   # fail fast, before Prefect
    from components.sweep import require_spread
    require_spread(root, cfg)                       # gate.use_seed_spread: the recorded spread is there
    if cfg.gate.require_approval:
        from flows.approval import require_server
        require_server("gate.require_approval")     # the pause must be reachable by `genloop approve`
    if data_rev:
        from components.data.versioning import md5_at_revision
        md5_at_revision(root, data_rev)
    else:
        current_version(root)
    from components.summary import render_summary
    from flows.training import retrain

    summary = retrain(str(root), str(config), overrides, data_rev)
    render_summary(summary)


@app.command()
def sweep(config: Path = typer.Option(Path("configs/dcgan-digits.yaml"), help="YAML config under configs/."),
          grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,... (repeatable): every combination is "
                                         "a grid point, e.g. --grid train.lr=1e-4,5e-4"),
          seeds: str = typer.Option("0,1,2", "--seeds", help="Training seeds of every grid point: 0,1,2 or 0-4."),
          set_: list[str] = typer.Option([], "--set", help="Overrides shared by every run: --set train.steps=300"),
          workers: int = typer.Option(0, "--workers", help="Worker processes of the local Dask cluster; the "
                                      "machine's cores are split between them (0: one per 2 cores, at least 1)."),
          dask_address: Optional[str] = typer.Option(None, "--dask-address", help="Run on the Dask scheduler at "
                                                     "tcp://HOST:PORT instead (workers started with --nthreads 1 "
                                                     "--preload flows.dask_worker, seeing this project folder at "
                                                     "the same path; PREFECT_API_URL a server)."),
          promote: bool = typer.Option(True, "--promote/--no-promote", help="Gate the winner against the "
                                       "champion (and package it when it passes), or only report."),
          data_rev: Optional[str] = typer.Option(None, "--data-rev", help="Train on data.dvc's version at this "
                                                 "git revision, fetched from the DVC remote.")) -> None:
    """Run a grid x seeds of retraining runs on Dask (Prefect's DaskTaskRunner), report each point's
    metric and the seed-to-seed spread (training noise), and promote at most one winner through
    the normal gate. The spread is recorded for gate.use_seed_spread."""
    from components.config import load_project_config
    from components.sweep import check_grid, parse_grid, parse_seeds, plan_points

    root = _setup()
    overrides, parsed, seed_list = _parse_overrides(set_), parse_grid(grid), parse_seeds(seeds)
    if workers < 0:
        raise GenloopError(f"--workers must be >= 1 (or 0: one per 2 cores), got {workers}.")
    workers = workers or max(1, (os.cpu_count() or 1) // 2)
    cfg = load_project_config(root, config, overrides)    # the shared part, before Dask
    if cfg.gate.require_approval and promote:
        raise GenloopError("gate.require_approval pauses for a person; a sweep gates its winner without "
                           "pausing: run it with --no-promote, then `genloop run` the winning settings.")
    if promote and len(seed_list) < 2:              # no spread of its own: gate.use_seed_spread needs a recorded one
        from components.sweep import require_spread
        require_spread(root, cfg)
    for refusal in check_grid(root, str(config), overrides, parsed):   # a typo'd key: refused before Dask starts
        typer.echo(f"this grid point will fail: {refusal}", err=True)
    if data_rev:
        from components.data.versioning import md5_at_revision
        md5_at_revision(root, data_rev)
    from components.summary import render_sweep
    from flows.sweep import run_sweep

    typer.echo(f"{len(plan_points(parsed, seed_list))} runs of {cfg.name}")
    result = run_sweep(str(root), str(config), parsed, seed_list, overrides, data_rev, promote, workers, dask_address)
    render_sweep(result)
    failed = [p for p in result["points"] if p["status"] != "ok"]
    if len(failed) == len(result["points"]):
        raise GenloopError(f"all {len(failed)} runs of the sweep failed; the first: {failed[0]['error']}")


@app.command()
def train(config: Path = typer.Option(Path("configs/dcgan-digits.yaml"), help="YAML config under configs/."),
          nproc: int = typer.Option(1, help="Processes (torchrun, data-parallel: gloo on CPU, NCCL on GPU)."),
          set_: list[str] = typer.Option([], "--set", help="Override any key: --set train.steps=50"),
          resume: Optional[Path] = typer.Option(None, help="A run dir (runs/<id>) to continue from its newest "
                                                "training state (train.checkpoint_every).")) -> None:
    """Train only (no validation, evaluation or packaging), optionally on N processes."""
    import json
    import subprocess

    from components.runs import RunContext, prepare_run
    from components.training.run import check_world

    root = _setup()
    if nproc < 1:
        raise GenloopError(f"--nproc must be >= 1, got {nproc}.")
    ctx = RunContext.load(resume) if resume is not None else prepare_run(root, str(config), _parse_overrides(set_))
    check_world(ctx.config, nproc)                # before torchrun starts any process
    if nproc == 1:
        from components.training.run import plan_augmentation, train_run
        train_run(ctx, plan_augmentation(ctx), resume=resume is not None)
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "components.training.launch", str(ctx.run_dir)] + (["--resume"] if resume else [])
        if subprocess.call(cmd) != 0:
            raise GenloopError(f"distributed training failed (see the output above); run dir {ctx.run_dir}.")
    for report in sorted(ctx.run_dir.glob("rank-*.json")):
        r = json.loads(report.read_text())
        typer.echo(f"rank {r['rank']}/{r['world_size']}: {r['steps']} steps, weights md5 {r['weights_md5']}, "
                   f"held-out loss {r['heldout_loss']}")
    typer.echo(f"checkpoint: {ctx.run_dir / 'train' / 'checkpoint'}")


@app.command()
def serve(model: str = typer.Option("dcgan-digits", help="Model name (the config's `name`), exactly."),
          port: int = typer.Option(3000, help="HTTP port."),
          follow: bool = typer.Option(False, "--follow", help="Move to a newly promoted champion without a "
                                      "restart (responses' model_tag changes; no request fails)."),
          max_batch_size: Optional[int] = typer.Option(None, help="Images per batched forward / text rows "
                                                       "decoded at once (default: the config's serving section)."),
          max_latency_ms: Optional[float] = typer.Option(None, help="Thread image engine: most an image request "
                                                         "waits for others to join its batch."),
          image_engine: Optional[str] = typer.Option(None, help="Where image forwards run: loop (the event loop, "
                                                     "batching what arrives while it is busy; small models on CPU) "
                                                     "or thread (models whose forward is long).")) -> None:
    """Serve the bento of MODEL's champion with `bentoml serve`: POST /generate, /generate_stream
    (text), /generate_png (images). Bearer tokens from GENLOOP_API_TOKENS or GENLOOP_API_TOKENS_FILE;
    none: the API is open."""
    import subprocess

    from components.paths import ProjectPaths
    from components.registry import champion_bento

    from components.serving.limits import IMAGE_ENGINES, bento_serving_config

    if image_engine is not None and image_engine not in IMAGE_ENGINES:
        raise GenloopError(f"--image-engine must be one of {', '.join(IMAGE_ENGINES)}, got {image_engine!r}.")
    root = _setup()
    bento = champion_bento(model)
    env = {**os.environ, "GENLOOP_MONITOR_DIR": str(ProjectPaths.at(root).monitoring(model)),
           "GENLOOP_FOLLOW": "1" if follow else ""}
    for var, value in (("GENLOOP_MAX_BATCH_SIZE", max_batch_size), ("GENLOOP_MAX_LATENCY_MS", max_latency_ms),
                       ("GENLOOP_IMAGE_ENGINE", image_engine)):
        if value is not None:
            env[var] = str(value)
    # the settings the server will resolve (the bento's serving section, then the environment):
    # a bad value fails here in one line, not as a traceback in the server's worker
    limits = bento_serving_config(bento.path, env)
    if limits.image_engine == "loop" and (max_latency_ms is not None or env.get("GENLOOP_MAX_LATENCY_MS", "").strip()):
        typer.secho("note: max_latency_ms applies to the thread image engine only; this server batches image "
                    "requests on the event loop (--image-engine thread to wait for company)", fg="yellow", err=True)
    typer.echo(f"serving {bento.tag} on http://127.0.0.1:{port}  (logs: {env['GENLOOP_MONITOR_DIR']})")
    cmd = [sys.executable, "-m", "bentoml", "serve", str(bento.tag), "--port", str(port)]
    raise typer.Exit(subprocess.call(cmd, env=env))


@app.command()
def champion(model: str = typer.Argument(..., help="Model name (the config's `name`)."),
             set_: Optional[str] = typer.Option(None, "--set", help="Make this stored model tag the champion "
                                                "(e.g. to roll back).")) -> None:
    """Show MODEL's champion and its history, or point the champion alias at another stored model."""
    import json

    from components.registry import champion_history, champion_tag, get_model, set_champion

    _setup()
    if set_:
        set_champion(model, set_)
    tag = champion_tag(model)
    if tag is None:
        raise GenloopError(f"{model!r} has no champion yet: run `genloop run` to train and promote one.")
    from components.gate import Scorecard

    card = Scorecard.from_metadata(tag, get_model(tag).metadata.get("scorecard", {}))
    typer.echo(f"champion of {model}: {tag}  ({card.metric} {card.value:.4g} on dataset "
               f"{card.dataset_md5}, {json.dumps(card.protocol)})")
    for entry in champion_history(model):
        typer.echo(f"  {entry['since']}  {entry['tag']}")


@app.command()
def monitor(model: str = typer.Option("dcgan-digits", help="Model name (the config's `name`)."),
            checks: str = typer.Option("data,staleness,output", help="Which drift to check, comma-separated: "
                                       "data (newest data vs the champion's training data), staleness (the "
                                       "champion's metric on the newest data), output (served generations)."),
            data_rev: Optional[str] = typer.Option(None, help="Newest data = data.dvc at this git revision "
                                                   "(default: data/ as it is)."),
            data_dir: Optional[Path] = typer.Option(None, help="Newest data = this incoming folder (holding "
                                                    "the dataset folder, e.g. digits/)."),
            log_dir: Optional[Path] = typer.Option(None, help="Serving log dir (default: where `genloop serve` "
                                                   "logs, .genloop/monitoring/MODEL)."),
            config: Optional[Path] = typer.Option(None, help="Take the monitor: section from this config "
                                                  "(default: the one the champion was trained with)."),
            set_: list[str] = typer.Option([], "--set", help="monitor.* overrides, e.g. monitor.data_samples=200.")
            ) -> None:
    """Run the monitoring flow (Prefect): data drift, staleness and output drift of the champion.

    Exits 0 when nothing fired, 3 when drift fired (its event is emitted once per champion,
    newest data and kinds).
    """
    root = _setup()
    from components.monitoring.run import monitor_inputs

    kinds = [k.strip() for k in checks.split(",") if k.strip()]
    monitor_inputs(root, model, tuple(kinds), log_dir=log_dir, data_rev=data_rev, data_dir=data_dir,
                   config_path=config, overrides=_parse_overrides(set_))     # bad input: one line, before Prefect
    from flows.monitoring import monitor as monitor_flow

    result = monitor_flow(str(root), model, kinds, str(log_dir) if log_dir else None, data_rev,
                          str(data_dir) if data_dir else None, str(config) if config else None,
                          _parse_overrides(set_))
    typer.echo(f"champion {result['model_tag']}; newest data {result['newest']['label'] or '-'}")
    for c in result["checks"]:
        typer.echo(f"  {c['kind']:<9} {'FIRED' if c['fired'] else 'ok':<5}  {c['summary']}")
    typer.echo(f"report: {result['report_path']}")
    if result["fired"]:
        fired = ", ".join(result["fired"])
        if result["event"] == "genloop.drift.detected":
            then = f"event {result['event']} emitted: retrain on data {result['payload']['data_rev'][:12] or 'data/ as it is'}"
        elif result["event"]:
            then = (f"event {result['event']} emitted: an alert only (monitor.retrain_on is "
                    f"{', '.join(result['retrain_on'])})")
        else:
            then = "event already emitted for this champion, data and kinds: not emitted again"
        typer.secho(f"DRIFT ({fired}): {then}", fg="red")
        raise typer.Exit(3)


@app.command()
def schedule(config: Path = typer.Option(Path("configs/dcgan-digits.yaml"), help="YAML config under configs/."),
             cron: str = typer.Option("0 3 * * 1", help="Retraining schedule (cron)."),
             monitor_cron: str = typer.Option("0 * * * *", help="Monitoring schedule (cron); '' for none."),
             monitor_checks: str = typer.Option("data,staleness", help="What the scheduled monitor checks "
                                                "(add output once the champion is served)."),
             set_: list[str] = typer.Option([], "--set", help="Config overrides for scheduled runs.")) -> None:
    """Serve the retraining deployment (cron + drift trigger) and the monitoring deployment.

    Needs a Prefect server: `prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api.
    """
    from components.config import load_project_config

    root = _setup()
    overrides = _parse_overrides(set_)
    cfg = load_project_config(root, config, overrides)
    from prefect.settings import PREFECT_API_URL

    if not (os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()):
        raise GenloopError("schedules and triggers need a Prefect server: run `prefect server start`, "
                           "then `export PREFECT_API_URL=http://127.0.0.1:4200/api` and retry.")
    from flows.deployments import build_deployments, serve_deployments

    serve_deployments(build_deployments(str(root), str(config), cfg.name, overrides, cron, monitor_cron or None,
                                        tuple(k.strip() for k in monitor_checks.split(",") if k.strip())))


@app.command()
def approve(flow_run_id: str = typer.Argument(..., metavar="RUN_ID", help="The paused flow run's id, as "
                                              "`genloop run` printed it (`genloop approve <flow-run-id>`)."),
            reject: bool = typer.Option(False, "--reject", help="Reject: the model is not promoted."),
            reviewer: Optional[str] = typer.Option(None, help="Who decides, stored with the model "
                                                   "(default: $USER)."),
            comment: str = typer.Option("", help="Why, stored with the model.")) -> None:
    """Approve (or --reject) a retraining run paused before packaging (gate.require_approval).

    Needs the Prefect server the run uses (PREFECT_API_URL). The Prefect UI's Resume form does the same.
    """
    _setup()
    from flows.approval import resume_with_decision

    who = reviewer if reviewer is not None else (os.environ.get("USER") or "unknown")
    name = resume_with_decision(flow_run_id, approve=not reject, reviewer=who, comment=comment)
    typer.echo(f"{'rejected' if reject else 'approved'} flow run {flow_run_id} ({name}) as {who.strip()}: "
               f"it {'packages and promotes the model' if not reject else 'ends without promoting'} now.")


@app.command()
def dashboard(port: int = typer.Option(8000, help="Port of the Evidently UI."),
              host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
              rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the workspace from the run folders "
                                           "under runs/ first.")) -> None:
    """Serve the dashboards: `evidently ui` over .genloop/evidently (one project per model: FID or
    perplexity and promotions over time, data and output drift, class shares, the champion).

    Prints its URL and the Prefect UI's (when PREFECT_API_URL names a server); Ctrl-C stops it.
    A missing workspace is built from runs/; a corrupt one is moved aside and rebuilt.
    """
    root = _setup()
    from components.dashboard.server import serve

    raise typer.Exit(serve(root, host, port, _prefect_ui_url(), rebuild, say=typer.echo))


@app.command()
def deploy(prefect_file: Path = typer.Option(Path("deploy/prefect.yaml"), "--prefect-file",
                                             help="The prefect.yaml to apply."),
           root: Optional[str] = typer.Option(None, "--root", help="The project folder as the workers see it "
                                              "(default: this one); fills {{ $GENLOOP_ROOT }}.")) -> None:
    """Apply deploy/prefect.yaml to the Prefect server in PREFECT_API_URL: the retraining deployment
    (cron + drift trigger) and the monitoring deployment on the `genloop` process work pool (created
    when missing). Then run them with `prefect worker start --pool genloop`."""
    from prefect.settings import get_current_settings

    from components.deployments import deploy as apply_prefect_file

    project = _setup()
    api_url = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url
    result = apply_prefect_file(project, prefect_file, str(api_url) if api_url else None, root, say=typer.echo)
    for d in result.deployments:
        crons = ", ".join(s["schedule"].get("cron") or "-" for s in d.get("schedules") or []) or "no schedule"
        typer.echo(f"deployed {d['name']} ({d['entrypoint']}) on pool {d['work_pool_name']!r}: {crons}; "
                   f"parameters {d['parameters']}")
    for pool, online in result.online_workers.items():
        typer.echo(f"pool {pool!r}: {online} worker(s) online" if online else
                   f"pool {pool!r}: no worker online; start one where the project lives: "
                   f"`prefect worker start --pool {pool}`")


def _prefect_ui_url() -> str | None:
    """The Prefect UI of the configured server (PREFECT_UI_URL, else PREFECT_API_URL without
    /api); None when no server is configured (runs use Prefect's ephemeral API)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if not settings.api.url:
        return None
    return str(settings.ui_url or os.environ.get("PREFECT_UI_URL") or
               str(settings.api.url).rstrip("/").removesuffix("/api")).rstrip("/")


@demo_app.command("drift")
def demo_drift(dir_: Optional[Path] = typer.Option(None, "--dir", help="A new folder for the demo project "
                                                   "(default: runs/demo-drift-<time>)."),
               steps: int = typer.Option(1500, help="train.steps of both trainings."),
               samples: int = typer.Option(300, help="Evaluation and data-drift samples (>= 200)."),
               timeout: float = typer.Option(900, help="Seconds any one step may take.")) -> None:
    """The closed loop, replayed: a champion trained on digits 0-4, data v2 (all ten digits)
    committed, the scheduled monitor detects it, the drift event retrains on v2, the gate
    re-scores the old champion on v2 and promotes, the running server moves to the new
    champion and serves the new classes. Real Prefect server, DVC, BentoML; in its own
    project folder. Ends with a table of the steps, their times and what fired (summary.md)."""
    import time

    from components.demo import Demo

    root = _setup()
    folder = dir_ or root / "runs" / f"demo-drift-{time.strftime('%Y%m%d-%H%M%S')}"
    typer.echo(f"demo project: {folder}  (logs: {folder / 'logs'})")
    demo = Demo(folder, steps=steps, samples=samples, timeout=timeout, say=typer.echo)
    demo.run()
    typer.echo("\n" + demo.markdown() + f"\nsummary: {folder / 'summary.md'}; served new classes: "
               f"{folder / 'served-new-classes.png'}\ndashboards of the runs: cd {folder} && genloop dashboard")


def main() -> None:
    try:
        app()
    except GenloopError as exc:
        from flows.console import failure_hint

        typer.secho(f"error: {exc}", fg="red", err=True)
        if hint := failure_hint():
            typer.echo(hint, err=True)
        sys.exit(1)
