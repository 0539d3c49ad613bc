"""The trainer: exact resume after SIGKILL, NaN guard keeping the last good state, EMA,
early stopping."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from components.config import TrainConfig
from components.models import build_model
from components.models.io import load_checkpoint
from components.training.trainer import train

CFG = TrainConfig(steps=24, batch_size=16, lr=1e-3, log_every=4, checkpoint_every=4, keep_checkpoints=2)
SCRIPT = """
import sys, time, torch
sys.path.insert(0, {root!r})
from tests.models.test_trainer import run
run({out!r}, resume=False, slow=True)
"""


def run(out: str, resume: bool, slow: bool = False):
    """A small augmented DCGAN training (kornia draws from torch's RNG, so resume must
    restore it as well as the batch generator, optimizers, schedulers and EMA)."""
    from components.augment import image_augmenter
    from components.config import AugmentConfig
    from components.training.batches import image_batches

    class Data:
        images = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
        labels = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(2))

    torch.manual_seed(0)
    model = build_model("dcgan", {"z_dim": 8, "width": 16})
    batches = image_batches(Data, 16, image_augmenter(AugmentConfig(p=0.9)), torch.device("cpu"))
    if slow:                                   # give the test time to kill us mid-run
        inner = batches

        def batches(gen):
            time.sleep(0.15)
            return inner(gen)
    return train(model, batches, CFG, Path(out), {}, 0, torch.device("cpu"), resume=resume)


def _weights(path):
    model, meta = load_checkpoint(Path(path))
    return {f"{n}.{k}": v for n, m in model.modules().items() for k, v in m.state_dict().items()}, meta


@pytest.mark.slow
def test_sigkill_and_resume_reaches_the_same_weights(tmp_path):
    straight = run(str(tmp_path / "straight"), resume=False)
    out = tmp_path / "killed"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(root=root, out=str(out))], cwd=root,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (out / "state" / "step-00000012" / "state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it was killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "checkpoint").exists()
    states = sorted(p.name for p in (out / "state").glob("step-*"))
    assert len(states) <= 2 and states[-1] >= "step-00000012"       # keep_checkpoints=2
    resumed = run(str(out), resume=True)
    a, meta = _weights(straight.checkpoint)
    b, _ = _weights(resumed.checkpoint)
    assert meta["ema"] is True and a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_nan_guard_names_the_step_and_keeps_the_last_good_state(tmp_path):
    from components.errors import GenloopError

    model = build_model("dcgan", {"z_dim": 8, "width": 16})
    calls = {"n": 0}

    def batches(gen):
        calls["n"] += 1
        x = torch.rand(4, 1, 8, 8) * 2 - 1
        return (x * float("nan") if calls["n"] == 7 else x), torch.zeros(4, dtype=torch.long)

    cfg = TrainConfig(steps=10, checkpoint_every=3, log_every=1)
    with pytest.raises(GenloopError, match=r"diverged at step 7.*step-00000006"):
        train(model, batches, cfg, tmp_path, {}, 0, torch.device("cpu"))
    assert not (tmp_path / "checkpoint").exists()
    assert (tmp_path / "state" / "step-00000006" / "state.json").is_file()


def test_early_stopping_on_validation_loss(tmp_path):
    model = build_model("charlm", {"block_size": 8, "d_model": 16, "n_layers": 1, "n_heads": 2})
    noise = torch.Generator().manual_seed(0)
    val = [(torch.randint(0, 256, (4, 8), generator=noise), torch.randint(0, 256, (4, 8), generator=noise))]

    def batches(gen):                         # train on a pattern the random validation set lacks
        x = torch.arange(8).repeat(4, 1)
        return x, (x + 1) % 256

    cfg = TrainConfig(steps=400, lr=1e-2, eval_every=5, patience=2, log_every=100)
    result = train(model, batches, cfg, tmp_path, {}, 0, torch.device("cpu"), val_batches=val)
    assert result.steps < 400
    assert any("val_loss" in h for h in __import__("json").loads((tmp_path / "history.json").read_text()))
