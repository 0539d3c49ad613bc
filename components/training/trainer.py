"""The one trainer for every model family."""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from components.config import TrainConfig
from components.errors import GenloopError
from components.training.checkpoint import save_checkpoint
from components.training.device import autocast

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    checkpoint: str
    steps: int
    final_loss: float
    seconds: float
    history_path: str
    curve_path: str


def warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def train(objective, next_batch: Callable, cfg: TrainConfig, out_dir: Path, meta: dict,
          seed: int, device) -> TrainResult:
    """Run cfg.steps optimisation steps; `next_batch(generator)` returns a batch on device."""
    import torch

    torch.manual_seed(seed)
    for module in objective.modules().values():
        module.to(device).train()
    optimizers = objective.make_optimizers(cfg.lr)
    schedule = warmup_cosine(cfg.steps, max(1, cfg.steps // 20))
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in optimizers.values()]
    gen = torch.Generator().manual_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        batch = next_batch(gen)
        with autocast(device):
            losses = objective.train_step(batch, optimizers, cfg.grad_clip)
        values = {k: float(v) for k, v in losses.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise GenloopError(f"training diverged at step {step}: losses {values}; no checkpoint "
                               f"was written. Lower train.lr or check the data for NaN.")
        for sched in schedulers:
            sched.step()
        if step % cfg.log_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - start
            history.append({"step": step, **values, "seconds": round(elapsed, 3)})
            log.info("step %d/%d %s (%.1f steps/s)", step, cfg.steps,
                     " ".join(f"{k}={v:.4f}" for k, v in values.items()), step / elapsed)
    seconds = time.perf_counter() - start
    ckpt = save_checkpoint(objective, {**meta, "step": cfg.steps, "seed": seed}, out_dir / "checkpoint")
    history_path = out_dir / "history.json"
    history_path.write_text(json.dumps(history, indent=1))
    curve = plot_history(history, out_dir / "loss_curve.png")
    return TrainResult(str(ckpt), cfg.steps, history[-1]["loss"], seconds, str(history_path), str(curve))


def fit_counts(objective, tokens, out_dir: Path, meta: dict) -> TrainResult:
    """Count-based models (n-gram): one pass over the training corpus, no optimiser."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bits = objective.fit(tokens)
    seconds = time.perf_counter() - start
    history = [{"step": 1, "loss": bits * math.log(2), "train_bits_per_byte": bits, "seconds": round(seconds, 3)}]
    ckpt = save_checkpoint(objective, {**meta, "step": 1}, out_dir / "checkpoint")
    history_path = out_dir / "history.json"
    history_path.write_text(json.dumps(history, indent=1))
    curve = plot_history(history, out_dir / "loss_curve.png")
    return TrainResult(str(ckpt), 1, history[-1]["loss"], seconds, str(history_path), str(curve))


def plot_history(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    keys = [k for k in history[0] if k not in ("step", "seconds")] if history else []
    for key in keys:
        ax.plot([h["step"] for h in history], [h[key] for h in history], label=key)
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
