"""Load and fault figures of the genloop service (issue 10), on loopback, in one bounded run
that stops by itself. Every server it starts runs in its own process group on a free
127.0.0.1 port, with its own temporary serving-log folder, and is stopped at the end.

trivial  a constant BentoML endpoint (benchmarks/trivial_service.py: the same request
         schema, a reply the size of an image n=1 one; the worker/thread/traffic settings
         of the genloop service): the framework's ceiling, at 1, 8 and 32 clients.
images   the image champion (default dcgan-digits) at 1, 8, 32 clients, n=1 and n=16.
text     the text champion (default charlm-pydocs) at 1, 8, 32 clients, 200 tokens.
bare     the batched forward in this process, no HTTP: images at batch 32 (n=1 x 32
         clients) and 32x16, with and without the service's uint8 + PNG + base64 encoding;
         text `model.sample(32, seed, max_new_tokens=200)` (and batch 1).
volume   10,000 image n=1 requests at 32 clients: non-2xx and errors (goal 0), and the
         serving-log rows this run added against the items it generated (goal: exactly one
         row per item, each request's id on as many rows as it generated items).
fuzz     1,000 malformed requests per server (a seeded mix; what counts as bad for which
         modality is spelled out in fuzz_cases below): the goal is every one answered 4xx;
         each 5xx or dropped connection is reported with the request that caused it; then
         the server must still answer /readyz and a good /generate. Each kind says whether
         the schema /generate always had makes it bad, or the rules being added (unknown
         fields, body and prompt size limits, auth, an empty body rather than {}).
mixed    text at 32 clients asking for different lengths (8 each for 50, 100, 200 and 400
         tokens, four hey runs at once), beside bare batch-32 sampling before and after.
ttft     time to the first streamed token (POST /generate_stream, text/event-stream) with
         32 streaming clients in a closed loop; "not available" while the route is missing.
swap     hot swap under load: the image server runs with GENLOOP_FOLLOW=1 (`genloop serve
         --follow`, its default 2 s check) on a copy of the champion in a temporary model
         store; 32 clients (images n=1) load it while a new model is saved and made champion
         there (the project's own store and aliases are not touched). Reported: requests,
         non-2xx and errors during the run (goal 0), requests/s against the plain n=1 run,
         and how long after the alias moved the responses' model_tag changed (a probe
         client posts every 20 ms).

The load runs use `hey` (Debian; `make load-tools` installs it and wrk) with a fixed
duration per run (-z), POSTing the same JSON body each time (no seed: the server draws one,
so the work differs per request only by its seed), with `Authorization: Bearer TOKEN`: the
servers run with GENLOOP_API_TOKENS=TOKEN, so authentication is part of the cost. hey runs
on the same cores as the server: on a small machine the load generator's CPU is part of
what is measured (the same for every target, so the ratios compare like with like).
--tool wrk runs the fixed-duration load runs with wrk instead (the volume run is always
hey: it needs a request count).

The service is, by default, the working tree's deploy/ + components/ staged exactly as
`build_bento` stages a bento (its bento build skipped) and served with `bentoml serve
service:Generator` from there, with the champion model from the project's store: what is
measured is the code as it is now. --source bento serves the champion's newest bento (what
`genloop serve` runs: the tree as of that build); --image-bento/--text-bento TAG serve a
given bento (an older build, to compare).

Before each server starts, the share of the CPU other processes use is measured: above 15%
the run says it is not clean (a shared 2-core machine gives figures that mean little).

Usage:
  .venv/bin/python benchmarks/serving_load.py           # everything: ~7 minutes on 2 cores
                                                        # (the volume run stops itself at 240 s)
  .venv/bin/python benchmarks/serving_load.py --quick   # smoke run, ~1.5 minutes
  .venv/bin/python benchmarks/serving_load.py --only images,trivial --duration 15
Writes runs/benchmarks/serving_load.json (--json) and prints a markdown summary (stdout;
progress on stderr). Exit status 1 when a part failed to run (not when a goal is missed).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENTS = (1, 8, 32)
PARTS = ("bare", "trivial", "images", "volume", "fuzz", "text", "mixed", "ttft", "swap")
IMAGE_BODIES = {1: {"n": 1}, 16: {"n": 16}}
TEXT_TOKENS = 200
TEXT_BODY = {"n": 1, "prompt": "def ", "max_new_tokens": TEXT_TOKENS}
REQUEST_TIMEOUT = 120                 # per request (hey -t, httpx): the service's traffic timeout
GOAL = 0.8
BUSY = 0.15                           # other processes' CPU share above which a run is not clean


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# machine and provenance

def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu or platform.processor() or "unknown", "cores": cores, "cpu_count": os.cpu_count(),
            "memory_gib": mem_gib, "kernel": platform.release(), "python": platform.python_version()}


def cpu_busy(seconds: float = 1.0) -> float | None:
    """The share of all cores busy over `seconds` (/proc/stat): what other processes use
    while none of this benchmark's servers runs."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)      # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return round(1 - (idle1 - idle0) / max(total1 - total0, 1), 3)


def versions(tool: str) -> dict:
    from importlib.metadata import version

    out = {}
    for package in ("bentoml", "torch", "pydantic", "httpx"):
        try:
            out[package] = version(package)
        except Exception:
            out[package] = None
    for binary in ("hey", "wrk"):
        try:
            out[binary] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", binary], capture_output=True,
                                         text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            out[binary] = None
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "deploy", "components"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["git"] = sha + (" + uncommitted changes in deploy/ or components/" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        out["git"] = None
    return out


# ---------------------------------------------------------------------------------------
# servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_RUNNING: list["Server"] = []


@dataclass
class Server:
    """One `bentoml serve` in its own process group on a free 127.0.0.1 port."""
    name: str
    target: str                       # bento tag or module:Class
    cwd: Path
    env: dict
    log_path: Path
    monitor_dir: Path | None = None
    proc: subprocess.Popen | None = None
    url: str = ""

    def start(self, ready_s: float = 180) -> "Server":
        import httpx

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", self.target, "--port", str(port),
                                      "--host", "127.0.0.1"], cwd=self.cwd, env=self.env,
                                     stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _RUNNING.append(self)
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: `bentoml serve {self.target}` exited "
                                   f"({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    log(f"{self.name}: {self.target} ready on {self.url}")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name}: not ready in {ready_s:.0f} s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 20 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        try:                                 # workers left behind by a killed arbiter
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self in _RUNNING:
            _RUNNING.remove(self)


def stop_all() -> None:
    for server in list(reversed(_RUNNING)):
        server.stop()


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def stage_tree(model_tag: str, name: str, modality: str, dest: Path, metadata: dict) -> tuple[str, Path]:
    """What `build_bento` puts in a bento (deploy/, components/, genloop_model.json, the
    bentofile), staged by build_bento itself with the bento build skipped; given what
    promotion gives it (the serving section of the model's config, where it takes one)."""
    import inspect
    from types import SimpleNamespace
    from unittest import mock

    import bentoml
    import yaml

    from components.registry import build_bento

    extra = {}
    if "serving" in inspect.signature(build_bento).parameters:
        extra["serving"] = (metadata.get("config") or {}).get("serving")
    with mock.patch.object(bentoml.bentos, "build_bentofile", lambda *a, **k: SimpleNamespace(tag="staged")):
        build_bento(model_tag, name, modality, dest, **extra)
    service = yaml.safe_load((dest / "bentofile.yaml").read_text())["service"]
    return service, dest


def service_shape(src: Path, service: str, env: dict) -> dict:
    """The service's config (workers, threads, traffic) and whether /generate is async,
    read by importing it (no model is loaded: that happens in the instance)."""
    module, _, attr = service.partition(":")
    code = ("import json, inspect, sys\n"
            f"import {module} as m\n"
            f"svc = m.{attr or 'svc'}\n"
            "api = svc.apis.get('generate')\n"
            "fn = getattr(api, 'func', None)\n"
            "print('SHAPE' + json.dumps({'config': {k: v for k, v in dict(svc.config).items() "
            "if k in ('workers', 'threads', 'traffic')}, 'api_async': bool(fn and (inspect.iscoroutinefunction(fn) "
            "or inspect.isasyncgenfunction(fn))), 'routes': sorted(a.route for a in svc.apis.values())}, default=str))\n")
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=src, env=env, capture_output=True, text=True,
                             timeout=120)
        line = next((x for x in out.stdout.splitlines() if x.startswith("SHAPE")), None)
        if line:
            return json.loads(line[5:])
        log(f"could not read the service's config ({out.stderr.strip()[-500:]}); assuming BentoML's defaults")
    except subprocess.TimeoutExpired:
        log("reading the service's config timed out; assuming BentoML's defaults")
    return {"config": {}, "api_async": False, "routes": []}


def genloop_server(model: str, source: str, tmp: Path, base_env: dict, token: str,
                   bento_tag: str | None = None) -> tuple[Server, dict]:
    """The server of `model`'s champion: staged from the working tree, its newest bento, or
    the bento `bento_tag` (which names the model it serves)."""
    import bentoml

    from components.registry import champion_bento, champion_tag, get_model

    if bento_tag:
        bento = bentoml.bentos.get(bento_tag)
        tags = [str(m.tag) for s in bento.info.services for m in s.models]
        tag, source = (tags[0] if tags else None), "bento"
    else:
        tag = champion_tag(model)
    if tag is None:
        raise SystemExit(f"no champion named {model!r} in {os.environ['BENTOML_HOME']}: train one "
                         f"(`genloop run --config configs/{model}.yaml`) or pass --project")
    stored = get_model(tag)
    modality = stored.labels.get("modality") or stored.metadata.get("modality") or "image"
    if source == "bento":
        bento = bentoml.bentos.get(bento_tag) if bento_tag else champion_bento(model)
        target, src, cwd = str(bento.tag), Path(bento.path) / "src", tmp
        service = bento.info.service or "service:Generator"
    else:
        service, src = stage_tree(tag, model, modality, tmp / f"stage-{model}", stored.metadata)
        target, cwd = service, src
    monitor = tmp / f"monitor-{model}"
    env = {**base_env, "GENLOOP_MONITOR_DIR": str(monitor), "GENLOOP_API_TOKENS": token}
    env.pop("GENLOOP_FOLLOW", None)
    shape = service_shape(src, service, env)
    info = {"model": tag.split(":")[0], "model_tag": tag, "modality": modality, "source": source, "served": target,
            "service_config": shape["config"], "generate_async": shape["api_async"], "routes": shape["routes"]}
    return Server(model, target, cwd, env, tmp / f"server-{model}.log", monitor), info


# ---------------------------------------------------------------------------------------
# load tools

def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)\s*(us|ms|s|m|h)?", text.strip()).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[unit]


def parse_hey(out: str) -> dict:
    def grab(label):
        m = re.search(rf"^\s*{re.escape(label)}:\s*([\d.]+)", out, re.M)
        return float(m.group(1)) if m else None

    latency = {int(p): float(s) for p, s in re.findall(r"^\s*(\d+)% in ([\d.]+) secs", out, re.M)}
    statuses = {int(code): int(count) for code, count in re.findall(r"^\s*\[(\d+)\]\s+(\d+) responses", out, re.M)}
    errors = {}
    if "Error distribution:" in out:
        for count, message in re.findall(r"^\s*\[(\d+)\]\s+(.*)$", out.split("Error distribution:", 1)[1], re.M):
            errors[message.strip()[:300]] = int(count)
    ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
    total_s, slowest = grab("Total"), grab("Slowest")
    answered = sum(statuses.values())
    # hey prints a percentile only once its rank is reached: under 100 answers there is no
    # 99% line, and the nearest-rank p99 of fewer than 100 values is the slowest
    p99 = latency.get(99, slowest if answered and answered < 100 else None)
    return {"seconds": total_s, "rps": grab("Requests/sec"), "ok": ok,
            "ok_rps": round(ok / total_s, 2) if total_s else None, "answered": answered,
            "p50_s": latency.get(50), "p90_s": latency.get(90), "p99_s": p99,
            "p99_is_slowest": 99 not in latency and p99 is not None,
            "slowest_s": slowest, "bytes_per_response": grab("Size/request"),
            "statuses": statuses, "non_2xx": sum(c for s, c in statuses.items() if not 200 <= s < 300),
            "errors": sum(errors.values()), "error_kinds": errors}


def parse_wrk(out: str) -> dict:
    latency = {int(p): _seconds(v) for p, v in re.findall(r"^\s*(\d+)%\s+([\d.]+\s*(?:us|ms|s|m))\s*$", out, re.M)}
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    done, total_s = (int(m.group(1)), _seconds(m.group(2))) if m else (0, None)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    non2xx = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()))) if sock else {}
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    ok = done - non2xx
    return {"seconds": total_s, "rps": float(rps.group(1)) if rps else None, "ok": ok,
            "ok_rps": round(ok / total_s, 2) if total_s else None,
            "p50_s": latency.get(50), "p90_s": latency.get(90), "p99_s": latency.get(99), "slowest_s": None,
            "bytes_per_response": None, "statuses": {}, "non_2xx": non2xx,
            "errors": sum(errors.values()), "error_kinds": {k: v for k, v in errors.items() if v}}


def run_tool(argv: list[str], limit_s: float, stop_after_s: float | None = None) -> tuple[str, bool]:
    """Run a load tool; SIGINT it after stop_after_s (hey then stops its workers and still
    prints its report), SIGKILL at limit_s. Returns (stdout, whether it was cut short)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    cut = False
    try:
        try:
            out, _ = proc.communicate(timeout=stop_after_s or limit_s)
        except subprocess.TimeoutExpired:
            cut = True
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=max(limit_s - (stop_after_s or 0), 5))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
    except BaseException:                    # interrupted: the tool goes too
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        raise
    if proc.returncode not in (0, None) and not cut:
        log(f"{argv[0]} exited {proc.returncode}: {out[-500:]}")
    return out, cut


def hey(url: str, body: dict, clients: int, token: str, *, seconds: float | None = None,
        requests: int | None = None, cap_s: float | None = None) -> dict:
    argv = ["hey", "-c", str(clients), "-t", str(REQUEST_TIMEOUT), "-m", "POST", "-T", "application/json",
            "-H", f"Authorization: Bearer {token}", "-d", json.dumps(body)]
    argv += ["-z", f"{seconds:g}s"] if seconds else ["-n", str(requests)]
    argv.append(f"{url}/generate")
    limit = (seconds or cap_s or 600) + REQUEST_TIMEOUT + 30
    out, cut = run_tool(argv, limit, None if seconds else cap_s)
    result = parse_hey(out)
    result.update(tool="hey", clients=clients, body=body, cut_short=cut)
    if result["rps"] is None:
        result["raw"] = out[-2000:]
    return result


def wrk(url: str, body: dict, clients: int, token: str, *, seconds: float, tmp: Path) -> dict:
    script = tmp / f"wrk-{abs(hash(json.dumps(body)))}.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = [==[{json.dumps(body)}]==]\n'
                      f'wrk.headers["Content-Type"] = "application/json"\n'
                      f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    argv = ["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{max(1, round(seconds))}s",
            "--timeout", f"{REQUEST_TIMEOUT}s", "--latency", "-s", str(script), f"{url}/generate"]
    out, cut = run_tool(argv, seconds + REQUEST_TIMEOUT + 30)
    result = parse_wrk(out)
    result.update(tool="wrk", clients=clients, body=body, cut_short=cut)
    if result["rps"] is None:
        result["raw"] = out[-2000:]
    return result


def warm_up(url: str, body: dict, token: str, requests: int) -> None:
    import httpx

    with httpx.Client(timeout=REQUEST_TIMEOUT, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(requests):
            client.post(f"{url}/generate", json=body)


def load_runs(name: str, url: str, body: dict, items: int, opts, seconds: float, tmp: Path) -> list[dict]:
    """One fixed-duration run per client count; items: generated items per request."""
    rows = []
    for clients in opts.clients:
        if opts.tool == "wrk":
            r = wrk(url, body, clients, opts.token, seconds=seconds, tmp=tmp)
        else:
            r = hey(url, body, clients, opts.token, seconds=seconds)
        r.update(target=name, items_per_request=items,
                 items_per_s=round(r["ok_rps"] * items, 2) if r["ok_rps"] is not None else None)
        rows.append(r)
        log(f"{name:14} c={clients:<3} {r['rps'] or 0:8.1f} req/s  p50 {ms(r['p50_s'])} ms  p99 {ms(r['p99_s'])} ms"
            f"  non-2xx {r['non_2xx']}  errors {r['errors']}")
    return rows


def merge_rounds(runs: list[dict]) -> dict:
    """One row from the interleaved rounds of one target and client count: requests/s over
    the rounds' total time, p50 the median of the rounds' p50s, p99 the largest p99, the
    counts summed; each round's row kept under `rounds`."""
    seconds = sum(r["seconds"] or 0 for r in runs)
    ok = sum(r["ok"] for r in runs)
    answered = sum(r["answered"] for r in runs)
    row = {**runs[0], "seconds": seconds, "ok": ok, "answered": answered,
           "rps": round(answered / seconds, 2) if seconds else None,
           "ok_rps": round(ok / seconds, 2) if seconds else None,
           "p50_s": statistics.median([r["p50_s"] for r in runs if r["p50_s"] is not None] or [None]),
           "p99_s": max([r["p99_s"] for r in runs if r["p99_s"] is not None], default=None),
           "non_2xx": sum(r["non_2xx"] for r in runs), "errors": sum(r["errors"] for r in runs),
           "rounds": [{k: r.get(k) for k in ("seconds", "ok_rps", "p50_s", "p99_s")} for r in runs]}
    row["items_per_s"] = round(row["ok_rps"] * row["items_per_request"], 2) if row["ok_rps"] is not None else None
    return row


def interleaved_runs(targets: list[tuple[str, str, dict, int]], opts, tmp: Path) -> list[dict]:
    """`targets` (name, url, body, items) loaded in turn, client count by client count, for
    opts.rounds rounds of duration / rounds seconds each, in turn forwards and backwards: a
    machine whose speed drifts (a shared host) moves every target's figure alike, so the
    ratios hold."""
    runs: dict[tuple[str, int], list[dict]] = {}
    seconds = opts.duration / opts.rounds
    for round_ in range(opts.rounds):
        for clients in opts.clients:
            # odd rounds take the targets in reverse order (ABBA): a drift over the seconds of a
            # round favours neither the first target nor the last
            for name, url, body, items in (targets if round_ % 2 == 0 else targets[::-1]):
                one = SimpleOpts(clients=(clients,), tool=opts.tool, token=opts.token)
                runs.setdefault((name, clients), []).extend(load_runs(f"{name} [{round_ + 1}]", url, body, items,
                                                                      one, seconds, tmp))
    rows = []
    for (name, _), got in runs.items():
        row = merge_rounds(got)
        row["target"] = name
        rows.append(row)
    return rows


def interleaved_text(url: str, model_name: str, bento_tag: str | None, opts, tmp: Path) -> tuple[dict, dict]:
    """Text at 32 clients in opts.text_rounds rounds of text_duration/text_rounds seconds, each
    between two bare batch-32 samples in this process (the server idle meanwhile): the ratio
    the goal asks for, with both sides measured seconds, not a part, apart. Each round is
    judged against the mean of the bare samples just before and just after it (figures()).
    Returns (load row, bare: its mean and the text_rounds + 1 samples in order)."""
    model, _ = served_model(model_name, bento_tag)
    model.sample(2, 0, max_new_tokens=8)                                            # warm up
    runs, bare_runs = [], []

    def bare_sample(round_: int, label: str) -> None:
        seconds = _time(lambda: model.sample(32, round_, max_new_tokens=TEXT_TOKENS), 0, 1)
        bare_runs.append(round(32 * TEXT_TOKENS / seconds, 1))
        log(f"bare {model_name} batch 32 [{label}]: {bare_runs[-1]:,.0f} tokens/s")

    for round_ in range(opts.text_rounds):
        bare_sample(round_, str(round_ + 1))
        one = SimpleOpts(clients=(32,), tool=opts.tool, token=opts.token)
        runs += load_runs(f"text 200 tokens [{round_ + 1}]", url, TEXT_BODY, 1, one,
                          opts.text_duration / opts.text_rounds, tmp)
    bare_sample(opts.text_rounds, "after")
    row = merge_rounds(runs)
    row["target"] = "text 200 tokens"
    return row, {"tokens_per_s": round(statistics.mean(bare_runs), 1), "rounds": bare_runs}


MIXED_TOKENS = (50, 100, 200, 400)          # the mixed part: 8 clients on each


def mixed_text(url: str, model_name: str, bento_tag: str | None, opts) -> dict:
    """Text at 32 clients asking for different lengths: 8 clients each for 50, 100, 200 and
    400 new tokens, for text_duration seconds, the four hey processes at once. Requests in
    flight then sit at different positions of their text, as they do when clients ask for
    different lengths or do not start together; 32 identical requests from a closed loop tend
    to run in lockstep, one batch after another. tokens/s: the 2xx answers' tokens over the
    longest of the four runs' times (hey lets the requests in flight when the time is up
    finish and counts them, so the 400-token clients' tail is in both). Beside it, bare
    batch-32 sampling of 200 tokens in this process just before and just after (the server
    idle). A hey run that gave no figures fails the part (its output kept)."""
    from concurrent.futures import ThreadPoolExecutor

    model, _ = served_model(model_name, bento_tag)
    model.sample(2, 0, max_new_tokens=8)                                            # warm up

    def bare_rate(seed: int) -> float:
        seconds = _time(lambda: model.sample(32, seed, max_new_tokens=TEXT_TOKENS), 0, 1)
        return round(32 * TEXT_TOKENS / seconds, 1)

    before = bare_rate(0)
    bodies = [{**TEXT_BODY, "max_new_tokens": t} for t in MIXED_TOKENS]
    clients = 32 // len(bodies)
    with ThreadPoolExecutor(len(bodies)) as pool:
        runs = list(pool.map(lambda body: hey(url, body, clients, opts.token, seconds=opts.text_duration), bodies))
    bare = statistics.mean([before, bare_rate(1)])
    failed = [{"max_new_tokens": b["max_new_tokens"], "raw": r.get("raw"), "cut_short": r.get("cut_short")}
              for r, b in zip(runs, bodies) if r["rps"] is None]
    if failed:
        raise RuntimeError(f"mixed: hey gave no figures for {json.dumps(failed)[:2000]}")
    tokens = sum((r["ok"] or 0) * b["max_new_tokens"] for r, b in zip(runs, bodies))
    seconds = max(r["seconds"] or opts.text_duration for r in runs)
    row = {"target": "text mixed lengths", "clients": clients * len(bodies), "seconds": seconds,
           "tokens_per_s": round(tokens / seconds, 1), "bare_batch32_tokens_per_s": round(bare, 1),
           "ratio_vs_bare": round(tokens / seconds / bare, 3), "non_2xx": sum(r["non_2xx"] for r in runs),
           "errors": sum(r["errors"] for r in runs),
           "by_length": [{"max_new_tokens": b["max_new_tokens"], "clients": clients, "ok": r["ok"],
                          "p50_s": r["p50_s"], "p99_s": r["p99_s"]} for r, b in zip(runs, bodies)]}
    log(f"text mixed lengths c=32: {row['tokens_per_s']:,.0f} tokens/s ({row['ratio_vs_bare']:.3f} of bare "
        f"batch-32 sampling, {bare:,.0f})  non-2xx {row['non_2xx']}  errors {row['errors']}")
    return row


@dataclass
class SimpleOpts:
    clients: tuple
    tool: str
    token: str


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


# ---------------------------------------------------------------------------------------
# the bare batched forward

def _pngs(images_uint8) -> list[str]:
    """What deploy/service.py does per batch: NCHW uint8 -> numpy HWC -> PNG (components/
    serving/png.py) -> base64."""
    from components.serving.png import encode_pngs

    return [base64.b64encode(png).decode() for png in encode_pngs(images_uint8)]


def _time(fn, min_s: float, min_reps: int) -> float:
    """Median seconds of fn(), repeated for at least min_s and min_reps."""
    times, start = [], time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_s:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def served_model(model_name: str, bento_tag: str | None = None):
    """(model, tag): the served model (the champion, or the one `bento_tag` serves) loaded as
    the service loads it."""
    from components.models.io import load_checkpoint
    from components.registry import champion_tag, get_model

    if bento_tag:
        import bentoml

        bento = bentoml.bentos.get(bento_tag)
        tag = next((str(m.tag) for s in bento.info.services for m in s.models), None)
    else:
        tag = champion_tag(model_name)
    if tag is None:
        raise RuntimeError(f"no champion named {model_name!r}")
    model, _ = load_checkpoint(get_model(tag).path / "checkpoint")
    return model, tag


def bare(model_name: str, quick: bool, bento_tag: str | None = None) -> dict:
    """The served model sampling in batches in this process."""
    import torch

    model, tag = served_model(model_name, bento_tag)
    out = {"model": model_name, "model_tag": tag, "torch_threads": torch.get_num_threads(), "rows": []}
    if model.modality == "image":
        from components.data.images import to_uint8

        seeds = iter(range(10**9))
        for batch, what in ((32, "32 clients x n=1"), (32 * 16, "32 clients x n=16")):
            model.sample(batch, 0)
            forward = _time(lambda: model.sample(batch, next(seeds)), 0.3 if quick else 1.0, 3 if quick else 5)
            encoded = _time(lambda: _pngs(to_uint8(model.sample(batch, next(seeds))[0])),
                            0.3 if quick else 1.0, 3 if quick else 5)
            out["rows"].append({"batch": batch, "stands_for": what, "forward_s": forward,
                                "forward_items_per_s": round(batch / forward, 1), "with_png_s": encoded,
                                "with_png_items_per_s": round(batch / encoded, 1)})
            log(f"bare {model_name} batch {batch}: {batch / forward:,.0f} images/s forward, "
                f"{batch / encoded:,.0f} with uint8+PNG+base64")
        # the forward as the server runs it by default (serving.lower_convs: small convolutions
        # as matrix products), on a copy
        import copy

        from components.serving.lowering import lower_for_serving

        lowered = copy.deepcopy(model)
        out["lowered_convs"] = lower_for_serving(lowered)
        for row in out["rows"]:
            batch = row["batch"]
            row["lowered_forward_s"] = _time(lambda: lowered.sample(batch, next(seeds)), 0.3 if quick else 1.0,
                                             3 if quick else 5)
            row["lowered_forward_items_per_s"] = round(batch / row["lowered_forward_s"], 1)
            log(f"bare {model_name} batch {batch}, {out['lowered_convs']} convolution(s) as matrix products: "
                f"{row['lowered_forward_items_per_s']:,.0f} images/s forward")
    else:
        model.sample(2, 0, max_new_tokens=8)                                            # warm up
        for batch, reps in ((1, 3), (32, 1 if quick else 3)):
            seconds = _time(lambda: model.sample(batch, 1, max_new_tokens=TEXT_TOKENS), 0, reps)
            out["rows"].append({"batch": batch, "new_tokens": TEXT_TOKENS, "seconds": seconds,
                                "tokens_per_s": round(batch * TEXT_TOKENS / seconds, 1),
                                "requests_per_s": round(batch / seconds, 2)})
            log(f"bare {model_name} batch {batch} x {TEXT_TOKENS} tokens: {seconds:.2f} s, "
                f"{batch * TEXT_TOKENS / seconds:,.0f} tokens/s")
    return out


# ---------------------------------------------------------------------------------------
# the volume run: 10,000 requests, 0 errors, one serving-log row per generated item

def serving_rows(monitor_dir: Path) -> tuple[list[dict], int]:
    """Every row bentoml.monitor wrote under monitor_dir, and the count of unreadable lines."""
    rows, bad = [], 0
    for path in sorted((monitor_dir / "genloop_generations" / "data").glob("data.*.log*")):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    bad += 1
    return rows, bad


def settled_rows(monitor_dir: Path, expect: int | None = None, wait_s: float = 15) -> tuple[list[dict], int]:
    """The rows once their count stops moving (bentoml.monitor writes as requests finish)."""
    deadline, last, stable_since = time.monotonic() + wait_s, None, time.monotonic()
    while True:
        rows, bad = serving_rows(monitor_dir)
        if len(rows) != last:
            last, stable_since = len(rows), time.monotonic()
        if (expect is not None and len(rows) >= expect and time.monotonic() - stable_since >= 1) \
                or time.monotonic() - stable_since >= 3 or time.monotonic() > deadline:
            return rows, bad
        time.sleep(0.5)


def volume(server: Server, opts) -> dict:
    body, items = IMAGE_BODIES[1], 1
    before, bad_before = settled_rows(server.monitor_dir)
    seen = {r.get("request_id") for r in before}
    clients = min(opts.volume_clients, opts.requests)
    log(f"volume: {opts.requests} requests at {clients} clients (cap {opts.volume_cap:.0f} s)")
    start = time.monotonic()
    # hey gives each of its c workers n // c requests: the remainder goes in a second run
    main_n, rest = opts.requests - opts.requests % clients, opts.requests % clients
    r = hey(server.url, body, clients, opts.token, requests=main_n, cap_s=opts.volume_cap)
    if rest and not r["cut_short"]:
        tail = hey(server.url, body, rest, opts.token, requests=rest,
                   cap_s=max(5.0, opts.volume_cap - (time.monotonic() - start)))
        for key in ("ok", "non_2xx", "errors", "answered"):
            r[key] += tail[key]
        for key in ("statuses", "error_kinds"):
            for k, v in tail[key].items():
                r[key][k] = r[key].get(k, 0) + v
        r["seconds"] = (r["seconds"] or 0) + (tail["seconds"] or 0)
        r["ok_rps"] = round(r["ok"] / r["seconds"], 2) if r["seconds"] else None
        r["cut_short"] = tail["cut_short"]
        r["runs"] = [f"hey -n {main_n} -c {clients}", f"hey -n {rest} -c {rest}"]
    else:
        r["runs"] = [f"hey -n {main_n} -c {clients}"]
    expected = r["ok"] * items
    after, bad_after = settled_rows(server.monitor_dir, len(before) + expected)
    new = [row for row in after if row.get("request_id") not in seen]
    per_request: dict = {}
    for row in new:
        per_request[row.get("request_id")] = per_request.get(row.get("request_id"), 0) + 1
    sent = r["ok"] + r["non_2xx"] + r["errors"]
    result = {**r, "requested": opts.requests, "sent": sent, "expected_rows": expected,
              "rows_added": len(after) - len(before), "rows_new_request_ids": len(new),
              "distinct_request_ids": len(per_request),
              "requests_not_on_exactly_one_row": sum(1 for c in per_request.values() if c != items),
              "unreadable_lines": bad_after - bad_before,
              "rows_missing_model_tag": sum(1 for row in new if not row.get("model_tag"))}
    result["errors_ok"] = sent == opts.requests and r["non_2xx"] == 0 and r["errors"] == 0 and not r["cut_short"]
    result["rows_ok"] = (result["rows_added"] == expected == len(new) and result["distinct_request_ids"] == r["ok"]
                         and result["requests_not_on_exactly_one_row"] == 0 and result["unreadable_lines"] == 0)
    log(f"volume: {sent} sent, {r['ok']} ok, non-2xx {r['non_2xx']}, errors {r['errors']}"
        f"{' (cut at the time cap)' if r['cut_short'] else ''}; rows added {result['rows_added']} "
        f"for {expected} items ({result['distinct_request_ids']} request ids)")
    return result


# ---------------------------------------------------------------------------------------
# the fuzzer

class Raw(str):
    """A JSON token written as is (NaN, Infinity, 1e999, 1 followed by 100,000 zeros)."""


def dumps(obj) -> bytes:
    raws: list[str] = []

    def swap(value):
        if isinstance(value, Raw):
            raws.append(str(value))
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(obj))
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), raw)
    return text.encode()


NAN, INF, NINF, HUGE_FLOAT = Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999")
# Values that are bad for a field under any reading of the contract (pydantic's lax mode
# included: it takes "2", 2.0 and true for an int, "0.5" for a float; those are left out,
# and `false` only where 0 is out of range). seed has no range in the contract, but no
# generator takes one beyond 64 bits. null is bad where the field is not nullable (seed
# and label are: null means "draw one" / "any class").
BAD_VALUES = {
    "n": [0, -1, 65, 1000, 10**30, -10**30, 1.5, 0.5, "abc", "", "1 0", [1], {"n": 1}, None, False, NAN, INF,
          NINF, HUGE_FLOAT, Raw("1e2")],
    "seed": [10**30, -10**30, 2**64 + 1, 10**100, 1.5, "abc", "", [1], {"s": 1}, NAN, INF, HUGE_FLOAT],
    "max_new_tokens": [0, -5, 2001, 10**30, 2.5, "many", [], {}, None, False, NAN, INF, HUGE_FLOAT],
    "temperature": [0, 0.0, -1, 10.5, 1e6, NAN, INF, NINF, HUGE_FLOAT, "hot", [1.0], {}, None, False],
    "top_k": [-1, 257, 10**30, 1.5, "x", [5], {}, None, NAN],
    "top_p": [0, 0.0, -0.5, 1.5, NAN, INF, "x", [0.5], {}, None, False],
    "label": [[], ["1"], {"label": "1"}, True, False, 1.5],     # wrong types (an int could be coerced: left out)
    "prompt": [["def "], {"p": 1}, True, 1.5, None],
}
UNKNOWN_LABELS = ["x", "10", "", " 1", "1 ", "-1", "01", "٣", "seven", "\u0000", "\ud800", "a" * 5000]


@dataclass
class Case:
    category: str
    why: str                          # what makes it bad
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    method: str = "POST"
    path: str = "/generate"
    # "current": bad under the schema /generate has always had (JSON syntax, types, ranges,
    # labels); "new": bad under the rules being added (unknown fields, size limits, auth, {} spelt out)
    contract: str = "current"

    def describe(self) -> str:
        body = self.body[:160].decode("utf-8", "backslashreplace")
        more = f"... ({len(self.body):,} bytes)" if len(self.body) > 160 else ""
        heads = "".join(f" -H '{k}: {v[:40]}'" for k, v in self.headers.items() if k.lower() != "authorization")
        return f"{self.method} {self.path}{heads} {body}{more}"


def fuzz_cases(modality: str, count: int, seed: int, token: str) -> list[Case]:
    """`count` bad requests for a server of `modality`, drawn round-robin from the kinds
    below with a seeded RNG. Kinds that only the contract being built makes bad (unknown
    fields, size limits, auth) say so (contract="new"); the image service ignores the
    text-only fields' values (prompt, and label for text models), so a long or odd prompt
    is bad for text models only and an unknown label for image models only."""
    rng = random.Random(seed)
    base = {"n": 1} if modality == "image" else {"n": 1, "max_new_tokens": 8}     # cheap if wrongly accepted
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def field_value():
        name = rng.choice(sorted(BAD_VALUES))
        value = rng.choice(BAD_VALUES[name])
        return Case("bad field value", f"{name}={value!r:.40}", dumps({**base, name: value}), auth)

    def invalid_json():
        noise = b'{"n": 1, \x00' + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        body = rng.choice([b'{n: 1}', b'{"n": 1,}', b"{'n': 1}", b'{"n" 1}', b'{"n": 01}', b'{"n": 1}}',
                           b'{"n": +1}', b'{"n": 1 "seed": 2}', b'{"n": .5}', b'{"n": 1}x', b'{"n": tru}',
                           b'{"n": "1}', b'{"n": 0x10}', b'{,}', b'{"n": 1, "seed": }', noise])
        return Case("invalid JSON", "not JSON (syntax)", body, auth)

    def truncated():
        whole = dumps({**base, "seed": rng.randrange(10**6), "temperature": 0.9, "label": None})
        return Case("truncated JSON", "a valid body cut short", whole[:rng.randrange(1, len(whole))], auth)

    def empty():
        return Case("empty body", "no body (the request with every default is {})", b"", auth, contract="new")

    def not_object():
        body = rng.choice([b"[]", b'[{"n": 1}]', b"1", b'"n"', b"null", b"true", b'"{}"', b"[1, 2]", b"3.5"])
        return Case("non-object JSON", "JSON but not an object", body, auth)

    def wrong_content_type():
        ctype, body = rng.choice([("text/plain", b"hello"), ("application/xml", b"<n>1</n>"),
                                  ("image/png", base64.b64decode(IMAGE_PNG)),
                                  ("application/octet-stream", bytes(range(256))),
                                  ("text/csv", b"n,seed\n1,2\n")])
        return Case("wrong content type", f"{ctype} body that is not JSON", body,
                    {**auth, "Content-Type": ctype})

    def bad_utf8():
        body = rng.choice([b'{"prompt": "\xff\xfe"}', b'{"label": "\xc3\x28"}', b'{"prompt": "\xc0\xaf"}',
                           b'{"n": 1, "prompt": "\xed\xa0\x80"}', b'\xff{"n": 1}', b'{"\xfen": 1}'])
        return Case("bad UTF-8", "invalid UTF-8 bytes in the JSON text", body, auth)

    def deep():
        depth = rng.choice([1000, 5000, 20000])
        inner = b"[" * depth + b"]" * depth
        body = rng.choice([b'{"n": ' + inner + b"}", inner, b'{"n": 1, "prompt": ' + b'{"a": ' * depth + b"1"
                           + b"}" * depth + b"}"])
        return Case("deep nesting", f"JSON nested {depth} deep", body, auth)

    def long_number():
        digits = rng.choice([5000, 100_000, 1_000_000])
        fld = rng.choice(["n", "seed", "max_new_tokens", "top_k"])
        return Case("huge number literal", f"{fld}: a {digits:,}-digit integer",
                    dumps({**base, fld: Raw("1" + "0" * (digits - 1))}), auth)

    def unknown_field():
        extra = rng.choice([{"foo": 1}, {"N": 1}, {"num": 2}, {"__proto__": {}}, {"images": []}, {"size": 64},
                            {"n_images": 4}, {"prompts": ["a"]}])
        return Case("unknown field", f"unknown field {next(iter(extra))!r}", dumps({**base, **extra}), auth,
                    contract="new")

    def oversized_body():
        size = rng.randrange(2 * 2**20, 4 * 2**20)
        return Case("oversized body", f"{size / 2**20:.1f} MiB body", dumps({**base, "prompt": "a" * size}),
                    auth, contract="new")

    def wrong_method():
        return Case("wrong method", "not POST", b"", {"Authorization": auth["Authorization"]},
                    method=rng.choice(["GET", "PUT", "DELETE", "PATCH"]))

    def no_auth():
        headers = rng.choice([{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Bearer {token}x"},
                              {"Authorization": "Bearer"}, {"Authorization": f"Basic {token}"},
                              {"Authorization": token}])
        return Case("auth", f"Authorization: {headers.get('Authorization', '(none)')[:30]}", dumps(base),
                    {**headers, "Content-Type": "application/json"}, contract="new")

    kinds = [field_value, field_value, field_value, invalid_json, truncated, empty, not_object,
             wrong_content_type, bad_utf8, deep, long_number, unknown_field, oversized_body, wrong_method, no_auth]
    if modality == "image":
        def unknown_label():
            label = rng.choice(UNKNOWN_LABELS)
            return Case("unknown label", f"label {label[:20]!r} is not a class", dumps({**base, "label": label}), auth)
        kinds.append(unknown_label)
    else:
        def long_prompt():
            size = rng.choice([100_000, 500_000, 1_000_000])
            return Case("oversized prompt", f"{size:,}-character prompt (body under 2 MiB)",
                        dumps({**base, "prompt": "x" * size}), auth, contract="new")

        def surrogate():
            return Case("unpaired surrogate", "prompt with a lone UTF-16 surrogate escape",
                        b'{"n": 1, "max_new_tokens": 8, "prompt": "def \\ud800"}', auth)
        kinds += [long_prompt, surrogate]
    return [kinds[i % len(kinds)]() for i in range(count)]


IMAGE_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAU0lEQVR4nAFIALf/AAEHnvLxiQ0CAv8Uw6H5UPcCAAQCBDHyrAQP"
             "Av3/C00ECyL2AAIRxv30al8BAAMKv/pUAwEAAAIEs+oBAAACAv8ADZ0AAAD/nXIXSK0ZlsgAAAAASUVORK5CYII=")


async def _fuzz(url: str, cases: list[Case], concurrency: int) -> list[tuple[Case, object, str]]:
    import httpx

    results: list = [None] * len(cases)
    queue: asyncio.Queue = asyncio.Queue()
    for item in enumerate(cases):
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as client:
        async def worker():
            while not queue.empty():
                i, case = queue.get_nowait()
                try:
                    reply = await client.request(case.method, url + case.path, content=case.body or None,
                                                 headers=case.headers)
                    results[i] = (case, reply.status_code, reply.text[:300])
                except httpx.HTTPError as exc:
                    results[i] = (case, "connection error", f"{type(exc).__name__}: {exc}"[:300])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def fuzz(server: Server, modality: str, opts) -> dict:
    import httpx

    cases = fuzz_cases(modality, opts.fuzz, opts.fuzz_seed, opts.token)
    log(f"fuzz {server.name}: {len(cases)} bad requests")
    start = time.perf_counter()
    results = asyncio.run(asyncio.wait_for(_fuzz(server.url, cases, opts.fuzz_concurrency), 600))
    seconds = time.perf_counter() - start
    by_status: dict = {}
    by_category: dict = {}
    failures = []
    for case, status, text in results:
        key = str(status)
        by_status[key] = by_status.get(key, 0) + 1
        cat = by_category.setdefault(case.category, {"contract": case.contract, "statuses": {}})
        cat["statuses"][key] = cat["statuses"].get(key, 0) + 1
        if not (isinstance(status, int) and 400 <= status < 500):
            failures.append({"status": status, "category": case.category, "why": case.why,
                             "request": case.describe(), "reply": text})
    # shown first: server errors and dropped connections, then up to 3 of each kind, then the rest
    failures.sort(key=lambda f: not (f["status"] == "connection error" or (isinstance(f["status"], int)
                                                                              and f["status"] >= 500)))
    shown: list = []
    for kind in dict.fromkeys(f["category"] for f in failures):
        shown += [f for f in failures if f["category"] == kind][:3]
    shown += [f for f in failures if f not in shown]
    shown.sort(key=lambda f: not (f["status"] == "connection error" or (isinstance(f["status"], int)
                                                                          and f["status"] >= 500)))
    groups: dict = {}                      # the same answer to the same kind of request, once
    for f in shown:
        key = (str(f["status"]), f["category"], f["why"])
        if key in groups:
            groups[key]["count"] += 1
        else:
            groups[key] = {**f, "count": 1}
    four = sum(v for k, v in by_status.items() if k.isdigit() and 400 <= int(k) < 500)
    alive = {"process": server.alive()}
    try:
        alive["readyz"] = httpx.get(f"{server.url}/readyz", timeout=10).status_code
        good = {"n": 2} if modality == "image" else {"n": 1, "max_new_tokens": 16}
        alive["good_generate"] = httpx.post(f"{server.url}/generate", json=good, timeout=REQUEST_TIMEOUT,
                                            headers={"Authorization": f"Bearer {opts.token}"}).status_code
    except httpx.HTTPError as exc:
        alive["error"] = repr(exc)
    server_ok = alive.get("process") and alive.get("readyz") == 200 and alive.get("good_generate") == 200
    fivexx = sum(v for k, v in by_status.items() if k.isdigit() and int(k) >= 500)
    out = {"server": server.name, "modality": modality, "requests": len(results), "seconds": round(seconds, 1),
           "all_4xx": four == len(results), "4xx": four, "5xx": fivexx,
           "2xx": sum(v for k, v in by_status.items() if k.isdigit() and 200 <= int(k) < 300),
           "connection_errors": by_status.get("connection error", 0), "by_status": by_status,
           "by_category": by_category, "alive_after": alive, "server_alive": bool(server_ok),
           "not_4xx": shown[:opts.fuzz_examples],
           "not_4xx_groups": list(groups.values()), "not_4xx_total": len(failures)}
    log(f"fuzz {server.name}: {four}/{len(results)} 4xx, {fivexx} 5xx, {out['2xx']} 2xx, "
        f"{out['connection_errors']} connection errors; alive after: {alive}")
    return out


# ---------------------------------------------------------------------------------------
# time to first streamed token

async def _stream_once(client, url: str, body: dict) -> dict:
    start = time.perf_counter()
    first = None
    events = 0
    async with client.stream("POST", f"{url}/generate_stream", json=body) as reply:
        if reply.status_code != 200:
            await reply.aread()
            return {"status": reply.status_code, "reply": reply.text[:300]}
        async for line in reply.aiter_lines():
            if not line.startswith("data:"):
                continue
            events += 1
            try:
                event = json.loads(line[5:].strip())
            except json.JSONDecodeError:
                continue
            if first is None and any(event.get("texts") or []):
                first = time.perf_counter() - start
            if event.get("done"):
                break
    return {"status": 200, "ttft_s": first, "total_s": time.perf_counter() - start, "events": events}


async def _ttft(url: str, body: dict, clients: int, seconds: float, token: str) -> list[dict]:
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    results: list[dict] = []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT), limits=limits, headers=headers) as client:
        async def worker():
            while True:                                   # each client streams at least once
                try:
                    results.append(await _stream_once(client, url, body))
                except httpx.HTTPError as exc:
                    results.append({"status": "connection error", "reply": repr(exc)[:300]})
                if time.perf_counter() >= deadline:
                    return

        await asyncio.gather(*(worker() for _ in range(clients)))
    return results


def ttft(server: Server, opts) -> dict:
    import httpx

    try:
        with httpx.Client(timeout=REQUEST_TIMEOUT, headers={"Authorization": f"Bearer {opts.token}"}) as client:
            with client.stream("POST", f"{server.url}/generate_stream", json={**TEXT_BODY, "max_new_tokens": 4}) as r:
                r.read()
                probe = (r.status_code, r.headers.get("content-type", ""))
    except httpx.HTTPError as exc:
        return {"available": False, "reason": f"probe failed: {exc!r}"}
    if probe[0] in (404, 405):
        return {"available": False, "reason": f"POST /generate_stream answered {probe[0]}: no streaming route yet"}
    if probe[0] != 200 or "text/event-stream" not in probe[1]:
        return {"available": False, "reason": f"POST /generate_stream answered {probe[0]} {probe[1]!r}"}
    clients = opts.ttft_clients
    log(f"ttft: {clients} streaming clients for {opts.ttft_seconds:g} s")
    results = asyncio.run(asyncio.wait_for(_ttft(server.url, TEXT_BODY, clients, opts.ttft_seconds, opts.token),
                                           opts.ttft_seconds + 2 * REQUEST_TIMEOUT))
    firsts = sorted(r["ttft_s"] for r in results if r.get("status") == 200 and r.get("ttft_s") is not None)
    failed = [r for r in results if r.get("status") != 200]
    out = {"available": True, "clients": clients, "streams": len(results), "failed": len(failed),
           "failures": failed[:5], "no_token_streams": sum(1 for r in results if r.get("status") == 200
                                                            and r.get("ttft_s") is None),
           "ttft_p50_s": percentile(firsts, 50), "ttft_p99_s": percentile(firsts, 99),
           "stream_p50_s": percentile(sorted(r["total_s"] for r in results if r.get("total_s")), 50)}
    log(f"ttft: p50 {ms(out['ttft_p50_s'])} ms, p99 {ms(out['ttft_p99_s'])} ms over {len(firsts)} streams")
    return out


def swap_home(model_tag: str, dest: Path) -> Path:
    """A model store holding only a copy of `model_tag`, its champion (a temporary
    BENTOML_HOME: promoting there leaves the project's store and aliases as they are)."""
    from components.registry import get_model

    name, version = model_tag.split(":")
    stored = get_model(model_tag)
    models = dest / "models" / name
    shutil.copytree(stored.path, models / version)
    (models / "latest").write_text(version)
    (dest / "genloop-champions.json").write_text(json.dumps(
        {name: {"champion": model_tag, "history": [{"tag": model_tag, "since": "copied"}]}}))
    return dest


PROMOTE = """import json, sys, time
from components.registry import get_model, save_model, set_champion
old = get_model(sys.argv[1])
new = save_model(old.tag.split(":")[0], {"checkpoint": old.path / "checkpoint"}, old.labels, old.metadata)
set_champion(old.tag.split(":")[0], new)
print("PROMOTED" + json.dumps({"tag": new, "at": time.time()}), flush=True)
"""


def swap(opts, tmp: Path, base_env: dict, clients: int = 32) -> dict:
    """Load the following image server while a new champion is promoted (module docstring)."""
    import threading

    import httpx

    if opts.source != "tree" or opts.image_bento:
        return {"available": False, "reason": "the swap run serves the working tree (--source tree, no --image-bento)"}
    server, info = genloop_server(opts.image_model, "tree", tmp, base_env, opts.token)
    home = swap_home(info["model_tag"], tmp / "swap-home")
    server.name, server.log_path = "swap", tmp / "server-swap.log"
    server.env = {**server.env, "BENTOML_HOME": str(home), "GENLOOP_FOLLOW": "1",
                  "GENLOOP_MONITOR_DIR": str(tmp / "monitor-swap")}
    seconds = max(3 * opts.duration / 2, 6.0)
    probes: list[tuple[float, object, str | None]] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT, headers={"Authorization": f"Bearer {opts.token}"}) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{server.url}/generate", json=IMAGE_BODIES[1])
                    probes.append((time.time(), r.status_code,
                                   r.json().get("model_tag") if r.status_code == 200 else r.text[:200]))
                except httpx.HTTPError as exc:
                    probes.append((time.time(), repr(exc), None))
                time.sleep(0.02)

    server.start()
    try:
        warm_up(server.url, IMAGE_BODIES[1], opts.token, 20)
        load: dict = {}
        loader = threading.Thread(target=lambda: load.update(hey(server.url, IMAGE_BODIES[1], clients, opts.token,
                                                                 seconds=seconds)))
        prober = threading.Thread(target=probe)
        loader.start(), prober.start()
        time.sleep(seconds / 4)
        log(f"swap: promoting a new {opts.image_model} in the temporary store under {clients} clients")
        out = subprocess.run([sys.executable, "-c", PROMOTE, info["model_tag"]], cwd=ROOT, capture_output=True,
                             text=True, timeout=120, env={**base_env, "BENTOML_HOME": str(home)})
        line = next((x for x in out.stdout.splitlines() if x.startswith("PROMOTED")), None)
        if line is None:
            raise RuntimeError(f"promotion failed: {out.stderr[-2000:]}")
        promoted = json.loads(line[len("PROMOTED"):])
        loader.join(seconds + REQUEST_TIMEOUT + 60)
        stop.set()
        prober.join(REQUEST_TIMEOUT + 10)
        swapped_log = "now serving champion " + promoted["tag"] in server.tail(100_000)
    finally:
        stop.set()
        server.stop()
    after = [p for p in probes if p[0] >= promoted["at"]]
    first_new = next((p[0] for p in after if p[2] == promoted["tag"]), None)
    last_old = max((p[0] for p in after if p[2] == info["model_tag"]), default=None)
    probe_failures = [p for p in probes if p[1] != 200]
    result = {"available": True, "clients": clients, "seconds": seconds, "load": load,
              "old_tag": info["model_tag"], "new_tag": promoted["tag"], "server_logged_swap": swapped_log,
              "probes": len(probes), "probe_failures": [list(map(str, p)) for p in probe_failures[:5]],
              "probe_failed": len(probe_failures),
              "switch_s": None if first_new is None else round(first_new - promoted["at"], 3),
              "old_after_new": last_old is not None and first_new is not None and last_old > first_new,
              "failed": (load.get("non_2xx") or 0) + (load.get("errors") or 0) + len(probe_failures)}
    log(f"swap: {load.get('answered')} requests, {result['failed']} failed; new model_tag after "
        f"{result['switch_s']} s")
    return result


def percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, math.ceil(pct / 100 * len(sorted_values)) - 1)      # nearest rank
    return sorted_values[k]


# ---------------------------------------------------------------------------------------
# figures and report

def _row(rows: list[dict], target: str, clients: int) -> dict | None:
    return next((r for r in rows if r["target"] == target and r["clients"] == clients), None)


def figures(result: dict) -> dict:
    """The ratios and verdicts issue 10 asks for."""
    rows, bare_rows = result.get("load", []), result.get("bare", {})
    out: dict = {"images_vs_trivial": [], "images_vs_bare": [], "text_vs_bare": []}
    for clients in sorted({r.get("clients") for r in rows if r.get("clients")}):
        triv = _row(rows, "trivial", clients)
        for n in IMAGE_BODIES:
            img = _row(rows, f"images n={n}", clients)
            if triv and img and triv.get("ok_rps") and img.get("ok_rps") is not None:
                ratio = img["ok_rps"] / triv["ok_rps"]
                entry = {"clients": clients, "n": n, "ratio": round(ratio, 3), "goal": GOAL, "met": ratio >= GOAL}
                # each interleaved round against the same round's trivial run (seconds apart):
                # this machine's speed changes by up to 2x from one second to the next, so
                # one slow burst moves the pooled ratio; the median of the paired ones is
                # judged when there are 3 rounds or more
                pairs = [a["ok_rps"] / b["ok_rps"] for a, b in zip(img.get("rounds") or [], triv.get("rounds") or [])
                         if a.get("ok_rps") is not None and b.get("ok_rps")]
                if len(pairs) >= 3:
                    median = statistics.median(pairs)
                    entry.update(round_ratios=[round(x, 3) for x in pairs], paired_median=round(median, 3),
                                 met=median >= GOAL)
                out["images_vs_trivial"].append(entry)
    image_bare = {r["batch"]: r for r in (bare_rows.get("images") or {}).get("rows", [])}
    for n, batch in ((1, 32), (16, 512)):
        img = _row(rows, f"images n={n}", 32)
        if img and batch in image_bare and img.get("items_per_s") is not None:
            out["images_vs_bare"].append({"clients": 32, "n": n, "bare_batch": batch,
                                          "ratio_vs_forward_png": round(img["items_per_s"]
                                                                        / image_bare[batch]["with_png_items_per_s"], 3),
                                          "ratio_vs_forward": round(img["items_per_s"]
                                                                    / image_bare[batch]["forward_items_per_s"], 3)})
    text_bare = {r["batch"]: r for r in (bare_rows.get("text") or {}).get("rows", [])}
    beside = (bare_rows.get("text") or {}).get("interleaved_batch32")
    for clients in sorted({r.get("clients") for r in rows if r.get("clients")}):
        txt = _row(rows, "text 200 tokens", clients)
        if txt and (32 in text_bare or (clients == 32 and beside)) and txt.get("items_per_s") is not None:
            tokens = txt["items_per_s"] * TEXT_TOKENS
            entry = {"clients": clients, "tokens_per_s": round(tokens, 1)}
            if 32 in text_bare:           # the up-front bare part (not run with --only text)
                entry.update(bare_batch32_tokens_per_s=text_bare[32]["tokens_per_s"],
                             ratio=round(tokens / text_bare[32]["tokens_per_s"], 3))
            if clients in text_bare:
                entry["ratio_vs_bare_same_batch"] = round(tokens / text_bare[clients]["tokens_per_s"], 3)
            if clients == 32 and beside:
                entry.update(bare_interleaved_tokens_per_s=beside["tokens_per_s"],
                             ratio_vs_bare_interleaved=round(tokens / beside["tokens_per_s"], 3))
            if clients == 32:       # judged against the bare sampling measured between its rounds, if any
                entry.update(goal=GOAL, met=entry.get("ratio_vs_bare_interleaved", entry.get("ratio", 0)) >= GOAL)
                # each round against the bare samples just before and after it (as the images
                # are against their round's trivial run): the bare side alone has moved 1.5x
                # between two runs minutes apart while the server's figure stayed put
                bare_seq, rounds = (beside or {}).get("rounds") or [], txt.get("rounds") or []
                if len(bare_seq) == len(rounds) + 1:
                    pairs = [r["ok_rps"] * TEXT_TOKENS / ((bare_seq[i] + bare_seq[i + 1]) / 2)
                             for i, r in enumerate(rounds) if r.get("ok_rps") is not None]
                    if len(pairs) >= 3:
                        median = statistics.median(pairs)
                        entry.update(round_ratios=[round(x, 3) for x in pairs], paired_median=round(median, 3),
                                     met=median >= GOAL)
            out["text_vs_bare"].append(entry)
    return out


def markdown(result: dict) -> str:
    m, lines = result["machine"], []
    lines.append(f"## Serving load ({time.strftime('%Y-%m-%d %H:%M', time.localtime(result['started']))}, "
                 f"{result['seconds']:.0f} s)\n")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, no GPU used; load tool "
                 f"{result['options']['tool']} {result['versions'].get(result['options']['tool']) or ''} on the same "
                 f"cores; bentoml {result['versions'].get('bentoml')}, torch {result['versions'].get('torch')}, "
                 f"git {result['versions'].get('git')}.")
    for info in result.get("servers", {}).values():
        lines.append(f"- {info['model']}: {info['model_tag']} served from "
                     f"{'the working tree (staged as build_bento stages it)' if info['source'] == 'tree' else 'its bento ' + info['served']}"
                     f"; service config {json.dumps(info['service_config'])}, /generate "
                     f"{'async' if info['generate_async'] else 'sync'}; routes {', '.join(info['routes']) or '?'}")
    if "trivial_server" in result:
        t = result["trivial_server"]
        lines.append(f"- trivial: benchmarks/trivial_service.py, config {json.dumps(t['config'])}, "
                     f"{'async' if t['api_async'] else 'sync'} API")
    busy = [b for b in result.get("busy_before", []) if b["busy"] is not None and b["busy"] > BUSY]
    if busy:
        lines.append("\n**Not a clean run**: other processes kept the machine busy ("
                     + ", ".join(f"{b['busy']:.0%} before {b['before']}" for b in busy) + ").")
    lines.append("")
    if result.get("load"):
        lines.append("| target | clients | req/s | items/s | p50 ms | p99 ms | non-2xx | errors | bytes/resp |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in result["load"]:
            lines.append(f"| {r['target']} | {r['clients']} | {fmt(r.get('ok_rps'))} | {fmt(r.get('items_per_s'))} | "
                         f"{ms(r.get('p50_s'))} | {ms(r.get('p99_s'))}{'*' if r.get('p99_is_slowest') else ''} | "
                         f"{r.get('non_2xx')} | {r.get('errors')} | "
                         f"{fmt(r.get('bytes_per_response'), 0)} |")
        lines.append("\nreq/s counts 2xx answers only; items/s = req/s x n (images) or x 1 continuation (text, "
                     f"{TEXT_TOKENS} tokens each). *: under 100 answers, p99 is the slowest.\n")
    bare_part = result.get("bare") or {}
    if bare_part:
        lines.append("| bare forward (in process, no HTTP) | batch | items/s forward | items/s + uint8/PNG/base64 "
                     "| tokens/s |")
        lines.append("|---|---:|---:|---:|---:|")
        for kind, part in bare_part.items():
            for r in part.get("rows", []):
                if kind == "images":
                    lines.append(f"| {part['model']} ({r['stands_for']}) | {r['batch']} | "
                                 f"{fmt(r['forward_items_per_s'])} | {fmt(r['with_png_items_per_s'])} | |")
                    if r.get("lowered_forward_items_per_s"):
                        lines.append(f"| {part['model']} ({r['stands_for']}), {part.get('lowered_convs')} "
                                     f"convolution(s) as matrix products (as served) | {r['batch']} | "
                                     f"{fmt(r['lowered_forward_items_per_s'])} | | |")
                else:
                    lines.append(f"| {part['model']} {TEXT_TOKENS} tokens | {r['batch']} | {fmt(r['requests_per_s'])} "
                                 f"continuations/s | | {fmt(r['tokens_per_s'])} |")
        lines.append("")
    f = result.get("figures") or {}
    if any(f.values()):
        lines.append("Figures:")
        for e in f.get("images_vs_trivial", []):
            paired = (f"; the {len(e['round_ratios'])} rounds each against its round's trivial run: median "
                      f"{e['paired_median']:.3f}, {min(e['round_ratios']):.2f}-{max(e['round_ratios']):.2f}"
                      if "paired_median" in e else "")
            lines.append(f"- images n={e['n']} / trivial at {clients_(e['clients'])}: {e['ratio']:.3f} over all "
                         f"rounds{paired} (goal >= {GOAL}: {'met' if e['met'] else 'NOT met'})")
        for e in f.get("images_vs_bare", []):
            lines.append(f"- images n={e['n']} at 32 clients / bare batch {e['bare_batch']}: "
                         f"{e['ratio_vs_forward_png']:.3f} of forward+PNG, {e['ratio_vs_forward']:.3f} of forward alone")
        for e in f.get("text_vs_bare", []):
            goal = f" (goal >= {GOAL}: {'met' if e['met'] else 'NOT met'})" if "goal" in e else ""
            if "ratio_vs_bare_interleaved" in e:
                goal = ""
            same = (f"; {e['ratio_vs_bare_same_batch']:.3f} of bare batch-{e['clients']}"
                    if "ratio_vs_bare_same_batch" in e and e["clients"] != 32 else "")
            if "paired_median" in e:
                same += (f"; {e['ratio_vs_bare_interleaved']:.3f} of bare batch-32 sampling measured between its "
                         f"rounds ({fmt(e['bare_interleaved_tokens_per_s'])} tokens/s) over all rounds; each of the "
                         f"{len(e['round_ratios'])} rounds against the bare samples just before and after it: median "
                         f"**{e['paired_median']:.3f}**, {min(e['round_ratios']):.2f}-{max(e['round_ratios']):.2f} "
                         f"(goal >= {GOAL}: {'met' if e['met'] else 'NOT met'})")
            elif "ratio_vs_bare_interleaved" in e:
                same += (f"; **{e['ratio_vs_bare_interleaved']:.3f}** of bare batch-32 sampling measured between "
                         f"its rounds ({fmt(e['bare_interleaved_tokens_per_s'])} tokens/s; goal >= {GOAL}: "
                         f"{'met' if e['met'] else 'NOT met'})")
            upfront = (f" = {e['ratio']:.3f} of bare batch-32 sampling ({fmt(e['bare_batch32_tokens_per_s'])} "
                       f"tokens/s){goal}" if "ratio" in e else "")
            lines.append(f"- text at {clients_(e['clients'])}: {fmt(e['tokens_per_s'])} tokens/s{upfront}{same}")
        lines.append("")
    mixed = result.get("mixed")
    if mixed:
        lines.append(f"Text, mixed lengths ({', '.join(str(b['clients']) + ' clients x ' + str(b['max_new_tokens']) for b in mixed['by_length'])} "
                     f"new tokens, at once): {fmt(mixed['tokens_per_s'])} tokens/s, **{mixed['ratio_vs_bare']:.3f}** of bare "
                     f"batch-32 sampling of {TEXT_TOKENS} tokens before and after it ({fmt(mixed['bare_batch32_tokens_per_s'])}); "
                     f"non-2xx {mixed['non_2xx']}, "
                     f"errors {mixed['errors']}; p50 by length "
                     + ", ".join(f"{ms(b['p50_s'])} ms" for b in mixed["by_length"]) + ".\n")
    v = result.get("volume")
    if v:
        lines.append(f"Volume: {v['sent']:,} of {v['requested']:,} requests at {v['clients']} clients "
                     f"(images n=1; {' then '.join(v.get('runs', []))}) in {fmt(v['seconds'])} s ({fmt(v['ok_rps'])} req/s): {v['non_2xx']} non-2xx, "
                     f"{v['errors']} errors{' - CUT at the time cap' if v['cut_short'] else ''} -> "
                     f"{'0 errors: met' if v['errors_ok'] else 'NOT met'}. Serving-log rows added "
                     f"{v['rows_added']:,} for {v['expected_rows']:,} generated items, {v['distinct_request_ids']:,} "
                     f"request ids, {v['requests_not_on_exactly_one_row']} not on exactly one row, "
                     f"{v['unreadable_lines']} unreadable lines -> {'exactly one row per item: met' if v['rows_ok'] else 'NOT met'}.\n")
    for fz in result.get("fuzz", []):
        lines.append(f"Fuzz {fz['server']} ({fz['modality']}): {fz['requests']} bad requests in {fz['seconds']} s: "
                     f"{fz['4xx']} 4xx, {fz['5xx']} 5xx, {fz['2xx']} 2xx (accepted), {fz['connection_errors']} "
                     f"connection errors -> {'all 4xx: met' if fz['all_4xx'] else 'NOT all 4xx'}; server alive after: "
                     f"{'yes' if fz['server_alive'] else 'NO'} ({json.dumps(fz['alive_after'])}).")
        lines.append("")
        lines.append("| kind | bad under | answers |")
        lines.append("|---|---|---|")
        for cat, c in fz["by_category"].items():
            answers = ", ".join(f"{k}: {v}" for k, v in sorted(c["statuses"].items()))
            lines.append(f"| {cat} | {'the rules being added' if c['contract'] == 'new' else 'the schema'} "
                         f"| {answers} |")
        if fz["not_4xx"]:
            lines.append(f"\nFirst of the {fz['not_4xx_total']} answers that were not 4xx:")
            for e in fz.get("not_4xx_groups", fz["not_4xx"])[:12]:
                lines.append(f"- {e['status']}{' x' + str(e['count']) if e.get('count', 1) > 1 else ''} "
                             f"[{e['category']}: {e['why']}] `{e['request'][:160]}` -> `{e['reply'][:160]}`")
        lines.append("")
    t = result.get("ttft")
    if t:
        if t.get("available"):
            lines.append(f"Time to first streamed token, {t['clients']} clients (text, {TEXT_TOKENS} tokens): p50 "
                         f"{ms(t['ttft_p50_s'])} ms, p99 {ms(t['ttft_p99_s'])} ms over {t['streams']} streams "
                         f"({t['failed']} failed, {t['no_token_streams']} without a token; whole stream p50 "
                         f"{ms(t['stream_p50_s'])} ms).")
        else:
            lines.append(f"Time to first streamed token: not available ({t['reason']}).")
    sw = result.get("swap")
    if sw:
        if sw.get("available"):
            load = sw["load"]
            plain = _row(result.get("load", []), "images n=1", sw["clients"])
            against = (f" (plain n=1 run at {sw['clients']} clients: {fmt(plain['ok_rps'])} req/s)"
                       if plain and plain.get("ok_rps") else "")
            lines.append(f"Hot swap under load: {sw['clients']} clients, images n=1, {sw['seconds']:g} s with "
                         f"`--follow`; a new champion promoted a quarter of the way in (by a second Python process "
                         f"on the same cores, which also load the new model): {load.get('answered')} "
                         f"requests at {fmt(load.get('ok_rps'))} req/s{against}, p99 {ms(load.get('p99_s'))} ms, "
                         f"{load.get('non_2xx')} non-2xx, {load.get('errors')} errors; probe {sw['probes']} requests, "
                         f"{sw['probe_failed']} failed -> {'no failed request: met' if sw['failed'] == 0 else 'NOT met'}. "
                         f"model_tag {sw['old_tag']} -> {sw['new_tag']} {fmt(sw['switch_s'], 2)} s after the alias "
                         f"moved{' (an old tag came back after the new one)' if sw['old_after_new'] else ''}.")
        else:
            lines.append(f"Hot swap under load: not run ({sw['reason']}).")
    if result.get("errors"):
        lines.append("\nParts that failed: " + "; ".join(f"{k}: {v}" for k, v in result["errors"].items()))
    return "\n".join(lines)


def clients_(n: int) -> str:
    return f"{n} client" + ("s" if n != 1 else "")


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


# ---------------------------------------------------------------------------------------

def options(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--project", type=Path, default=ROOT, help="project root holding .genloop/bentoml (default: this repo)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)} (default all)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 2-4 s load runs, 300 volume requests, "
                   "100 fuzz requests per server")
    p.add_argument("--token", default="genloop-load-benchmark", help="bearer token (GENLOOP_API_TOKENS on the servers)")
    p.add_argument("--source", choices=("tree", "bento"), default="tree",
                   help="serve the working tree's deploy/ (default) or the champion's built bento")
    p.add_argument("--image-model", default="dcgan-digits", help="image model name (its champion is served)")
    p.add_argument("--text-model", default="charlm-pydocs", help="text model name (its champion is served)")
    p.add_argument("--image-bento", help="serve this bento tag for the image parts (e.g. an older build, to compare)")
    p.add_argument("--text-bento", help="serve this bento tag for the text parts")
    p.add_argument("--tool", choices=("hey", "wrk"), default="hey", help="load tool of the fixed-duration runs")
    p.add_argument("--duration", type=float, help="seconds per trivial/image target and client count, split over --rounds (default 20, quick 2)")
    p.add_argument("--rounds", type=int, help="with trivial and images both run: interleave them "
                   "(trivial, n=1, n=16 at each client count; every other round in reverse, so an even count balances the order) in this many rounds of duration/rounds seconds "
                   "(default 10, quick 3; 1: one run each, trivial first)")
    p.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="client counts of the trivial, image and text load runs "
                   "(default 1,8,32; the text goal is judged at 32)")
    p.add_argument("--text-rounds", type=int, help="text at 32 clients in this many rounds of "
                   "text-duration/text-rounds seconds, each between bare batch-32 samples (one before each round, one after the last; judged on the median of the rounds' ratios with 3+) (default 3, quick 1; 1: one run, "
                   "not interleaved). A 200-token request takes ~2 s at 32 clients: keep rounds several times "
                   "longer than that, or the requests cut off at each round's end weigh on the figure")
    p.add_argument("--text-duration", type=float, help="seconds per text load run (default 20, quick 4)")
    p.add_argument("--requests", type=int, help="volume run requests (default 10000, quick 300)")
    p.add_argument("--volume-cap", type=float, help="stop the volume run after this many seconds "
                   "(default 240, quick 60); what it did by then is reported as cut short")
    p.add_argument("--fuzz", type=int, help="bad requests per server (default 1000, quick 100)")
    p.add_argument("--fuzz-seed", type=int, default=10)
    p.add_argument("--fuzz-concurrency", type=int, default=8)
    p.add_argument("--ttft-seconds", type=float, help="closed-loop streaming time (default 15, quick 4)")
    p.add_argument("--json", type=Path, help="write the results here (default runs/benchmarks/serving_load.json "
                   "under --project)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (server logs, serving logs)")
    opts = p.parse_args(argv)
    opts.parts = [x.strip() for x in opts.only.split(",") if x.strip()]
    unknown = set(opts.parts) - set(PARTS)
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    q = opts.quick
    opts.duration = opts.duration or (2 if q else 20)
    opts.rounds = opts.rounds or (3 if q else 10)
    opts.text_rounds = opts.text_rounds or (1 if q else 3)
    opts.text_duration = opts.text_duration or (4 if q else 20)
    opts.requests = opts.requests or (300 if q else 10_000)
    opts.volume_cap = opts.volume_cap or (60 if q else 240)
    opts.fuzz = opts.fuzz or (100 if q else 1000)
    opts.ttft_seconds = opts.ttft_seconds or (4 if q else 15)
    try:
        opts.clients = tuple(int(c) for c in opts.clients.split(",") if c.strip())
    except ValueError:
        p.error(f"--clients: a comma-separated list of client counts, got {opts.clients!r}")
    if not opts.clients or min(opts.clients) < 1:
        p.error(f"--clients: client counts of 1 or more, got {opts.clients}")
    opts.volume_clients, opts.ttft_clients, opts.fuzz_examples = 32, 32, 20
    opts.project = opts.project.resolve()
    opts.json = opts.json or opts.project / "runs" / "benchmarks" / "serving_load.json"
    return opts


def main(argv=None) -> int:
    opts = options(argv)
    for binary in {"hey", opts.tool}:
        if not shutil.which(binary):
            raise SystemExit(f"`{binary}` is not installed: run `make load-tools` (Debian: apt-get install hey wrk)")
    from components.registry import configure_bentoml_home

    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    home = configure_bentoml_home(opts.project)
    base_env = {**os.environ, "BENTOML_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)            # also where a shell started it with SIGINT ignored
    tmp = Path(tempfile.mkdtemp(prefix="genloop-serving-load-"))
    started = time.time()
    result: dict = {"started": started, "machine": machine(), "versions": versions(opts.tool),
                    "options": {"quick": opts.quick, "parts": opts.parts, "tool": opts.tool, "source": opts.source,
                                "duration_s": opts.duration, "rounds": opts.rounds, "text_rounds": opts.text_rounds,
                                "text_duration_s": opts.text_duration,
                                "requests": opts.requests, "volume_cap_s": opts.volume_cap, "fuzz": opts.fuzz,
                                "fuzz_seed": opts.fuzz_seed, "ttft_seconds": opts.ttft_seconds,
                                "clients": list(opts.clients), "bodies": {"images": IMAGE_BODIES, "text": TEXT_BODY},
                                "bentoml_home": str(home), "request_timeout_s": REQUEST_TIMEOUT},
                    "notes": ["hey sends the same JSON body on every request; the bodies carry no seed, so the "
                              "server draws one per request",
                              "the load generator runs on the same cores as the server"],
                    "load": [], "bare": {}, "fuzz": [], "servers": {}, "errors": {}, "busy_before": []}
    log(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; temporary folder {tmp}")
    parts = set(opts.parts)

    def quiet_check(before: str) -> None:
        busy = cpu_busy()
        result["busy_before"].append({"before": before, "busy": busy})
        if busy is not None and busy > BUSY:
            log(f"WARNING: the machine is {busy:.0%} busy before {before} without this benchmark's servers: "
                f"other processes share the cores, so these figures are not clean")

    def part(name, fn):
        try:
            return fn()
        except KeyboardInterrupt:
            raise
        except Exception as exc:                    # one failed part must not lose the others' figures
            import traceback

            log(f"{name} failed: {exc}")
            traceback.print_exc()
            result["errors"][name] = f"{type(exc).__name__}: {str(exc)[:2000]}"

    try:
        if "bare" in parts:
            quiet_check("the bare forward")
            result["bare"]["images"] = part("bare images", lambda: bare(opts.image_model, opts.quick,
                                                                      opts.image_bento))
            result["bare"]["text"] = part("bare text", lambda: bare(opts.text_model, opts.quick, opts.text_bento))
            result["bare"] = {k: v for k, v in result["bare"].items() if v}

        trivial_server: list = []              # kept up for the interleaved image runs
        interleave = opts.rounds > 1 and {"trivial", "images"} <= parts
        if "trivial" in parts:
            def trivial():
                # the genloop service's worker/thread/traffic settings and API kind
                _, info = genloop_server(opts.image_model, opts.source, tmp, base_env, opts.token, opts.image_bento)
                config, api_async = info["service_config"], info["generate_async"]
                env = {**base_env, "TRIVIAL_SERVICE_CONFIG": json.dumps(config),
                       "TRIVIAL_ASYNC": "1" if api_async else ""}
                result["trivial_server"] = {"config": config, "api_async": api_async}
                quiet_check("the trivial server")
                server = Server("trivial", "trivial_service:Trivial", ROOT / "benchmarks", env,
                                tmp / "server-trivial.log").start()
                try:
                    warm_up(server.url, IMAGE_BODIES[1], opts.token, 20)
                    if interleave:
                        trivial_server.append(server)
                        return
                    result["load"] += load_runs("trivial", server.url, IMAGE_BODIES[1], 1, opts, opts.duration, tmp)
                except BaseException:
                    server.stop()
                    raise
                server.stop()
            part("trivial", trivial)

        @contextlib.contextmanager
        def serving(kind: str, model: str, bento, warm_body: dict, warm_requests: int):
            """A genloop server of `model`'s champion (or `bento`), checked quiet, warmed up,
            stopped on the way out."""
            server, info = genloop_server(model, opts.source, tmp, base_env, opts.token, bento)
            result["servers"][kind] = info
            quiet_check(f"the {kind} server")
            server.start()
            try:
                warm_up(server.url, warm_body, opts.token, warm_requests)
                yield server
            finally:
                server.stop()

        if parts & {"images", "volume", "fuzz"}:
            def images():
                with serving("images", opts.image_model, opts.image_bento, IMAGE_BODIES[16], 10) as server:
                    if "images" in parts and trivial_server:
                        targets = [("trivial", trivial_server[0].url, IMAGE_BODIES[1], 1)]
                        targets += [(f"images n={n}", server.url, body, n) for n, body in IMAGE_BODIES.items()]
                        result["load"] += part("images", lambda: interleaved_runs(targets, opts, tmp)) or []
                        trivial_server.pop().stop()
                    elif "images" in parts:
                        for n, body in IMAGE_BODIES.items():
                            result["load"] += part(f"images n={n}", lambda: load_runs(
                                f"images n={n}", server.url, body, n, opts, opts.duration, tmp)) or []
                    if "volume" in parts:
                        result["volume"] = part("volume", lambda: volume(server, opts))
                    if "fuzz" in parts:
                        result["fuzz"].append(part("fuzz images", lambda: fuzz(server, "image", opts)))
            try:
                part("image server", images)
            finally:                           # kept up for the interleaved runs: not past them
                while trivial_server:
                    trivial_server.pop().stop()

        if parts & {"text", "mixed", "ttft", "fuzz"}:
            def text():
                with serving("text", opts.text_model, opts.text_bento, TEXT_BODY, 2) as server:
                    if "text" in parts:
                        fewer = SimpleOpts(clients=tuple(c for c in opts.clients if c != 32) if opts.text_rounds > 1
                                           else opts.clients, tool=opts.tool, token=opts.token)
                        result["load"] += part("text", lambda: load_runs(
                            "text 200 tokens", server.url, TEXT_BODY, 1, fewer, opts.text_duration, tmp)) or []
                        if opts.text_rounds > 1 and 32 in opts.clients:
                            got = part("text 32 clients", lambda: interleaved_text(
                                server.url, opts.text_model, opts.text_bento, opts, tmp))
                            if got:
                                result["load"].append(got[0])
                                result["bare"].setdefault("text", {})["interleaved_batch32"] = got[1]
                    if "mixed" in parts:
                        result["mixed"] = part("mixed", lambda: mixed_text(server.url, opts.text_model,
                                                                            opts.text_bento, opts))
                    if "ttft" in parts:
                        result["ttft"] = part("ttft", lambda: ttft(server, opts))
                    if "fuzz" in parts:
                        result["fuzz"].append(part("fuzz text", lambda: fuzz(server, "text", opts)))
            part("text server", text)

        if "swap" in parts:
            quiet_check("the swap server")
            result["swap"] = part("swap", lambda: swap(opts, tmp, base_env))
    except KeyboardInterrupt:
        log("interrupted: stopping the servers")
        result["errors"]["interrupted"] = True
    finally:
        stop_all()
        if opts.keep or result["errors"]:
            log(f"server and serving logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    result["fuzz"] = [f for f in result["fuzz"] if f]
    result["seconds"] = round(time.time() - started, 1)
    result["figures"] = figures(result)
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(result, indent=1, default=str))
    print(markdown(result))
    log(f"results: {opts.json}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
