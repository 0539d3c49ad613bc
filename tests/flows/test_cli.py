import subprocess
import sys

import pytest

from tests.conftest import REPO, make_project

GENLOOP = [sys.executable, "-c", "from flows.cli import main; main()"]


def _run(args, cwd):
    return subprocess.run(GENLOOP + args, cwd=cwd, capture_output=True, text=True, timeout=300)


def _commands(help_text: str) -> list[str]:
    """The command names in the 'Commands' box of a Typer help page."""
    box = help_text.split("Commands", 1)[1].split("╰", 1)[0]
    return [line.split()[1] for line in box.splitlines()[1:] if line.startswith("│ ") and line[2] != " "]


def test_help_lists_the_commands():
    out = _run(["--help"], REPO)
    assert out.returncode == 0
    assert _commands(out.stdout) == ["run", "sweep", "train", "serve", "champion", "monitor", "schedule", "approve",
                                           "dashboard", "deploy", "data", "demo"]
    data = _run(["data", "--help"], REPO)
    assert _commands(data.stdout) == ["init", "add", "status", "import"]


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


@pytest.mark.parametrize("args,says", [
    (["--grid", "train.lr"], "--grid takes KEY=V1,V2"),
    (["--seeds", "0,0"], "--seeds must list distinct integers"),
    (["--grid", "train.lrr=1e-3,1e-4"], "--grid train.lrr: config: unknown key 'train.lrr'"),
    (["--grid", "train.lr=1e-3", "--dask-address", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at "
                                                                          "tcp://127.0.0.1:9"),
])
def test_sweep_bad_input_is_one_line(tmp_path, args, says):
    root = make_project(tmp_path / "p")
    out = _run(["sweep", *args], root)
    assert out.returncode == 1 and says in out.stderr
    assert "Traceback" not in out.stderr + out.stdout and len(out.stderr.strip().splitlines()) == 1


def test_run_with_the_seed_spread_switch_and_none_measured_says_to_sweep(tmp_path):
    root = make_project(tmp_path / "p")
    out = _run(["run", "--set", "gate.use_seed_spread=true"], root)
    assert out.returncode == 1 and "no seed spread has been measured for 'dcgan-digits'" in out.stderr
    assert "genloop sweep" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_train_counts_the_ngram_through_the_one_entry_point(data_project):
    out = _run(["train", "--config", "configs/ngram-pydocs.yaml"], data_project)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rank 0/1: 1 steps" in out.stdout and "checkpoint: " in out.stdout
    assert "Traceback" not in out.stderr
    nproc = _run(["train", "--config", "configs/ngram-pydocs.yaml", "--nproc", "2"], data_project)
    assert nproc.returncode == 1 and "counting in one pass" in nproc.stderr
    assert "Traceback" not in nproc.stderr + nproc.stdout            # refused before torchrun starts


@pytest.mark.slow
def test_serve_takes_exact_model_names(trained_dcgan, data_project):
    out = _run(["serve", "--model", "dcgan"], data_project)
    assert out.returncode == 1 and "no champion named 'dcgan'" in out.stderr
    assert "dcgan-digits" in out.stderr and "Traceback" not in out.stderr
    out = _run(["serve", "--image-engine", "gpu"], data_project)
    assert out.returncode == 1 and "--image-engine must be one of loop, thread, got 'gpu'" in out.stderr
    # the server's settings are resolved before it starts: a bad value is one line here
    bad = subprocess.run(GENLOOP + ["serve", "--max-batch-size", "0"], cwd=data_project, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and "serving.max_batch_size must be >= 1, got 0" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_champion_shows_and_moves_the_alias(trained_dcgan, data_project):
    from components.errors import GenloopError
    from components.registry import champion_history, champion_tag, set_champion

    tag = trained_dcgan["model_tag"]
    out = _run(["champion", "dcgan-digits"], data_project)
    assert out.returncode == 0 and f"champion of dcgan-digits: {tag}" in out.stdout and "fid" in out.stdout
    before = len(champion_history("dcgan-digits"))
    set_champion("dcgan-digits", tag)                      # a rollback to the same tag is recorded
    assert champion_tag("dcgan-digits") == tag and len(champion_history("dcgan-digits")) == before + 1
    with pytest.raises(GenloopError, match="not in the model store"):
        set_champion("dcgan-digits", "dcgan-digits:nosuchversion")
    with pytest.raises(GenloopError, match="not of 'charlm-pydocs'"):
        set_champion("charlm-pydocs", tag)


@pytest.mark.slow
def test_a_validation_failure_is_one_error_without_prefects_tracebacks(data_project):
    import shutil

    bad = data_project / "data" / "digits_broken"
    shutil.copytree(data_project / "data" / "digits", bad)
    try:
        (bad / "2" / "0000.png").write_bytes(b"\x89PNG\r\n")
        out = _run(["run", "--set", "data.dataset=digits_broken", "--set", "name=dcgan-broken"], data_project)
    finally:
        shutil.rmtree(bad)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout and "Finished in state" not in out.stderr
    assert out.stderr.count("data validation failed") == 1 and "2/0000.png" in out.stderr
    assert "prefect flow-run logs" in out.stderr           # where the traceback went
