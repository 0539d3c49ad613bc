"""`genloop deploy`: apply deploy/prefect.yaml to a Prefect server, so workers of a work pool
(`prefect worker start --pool genloop`) run the retraining and monitoring flows.

It runs Prefect's own `prefect deploy --all --prefect-file ...` in a subprocess, the command
the file documents for use by hand, so both paths store the same deployments, schedules and
drift trigger. Around it: checks that turn the usual mistakes into one line each (no server
configured or reachable, a prefect.yaml that would deploy nothing or the wrong thing), the
work pool made when missing (`prefect work-pool create --type process`), and a read-back of
what the server now holds. Talks to Prefect only through its CLI and REST API (components/
never imports prefect).
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from components.errors import GenloopError

DEFAULT_PREFECT_FILE = Path("deploy") / "prefect.yaml"
ROOT_VARIABLE = "GENLOOP_ROOT"         # `{{ $GENLOOP_ROOT }}` in prefect.yaml: the project folder
START_SERVER = ("start one with `prefect server start` (add PostgreSQL through "
                "PREFECT_API_DATABASE_CONNECTION_URL for production), then "
                "`export PREFECT_API_URL=http://127.0.0.1:4200/api`")
_PLACEHOLDER = re.compile(r"{{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*}}")


@dataclass(frozen=True)
class PlannedDeployment:
    name: str
    entrypoint: str
    pool: str
    crons: tuple[str, ...]
    triggers: int
    config_path: str | None


@dataclass
class DeployResult:
    deployments: list[dict] = field(default_factory=list)   # as the server returns them
    created_pools: list[str] = field(default_factory=list)
    online_workers: dict[str, int] = field(default_factory=dict)


def read_prefect_file(path: Path) -> list[PlannedDeployment]:
    """The deployments of a prefect.yaml, or a GenloopError naming what is wrong with it."""
    if not path.is_file():
        raise GenloopError(f"no prefect.yaml at {path}: pass --prefect-file, or run from the project root "
                           f"(the repository ships deploy/prefect.yaml).")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise GenloopError(f"{path}{where} is not valid YAML: {getattr(exc, 'problem', None) or exc}.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("deployments"), list) or not doc["deployments"]:
        raise GenloopError(f"{path} has no `deployments:` list: nothing to deploy.")
    planned, seen = [], set()
    for i, d in enumerate(doc["deployments"]):
        if not isinstance(d, dict):
            raise GenloopError(f"{path}: deployments[{i}] is not a mapping.")
        name = d.get("name") or f"deployments[{i}]"
        for key in ("name", "entrypoint"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise GenloopError(f"{path}: deployment {name!r} has no `{key}`.")
        if name in seen:
            raise GenloopError(f"{path}: two deployments are named {name!r}.")
        seen.add(name)
        pool = (d.get("work_pool") or {}).get("name") if isinstance(d.get("work_pool"), dict) else None
        if not pool:
            raise GenloopError(f"{path}: deployment {name!r} has no `work_pool: name:` (e.g. genloop).")
        _check_entrypoint(path, name, d["entrypoint"])
        schedules = d.get("schedules") or []
        if not isinstance(schedules, list) or not all(isinstance(s, dict) for s in schedules):
            raise GenloopError(f"{path}: deployment {name!r}: `schedules` must be a list of mappings (cron: ...).")
        triggers = d.get("triggers") or []
        if not isinstance(triggers, list):
            raise GenloopError(f"{path}: deployment {name!r}: `triggers` must be a list.")
        parameters = d.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise GenloopError(f"{path}: deployment {name!r}: `parameters` must be a mapping.")
        planned.append(PlannedDeployment(name, d["entrypoint"], pool,
                                         tuple(str(s["cron"]) for s in schedules if "cron" in s), len(triggers),
                                         parameters.get("config_path")))
    return planned


def _check_entrypoint(path: Path, name: str, entrypoint: str) -> None:
    """Module-path entrypoints (flows.training.retrain) must name an importable module; file
    entrypoints (flows/training.py:retrain) resolve against the project folder on the worker."""
    if ":" in entrypoint:
        return
    module, _, attr = entrypoint.rpartition(".")
    if not module or not attr:
        raise GenloopError(f"{path}: deployment {name!r}: entrypoint {entrypoint!r} is neither "
                           f"`package.module.flow` nor `path/to/file.py:flow`.")
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise GenloopError(f"{path}: deployment {name!r}: entrypoint module {module!r} is not importable here.")


def missing_env(path: Path, env: dict[str, str]) -> list[str]:
    """`{{ $VAR }}` placeholders in the file whose variable `env` lacks."""
    return sorted({v for v in _PLACEHOLDER.findall(path.read_text()) if v not in env})


def check_server(api_url: str | None, timeout: float = 5.0) -> str:
    """The API URL, once its /health answers; otherwise a GenloopError saying what to start."""
    import httpx

    if not api_url:
        raise GenloopError(f"`genloop deploy` needs a Prefect server and PREFECT_API_URL is not set: {START_SERVER}.")
    api = api_url.rstrip("/")
    try:
        response = httpx.get(f"{api}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise GenloopError(f"the Prefect server at {api} does not answer ({type(exc).__name__}): "
                           f"{START_SERVER}.") from None
    if response.status_code != 200:
        raise GenloopError(f"{api}/health answered HTTP {response.status_code}: is PREFECT_API_URL a Prefect "
                           f"API (it ends in /api)? Otherwise {START_SERVER}.")
    return api


def _prefect(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GenloopError(f"`prefect {' '.join(args)}` did not finish in {timeout:.0f}s.") from None


def _last_words(out: subprocess.CompletedProcess) -> str:
    """Prefect's error, one line: the last non-decorative lines of its output, joined."""
    lines = [ln.strip(" │╭╮╰╯─") for ln in (out.stdout + "\n" + out.stderr).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Traceback", "For further information visit"))]
    return " ".join(lines[-3:])[-500:] or f"exit status {out.returncode}"


def _headers(env) -> dict[str, str]:
    """What the Prefect client sends: a Prefect Cloud key, or a self-hosted server's
    basic-auth string (PREFECT_API_AUTH_STRING)."""
    import base64

    if env.get("PREFECT_API_KEY"):
        return {"Authorization": f"Bearer {env['PREFECT_API_KEY']}"}
    if env.get("PREFECT_API_AUTH_STRING"):
        return {"Authorization": "Basic " + base64.b64encode(env["PREFECT_API_AUTH_STRING"].encode()).decode()}
    return {}


def _api(method: str, url: str, env, json=None, ok=(200,)):
    """One call to the Prefect API; an answer other than `ok` (401 without the right
    credentials, 5xx) is one line, not a traceback."""
    import httpx

    try:
        r = httpx.request(method, url, json=json, headers=_headers(env), timeout=10)
    except httpx.HTTPError as exc:
        raise GenloopError(f"the Prefect API at {url} did not answer ({type(exc).__name__}).") from None
    if r.status_code not in ok:
        hint = " (set PREFECT_API_KEY or PREFECT_API_AUTH_STRING)" if r.status_code in (401, 403) else ""
        raise GenloopError(f"the Prefect API answered {r.status_code} to {method} {url}{hint}.")
    return r


def ensure_pool(api: str, pool: str, env: dict[str, str], cwd: Path) -> bool:
    """Make `pool` a process work pool when the server has none by that name; True if made."""
    if _api("GET", f"{api}/work_pools/{pool}", env, ok=(200, 404)).status_code == 200:
        return False
    out = _prefect(["work-pool", "create", pool, "--type", "process"], env, cwd, timeout=120)
    if out.returncode != 0:
        raise GenloopError(f"could not create the process work pool {pool!r}: {_last_words(out)}")
    return True


def deploy(root: Path, prefect_file: Path, api_url: str | None, project_root: str | None = None,
           say: Callable[[str], None] = print, timeout: float = 300) -> DeployResult:
    """Apply `prefect_file` to the server at `api_url`: the work pools it names (process pools
    made when missing), then every deployment in it through `prefect deploy --all`.
    `project_root`: the project folder as the workers see it (default: `root`)."""
    prefect_file = prefect_file if prefect_file.is_absolute() else root / prefect_file
    planned = read_prefect_file(prefect_file)
    where = project_root or str(root)
    if project_root is None or Path(where).is_dir():
        for p in planned:
            if p.config_path and not (Path(where) / p.config_path).is_file():
                raise GenloopError(f"{prefect_file}: deployment {p.name!r}: config_path {p.config_path!r} "
                                   f"is not a file under the project folder {where}.")
    api = check_server(api_url)
    env = {**os.environ, ROOT_VARIABLE: where, "PREFECT_API_URL": api}
    if gaps := missing_env(prefect_file, env):
        raise GenloopError(f"{prefect_file} uses {', '.join('{{ $' + v + ' }}' for v in gaps)}: set "
                           f"{' and '.join(gaps)} in the environment.")
    result = DeployResult()
    for pool in dict.fromkeys(p.pool for p in planned):
        if ensure_pool(api, pool, env, root):
            result.created_pools.append(pool)
            say(f"work pool {pool!r} created (type process)")
    out = _prefect(["deploy", "--all", "--prefect-file", str(prefect_file)], env, root, timeout)
    if out.returncode != 0:
        raise GenloopError(f"`prefect deploy` failed for {prefect_file}: {_last_words(out)}")
    names = [p.name for p in planned]
    stored = _api("POST", f"{api}/deployments/filter", env, json={"deployments": {"name": {"any_": names}}}).json()
    missing = sorted(set(names) - {d["name"] for d in stored})
    if missing:
        raise GenloopError(f"`prefect deploy` left out {', '.join(missing)} (its output: {_last_words(out)})")
    result.deployments = sorted(stored, key=lambda d: names.index(d["name"]))
    for pool in dict.fromkeys(p.pool for p in planned):
        workers = _api("POST", f"{api}/work_pools/{pool}/workers/filter", env,
                       json={"workers": {"status": {"any_": ["ONLINE"]}}}).json()
        result.online_workers[pool] = len(workers)
    return result
