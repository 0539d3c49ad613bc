"""`genloop demo drift`: the closed loop, replayed end to end with real processes.

A fresh project (git + DVC) gets data v1 (the embedded digits 0-4 only); a real
`prefect server` (SQLite, 127.0.0.1) records every run; `genloop run` trains and promotes
a champion on v1; `genloop serve --follow` serves it; data v2 (all ten digits) is
committed as a new data.dvc; `genloop schedule` serves the monitoring deployment (every
minute) and the retraining deployment (its drift trigger); the scheduled monitor detects
the new data, its event starts the retraining on v2's git revision, the gate re-scores
the v1 champion on v2 and promotes the challenger, and the running server moves to it
and answers for the new classes. Every step is timed; the table lands in summary.md.

Only the Prefect HTTP API is used here (components/ never imports Prefect).
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from components.errors import GenloopError

MODEL = "demo-digits"
OLD, NEW = ("0", "1", "2", "3", "4"), ("5", "6", "7", "8", "9")
# The default DCGAN with smaller evaluation samples; the monitor's data-drift sample is the
# same count, so it picks the same files and their Inception features are computed once.
CONFIG = """\
# genloop demo drift: configs/dcgan-digits.yaml with smaller samples, so the loop fits
# in minutes on 2 CPU cores.
name: demo-digits
seed: 0
data:
  dataset: digits
  kind: image
  image_size: 8
  channels: 1
  labels: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
validate:
  all_classes: false       # v1 holds digits 0-4 only
augment: {enabled: true, degrees: 6.0, translate: 0.06, brightness: 0.0, contrast: 0.0, noise_std: 0.03,
          hflip: false, p: 0.5}
model:
  family: dcgan
  args: {image_size: 8, channels: 1, num_classes: 10, z_dim: 32, width: 64}
train:
  steps: %(steps)d
  batch_size: 64
  lr: 0.0005
  log_every: 100
  checkpoint_every: 0
  ema_decay: 0.999
evaluate:
  samples: %(samples)d
  reference_samples: %(samples)d
audit:
  samples: 500
  max_class_tv: 0.25
gate:
  rescore_champion: true   # the v1 champion is re-scored on v2 before the comparison
monitor:
  data_samples: %(samples)d
  retrain_on: [data, staleness]
package: true
"""


@dataclass
class Step:
    name: str
    seconds: float
    what: str


@dataclass
class Demo:
    root: Path
    steps: int = 1500            # train.steps of both trainings
    samples: int = 300           # evaluate.samples = reference_samples = monitor.data_samples (>= 200)
    prefect_port: int = 0
    serve_port: int = 0
    timeout: float = 900.0
    say: Callable[[str], None] = print
    table: list[Step] = field(default_factory=list)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    stopped: list[subprocess.Popen] = field(default_factory=list)

    # ------------------------------------------------------------ plumbing

    def __post_init__(self) -> None:
        if self.samples < 200:
            raise GenloopError(f"demo: --samples must be >= 200 (the data-drift test's minimum), got {self.samples}.")
        if self.steps <= 0:
            raise GenloopError(f"demo: --steps must be > 0, got {self.steps}.")
        self.root = Path(self.root).resolve()
        self.prefect_port = self.prefect_port or _free_port()
        self.serve_port = self.serve_port or _free_port()
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.url = f"http://127.0.0.1:{self.serve_port}"
        self.logs = self.root / "logs"

    def env(self, server: bool = False) -> dict[str, str]:
        """The demo project's own stores: nothing of the calling project is touched."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("BENTOML_HOME", "PREFECT_API_URL", "PREFECT_PROFILES_PATH", "VIRTUAL_ENV_PROMPT")}
        env.update({"PREFECT_HOME": str(self.root / ".prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false",
                    "DVC_NO_ANALYTICS": "1", "GENLOOP_FOLLOW_EVERY": "1"})
        if not server:
            env["PREFECT_API_URL"] = self.api
        else:       # `prefect server start --port N` does not tell its UI the port: the UI would call :4200
            env["PREFECT_UI_API_URL"] = "/api"
        return env

    def genloop(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from flows.cli import main; main()", *args]

    def start(self, name: str, cmd: list[str], server: bool = False) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=self.root, env=self.env(server), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def call(self, name: str, cmd: list[str], timeout: float) -> None:
        proc = self.start(name, cmd)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise GenloopError(f"demo: {name} did not finish in {timeout:.0f} s; see {self.logs / name}.log")
        finally:
            self.procs.pop(name, None)
        if code != 0:
            raise GenloopError(f"demo: {name} failed (exit {code}); last lines of {self.logs / name}.log:\n"
                               + _tail(self.logs / f"{name}.log"))

    def wait(self, what: str, predicate, seconds: float, every: float = 1.0):
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise GenloopError(f"demo: {name} exited (code {proc.returncode}) while waiting for {what}; "
                                       f"last lines of {self.logs / name}.log:\n" + _tail(self.logs / f"{name}.log"))
            try:
                value = predicate()
            except (OSError, ValueError, KeyError, httpx.HTTPError):      # not up yet / not there yet
                value = None
            if value:
                return value
            time.sleep(every)
        raise GenloopError(f"demo: timed out after {seconds:.0f} s waiting for {what}; logs in {self.logs}")

    def stop(self) -> None:
        self.stopped = list(self.procs.values())
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def step(self, name: str, start: float, what: str) -> None:
        self.table.append(Step(name, time.monotonic() - start, what))
        self.say(f"[{sum(s.seconds for s in self.table):6.1f} s] {name}: {what}")

    # ------------------------------------------------------------ the scenario

    def run(self) -> list[Step]:
        import httpx

        if self.root.exists() and any(self.root.iterdir()):
            raise GenloopError(f"demo: {self.root} is not empty; pass --dir with a new folder.")
        try:
            t = time.monotonic()
            v1 = self.make_project()
            self.step("project: git + DVC, data v1 = digits 0-4", t, f"data md5 {v1[:8]}, committed")

            t = time.monotonic()
            self.start("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host",
                                          "127.0.0.1", "--port", str(self.prefect_port)], server=True)
            self.wait("the Prefect server", lambda: httpx.get(f"{self.api}/health", timeout=2).status_code == 200,
                      180)
            self.step("prefect server (SQLite)", t, f"UI at http://127.0.0.1:{self.prefect_port}")

            t = time.monotonic()
            self.call("train-v1", self.genloop("run", "--config", "configs/demo-digits.yaml"), self.timeout)
            first = self.champion()
            self.step("train v1 champion (genloop run)", t,
                      f"{first['tag']}, FID {first['value']:.2f} on v1, promoted")

            t = time.monotonic()
            self.start("serve", self.genloop("serve", "--model", MODEL, "--port", str(self.serve_port), "--follow"))
            self.wait("the server", lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200, 300)
            before = self.generate("7")
            self.step("serve v1 (genloop serve --follow)", t,
                      f"label 7 -> HTTP {before.status_code}: {_reason(before)}")

            t = time.monotonic()
            v2, rev = self.commit_v2()
            committed = time.monotonic()
            self.step("commit data v2 = all ten digits (data.dvc)", t, f"data md5 {v2[:8]}, git {rev[:8]}")

            t = time.monotonic()
            self.start("schedule", self.genloop("schedule", "--config", "configs/demo-digits.yaml",
                                                "--cron", "0 0 1 1 *", "--monitor-cron", "* * * * *"))
            report = self.wait("the scheduled monitor to see data v2", lambda: self.monitor_report(v2), 300, 2)
            emitted = Path(report["report_path"]).stat().st_mtime     # the flow emits right after writing it
            fired = [c for c in report["checks"] if c["fired"]]
            self.step("scheduled monitor (every minute) detects drift", t,
                      "; ".join(f"{c['kind']} {c['score']:.4g} > {c['threshold']:.4g}" for c in fired)
                      or "nothing fired")
            if not report["retrain"]:
                raise GenloopError("demo: the monitor did not call for retraining; see " + report["report_path"])

            t = time.monotonic()
            run = self.wait("the triggered retraining run", lambda: self.retrain_run(rev), self.timeout, 3)
            gate = self.gate_of(run)
            second = self.champion()
            self.step("drift event -> retraining on v2 (Prefect automation)", t,
                      ("PROMOTED " if gate["promote"] else "KEPT ") + f"{second['tag']}: challenger FID "
                      f"{gate['challenger']['value']:.2f} vs v1 champion re-scored on v2 "
                      f"{gate['champion']['value']:.2f} (was {gate['champion_at_promotion']['value']:.2f} on v1)")
            if second["tag"] == first["tag"]:
                raise GenloopError(f"demo: the retraining did not promote a new champion: {gate['reason']}")

            t = time.monotonic()
            after = self.wait("the server to move to the new champion",
                              lambda: (r := self.generate("7")).status_code == 200
                              and r.json()["model_tag"] == second["tag"] and r, 120)
            grid = self.save_new_classes()
            self.step("server follows: new classes served", t,
                      f"label 7 -> HTTP 200 from {after.json()['model_tag']}; grid {grid.relative_to(self.root)}")
            self.table.append(Step("data v2 committed -> new champion answering", time.monotonic() - committed, ""))
            self.table.append(Step("drift event -> new champion answering", time.time() - emitted, ""))
        finally:
            self.stop()
        self.write_summary()
        return self.table

    # ------------------------------------------------------------ the steps' parts

    def make_project(self) -> str:
        from components.data.embedded import write_embedded
        from components.data.versioning import commit_data, ensure_repo

        self.root.mkdir(parents=True, exist_ok=True)
        _git(self.root, "init", "-q")
        (self.root / "configs").mkdir()
        (self.root / "configs" / "demo-digits.yaml").write_text(CONFIG % {"steps": self.steps, "samples": self.samples})
        (self.root / ".gitignore").write_text("/data\n/runs\n/logs\n/.genloop\n/.prefect\n")
        data = self.root / "data"
        write_embedded(data)
        for digit in NEW:
            shutil.rmtree(data / "digits" / digit)
        ensure_repo(self.root)
        md5 = commit_data(self.root)
        _git(self.root, "add", "-A")
        _git(self.root, "commit", "-qm", "data v1: digits 0-4")
        return md5

    def commit_v2(self) -> tuple[str, str]:
        from components.data.embedded import write_embedded
        from components.data.versioning import commit_data

        write_embedded(self.root / "data")
        md5 = commit_data(self.root)
        _git(self.root, "add", "data.dvc")
        _git(self.root, "commit", "-qm", "data v2: all ten digits")
        return md5, _git(self.root, "rev-parse", "HEAD")

    def champion(self) -> dict:
        aliases = self.root / ".genloop" / "bentoml" / "genloop-champions.json"
        tag = json.loads(aliases.read_text())[MODEL]["champion"]
        name, version = tag.split(":")
        meta = self.root / ".genloop" / "bentoml" / "models" / name / version / "model.yaml"
        import yaml

        card = yaml.safe_load(meta.read_text())["metadata"]["scorecard"]
        return {"tag": tag, **card}

    def generate(self, label: str, n: int = 1, seed: int = 1):
        import httpx

        return httpx.post(f"{self.url}/generate", json={"n": n, "seed": seed, "label": label}, timeout=60)

    def monitor_report(self, md5: str) -> dict | None:
        """The newest monitor report whose newest data is `md5` (written by the flow run)."""
        for path in sorted((self.root / "runs").glob("monitor-*/monitor.json"), reverse=True):
            report = json.loads(path.read_text())
            if report["newest"]["data_md5"] == md5:
                return report
        return None

    def retrain_run(self, rev: str) -> dict | None:
        """The retraining flow run the drift trigger started on git revision `rev`, once
        finished (a failed or crashed one is an error)."""
        import httpx

        body = {"deployments": {"name": {"any_": [f"retrain-{MODEL}"]}}}
        for run in httpx.post(f"{self.api}/flow_runs/filter", json=body, timeout=10).json():
            if run["parameters"].get("data_rev") != rev:
                continue
            kind = run["state"]["type"]
            if kind in ("FAILED", "CRASHED", "CANCELLED"):
                raise GenloopError(f"demo: the triggered retraining {run['name']} ended {kind}: "
                                   f"{run['state'].get('message')}; logs in {self.logs / 'schedule.log'}")
            if kind == "COMPLETED":
                return run
        return None

    def gate_of(self, run: dict) -> dict:
        """gate.json of the newest retraining run on v2 (runs/<id>/)."""
        dirs = sorted(p for p in (self.root / "runs").glob(f"*-{MODEL}-*") if (p / "gate.json").is_file())
        for path in reversed(dirs):
            ctx = json.loads((path / "run.json").read_text())
            if ctx["data"]["data_rev"] == run["parameters"]["data_rev"]:
                return json.loads((path / "gate.json").read_text())
        raise GenloopError(f"demo: no gate.json of the retraining run {run['name']} under runs/")

    def save_new_classes(self) -> Path:
        import numpy as np
        import torch
        from PIL import Image

        from components.report import save_grid

        images = []
        for label in NEW:
            for png in self.generate(label, n=8, seed=3).json()["images"]:
                with Image.open(io.BytesIO(base64.b64decode(png))) as img:
                    images.append(np.asarray(img.convert("L")))
        batch = torch.from_numpy(np.stack(images)).unsqueeze(1)
        return Path(save_grid(batch, self.root / "served-new-classes.png", columns=8))

    def markdown(self) -> str:
        lines = ["| step | seconds | what happened |", "|---|---:|---|"]
        lines += [f"| {s.name} | {s.seconds:.1f} | {s.what} |" for s in self.table]
        total = sum(s.seconds for s in self.table if s.what)
        return "\n".join(lines + [f"| **total** | **{total:.1f}** | |"]) + "\n"

    def write_summary(self) -> Path:
        path = self.root / "summary.md"
        path.write_text("# genloop demo drift\n\n" + self.markdown())
        return path


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.email=demo@genloop", "-c", "user.name=genloop demo", *args],
                         cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise GenloopError(f"demo: git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _reason(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:160]
    if response.status_code == 200:
        return f"{body.get('model_tag')} drew label {body.get('labels')}"
    errors = body if isinstance(body, list) else [body]         # BentoML answers a list of errors
    return "; ".join(str(e.get("error", e)) if isinstance(e, dict) else str(e) for e in errors)[:160]
