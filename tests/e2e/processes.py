"""What the end-to-end tests share: a free port, polling while watching the processes
they started, and a real `prefect server` in the test's own home."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _output(proc: subprocess.Popen, log: Path | None) -> str:
    if log is not None:
        return log.read_text()[-3000:]
    return proc.stdout.read().decode()[-3000:] if proc.stdout else ""


def wait_for(predicate, seconds: float, what: str, watch=()):
    """Poll `predicate` until truthy; fail at once when a watched process exits. `watch`:
    processes (output from their stdout pipe) or (process, log file) pairs."""
    pairs = [item if isinstance(item, tuple) else (item, None) for item in watch]
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError:
            pass
        for proc, log in pairs:
            if proc.poll() is not None:
                pytest.fail(f"{what}: a process exited early:\n{_output(proc, log)}")
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def commit_data_version(project: Path, message: str) -> str:
    """Commit the project's data.dvc and .dvc/ (a data version a drift event can name);
    returns the commit."""
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "add", "data.dvc", ".dvc"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", message, "--allow-empty"], cwd=project, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                          check=True).stdout.strip()


def start_prefect_server(tmp_path: Path) -> tuple[str, dict, subprocess.Popen, Path]:
    """`prefect server start` on a free 127.0.0.1 port with PREFECT_HOME and BENTOML_HOME
    under tmp_path, once /health answers. Returns (api url, env for clients, process, log)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
           "BENTOML_HOME": str(tmp_path / "bentoml"),         # its own model store
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           # the UI's API address: `prefect server start --port N` does not pass N on to it, so
           # the browser would call the default port 4200; a relative URL means this server
           "PREFECT_UI_API_URL": "/api"}
    log = tmp_path / "prefect-server.log"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
                              stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 120, "prefect server",
                 [(server, log)])
    except BaseException:
        server.kill()
        raise
    return api, env, server, log


def stop_processes(procs) -> None:
    """SIGTERM to each process's group (started with start_new_session=True), newest first;
    SIGKILL after 20 s."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
