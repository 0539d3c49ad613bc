"""Data-parallel training: 2 CPU processes (torchrun, gloo) against one process at the
same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.runs import prepare_run
from components.training.run import plan_augmentation, train_run

pytestmark = pytest.mark.slow
TINY = {"train.steps": 30, "train.batch_size": 8, "train.lr": 0.003, "train.log_every": 10,
        "model.args": {"block_size": 32, "d_model": 32, "n_layers": 1, "n_heads": 2, "dropout": 0.0}}


def test_two_gloo_ranks_agree_and_match_one_process(data_project):
    ctx = prepare_run(data_project, "configs/charlm-pydocs.yaml", dict(TINY))
    run_dir = ctx.run_dir
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "components.training.launch", str(run_dir)],
                         cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((run_dir / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2 and ranks[0]["weights_md5"] == ranks[1]["weights_md5"]
    assert (run_dir / "train" / "checkpoint" / "weights.safetensors").is_file()

    one = prepare_run(data_project, "configs/charlm-pydocs.yaml", dict(TINY))
    train_run(one, plan_augmentation(one))
    single = json.loads((one.run_dir / "rank-0.json").read_text())
    assert single["world_size"] == 1
    # same global batch, different shards of random windows: close, not equal
    assert abs(single["heldout_loss"] - ranks[0]["heldout_loss"]) < 0.15, (single, ranks[0])
    assert single["heldout_loss"] < 5.0                       # both learned (uniform is ln 256 = 5.55)
