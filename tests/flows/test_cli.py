import subprocess
import sys

from tests.conftest import REPO, make_project

GENLOOP = [sys.executable, "-c", "from flows.cli import main; main()"]


def _run(args, cwd):
    return subprocess.run(GENLOOP + args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands():
    out = _run(["--help"], REPO)
    assert out.returncode == 0
    for command in ("run", "train", "serve", "monitor", "schedule", "data"):
        assert command in out.stdout


def test_run_before_data_init_says_what_to_run(tmp_path):
    root = make_project(tmp_path / "p")
    out = _run(["run"], root)
    assert out.returncode != 0
    assert "genloop data init" in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_config_key_names_it(tmp_path):
    root = make_project(tmp_path / "p")
    (root / "configs" / "bad.yaml").write_text("name: x\ntrain:\n  epochz: 2\n")
    out = _run(["run", "--config", "configs/bad.yaml"], root)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "'train.epochz'" in out.stderr and "steps" in out.stderr
