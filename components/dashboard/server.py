"""`genloop dashboard`: `evidently ui` over the project's workspace on 127.0.0.1, its URL and
the Prefect UI's, until Ctrl-C."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from components.errors import GenloopError


def check_port(host: str, port: int) -> None:
    """A clear error when the port is taken (before the UI starts and dies with a traceback)."""
    if not 0 < port < 65536:
        raise GenloopError(f"--port {port} is not a TCP port (1-65535).")
    with socket.socket() as s:
        # as uvicorn binds: a port left in TIME_WAIT by the last dashboard is free to it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise port_in_use(host, port, exc.strerror) from None


def port_in_use(host: str, port: int, why: str = "address already in use") -> GenloopError:
    return GenloopError(f"port {port} on {host} is in use ({why}): stop what listens there, or pick another "
                        f"port with `genloop dashboard --port N`.")


@dataclass
class Dashboard:
    """A running `evidently ui` process over the workspace."""
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 15) -> int:
        """SIGINT to the UI's process group (uvicorn shuts down), SIGKILL if it lingers."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()
        return self.process.returncode


def start(workspace: Path, host: str = "127.0.0.1", port: int = 8000, log: Path | None = None,
          timeout: float = 90) -> Dashboard:
    """Start `evidently ui` on host:port over `workspace` and wait until it answers."""
    import httpx

    check_port(host, port)
    log = log or workspace.with_name("evidently-ui.log")
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    out = log.open("w")
    process = subprocess.Popen([sys.executable, "-m", "evidently.cli", "ui", "--workspace", str(workspace),
                                "--host", host, "--port", str(port)], env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    url = f"http://{host}:{port}"
    dashboard = Dashboard(process, url, log)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if process.poll() is not None:
                text = log.read_text()
                if "address already in use" in text.lower():       # taken since check_port
                    raise port_in_use(host, port)
                raise GenloopError(f"evidently ui exited with code {process.returncode} before it answered; "
                                   f"its log ({log}) ends:\n{text[-1500:]}")
            try:
                if httpx.get(f"{url}/api/version", timeout=2).status_code == 200:
                    return dashboard
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise GenloopError(f"evidently ui did not answer on {url} within {timeout:.0f} s; see {log}.")
    except BaseException:           # a failure or Ctrl-C while waiting: no UI left behind
        dashboard.stop()
        raise


def serve(root: Path, host: str, port: int, prefect_ui: str | None = None, rebuild: bool = False,
          say=print) -> int:
    """`genloop dashboard`: rebuild, repair or create the workspace, start the UI, print the
    URLs (`prefect_ui`: the Prefect UI's, when a server is configured), and
    stop the UI on Ctrl-C, SIGTERM or SIGHUP (or report when it exits by itself). The UI
    runs in its own session, so the terminal's Ctrl-C reaches only this process, which
    stops it: it is stopped on every way out once started."""
    from components.dashboard.workspace import DashboardWorkspace

    def interrupted(signum, frame):          # SIGTERM (a service manager, `timeout`), SIGHUP: as Ctrl-C
        raise KeyboardInterrupt
    # SIGINT too: a process started in the background by a non-interactive shell (`cmd &` in a
    # script, nohup) inherits SIGINT ignored, and Python then installs no handler of its own,
    # so `kill -INT` (or a test's SIGINT) would not stop the dashboard
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    check_port(host, port)                   # before a rebuild, which can take a while
    workspace = DashboardWorkspace(root)
    message = (f"rebuilt the workspace from {workspace.rebuild()} run folders under runs/" if rebuild
               else workspace.ensure())
    if message:
        say(message)
    dashboard = start(workspace.path, host, port)
    try:
        say(f"Evidently UI: {dashboard.url}  (workspace {workspace.path}; log {dashboard.log})")
        projects = workspace.projects()
        for model, entry in sorted(projects.items()):
            say(f"  {model}: {dashboard.url}/projects/{entry['project']}  ({len(entry['sources'])} runs)")
        if not projects:
            say("  no projects yet: `genloop run` and `genloop monitor` add their runs here")
        say(f"Prefect UI:   {prefect_ui}" if prefect_ui else
            "Prefect UI:   no Prefect server configured (set PREFECT_API_URL; `prefect server start` serves one)")
        say("Ctrl-C stops the dashboard.")
        code = dashboard.process.wait()
        say(f"evidently ui exited with code {code}; see {dashboard.log}")
        return 1
    except KeyboardInterrupt:
        say("dashboard stopped")
        return 0
    finally:
        dashboard.stop()
