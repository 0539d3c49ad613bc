"""The one trainer: every TrainedModel steps through `train`, every CountedModel
counts through `fit_counts` (components/training/run.py picks which)."""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from components.config import TrainConfig
from components.errors import GenloopError
from components.progress import duration
from components.training.device import autocast

if TYPE_CHECKING:
    from components.models.base import CountedModel, TrainedModel, ValidatingModel

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


class EMA:
    """Exponential moving average of some modules' parameters (buffers stay live)."""

    def __init__(self, modules: dict, decay: float):
        import torch

        self.decay = decay
        self.keys = [f"{name}.{k}" for name, m in modules.items() for k, _ in m.named_parameters()]
        self.params = [p for m in modules.values() for p in m.parameters()]
        self.values = [p.detach().clone() for p in self.params]
        self._torch = torch

    @property
    def shadow(self) -> dict:
        return dict(zip(self.keys, self.values))

    @shadow.setter
    def shadow(self, tensors: dict) -> None:
        self.values = [tensors[k] for k in self.keys]

    def update(self, step: int) -> None:
        # warm-up: early on the average forgets faster, so the random init fades out
        decay = min(self.decay, (1 + step) / (10 + step))
        with self._torch.no_grad():
            self._torch._foreach_lerp_(self.values, [p.detach() for p in self.params], 1 - decay)

    def swap(self) -> None:
        """Exchange live and averaged parameters (call twice to undo)."""
        with self._torch.no_grad():
            for p, v in zip(self.params, self.values):
                live = p.detach().clone()
                p.copy_(v)
                v.copy_(live)


def validation_loss(model: ValidatingModel, batches: list) -> float:
    """Mean `loss` of a ValidatingModel over fixed held-out batches, in eval mode."""
    import torch

    from components.models.base import eval_mode

    with eval_mode(*model.modules().values()), torch.no_grad():
        return sum(float(model.loss(b)["loss"]) for b in batches) / len(batches)


def _progress(total: int):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from components.progress import bars_enabled, console

    return Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console(), disable=not bars_enabled(), transient=True)


def train(model: TrainedModel, next_batch: Callable, cfg: TrainConfig, out_dir: Path, meta: dict,
          seed: int, device, resume: bool = False, val_batches: list | None = None,
          sync=None) -> TrainResult:
    """Run cfg.steps optimisation steps of a TrainedModel; `next_batch(generator)` returns a
    batch on device; `val_batches` (ValidatingModel only) give the validation loss.

    Every `checkpoint_every` steps the whole training state (components/training/state.py)
    is saved under out_dir/state/; with `resume=True` the newest one is restored, so a
    killed run ends with the same weights as an uninterrupted one. `sync`
    (components.training.distributed) averages gradients across ranks; only rank 0 writes
    files.
    """
    import torch

    from components.models.io import save_checkpoint
    from components.training.state import Progress, TrainingState, latest_state, load_state, save_state

    torch.manual_seed(seed)
    modules = model.modules()
    for module in modules.values():
        module.to(device).train()
        if cfg.compile and device.type == "cuda":
            module.forward = torch.compile(module.forward)
    optimizers = model.make_optimizers(cfg.lr)
    if sync is not None:
        optimizers = sync.wrap(optimizers)
    schedule = warmup_cosine(cfg.steps, max(1, int(cfg.steps * cfg.warmup_fraction)))
    schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, schedule) for k, o in optimizers.items()}
    ema = EMA({n: modules[n] for n in model.ema_modules}, cfg.ema_decay) \
        if model.ema_modules and cfg.ema_decay else None
    gen = torch.Generator().manual_seed(seed + (sync.rank if sync else 0))
    state = TrainingState(modules, optimizers, schedulers, ema, gen, device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_root = out_dir / "state"
    main = sync is None or sync.rank == 0
    progress = Progress()
    if resume and (path := latest_state(state_root)) is not None:
        try:
            progress = state.restore(load_state(path))
        except KeyError as exc:
            raise GenloopError(f"training state {path} lacks {exc} (written by an older genloop?); "
                               f"start the run again without --resume.") from None
        log.info("resumed from %s at step %d", path, progress.step)
    history, first, elapsed_before = progress.history, progress.step + 1, progress.seconds
    best, stale = progress.best, progress.stale
    start = time.perf_counter() - elapsed_before
    step = first - 1
    with _progress(cfg.steps) as bar:
        task = bar.add_task("train", total=cfg.steps, completed=step, info="")
        for step in range(first, cfg.steps + 1):
            batch = next_batch(gen)
            with autocast(device):
                losses = model.train_step(batch, optimizers, cfg.grad_clip)
            values = {k: float(v) for k, v in losses.items()}
            if not all(math.isfinite(v) for v in values.values()):
                kept = latest_state(state_root)
                raise GenloopError(f"training diverged at step {step}: losses {values}; the last good "
                                   f"state is {kept or 'none (no checkpoint yet)'}. Lower train.lr or "
                                   f"check the data for NaN.")
            if sync is not None:
                sync.after_step(modules)
            if ema is not None:
                ema.update(step)
            for sched in schedulers.values():
                sched.step()
            record = step % cfg.log_every == 0 or step == cfg.steps
            if val_batches and cfg.eval_every and step % cfg.eval_every == 0:
                values["val_loss"] = validation_loss(model, val_batches)
                best, stale = (values["val_loss"], 0) if values["val_loss"] < best else (best, stale + 1)
                record = True
            if record:
                elapsed = time.perf_counter() - start
                history.append({"step": step, **values, "seconds": round(elapsed, 3)})
                rate = (step - first + 1) / max(elapsed - elapsed_before, 1e-9)
                log.info("step %d/%d %s (%.1f steps/s, %s left)", step, cfg.steps,
                         " ".join(f"{k}={v:.4f}" for k, v in values.items()), rate,
                         duration((cfg.steps - step) / max(rate, 1e-9)))
            if record or step % 10 == 0:
                rate = (step - first + 1) / max(time.perf_counter() - start - elapsed_before, 1e-9)
                bar.update(task, completed=step, info=f"loss {values['loss']:.4f}  {rate:.1f} steps/s")
            if main and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                save_state(state_root, step, state.snapshot(Progress(step, time.perf_counter() - start,
                                                                     history, best, stale)),
                           cfg.keep_checkpoints)
            if cfg.patience and stale >= cfg.patience:
                log.info("early stop at step %d: validation loss has not improved for %d evaluations",
                         step, stale)
                break
    seconds = time.perf_counter() - start
    if ema is not None:
        ema.swap()                      # the exported weights are the averaged ones
    ckpt = out_dir / "checkpoint"
    if main:
        save_checkpoint(model, {**meta, "step": step, "seed": seed, "ema": ema is not None}, ckpt)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1))
        plot_history(history, out_dir / "loss_curve.png")
    return TrainResult(str(ckpt), step, history[-1]["loss"] if history else float("nan"), seconds,
                       str(out_dir / "history.json"), str(out_dir / "loss_curve.png"))


def fit_counts(model: CountedModel, tokens, out_dir: Path, meta: dict) -> TrainResult:
    """A CountedModel (n-gram): one pass over the training corpus, no optimiser."""
    from components.models.io import save_checkpoint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bits = model.fit(tokens)
    seconds = time.perf_counter() - start
    history = [{"step": 1, "loss": bits * math.log(2), "train_bits_per_byte": bits, "seconds": round(seconds, 3)}]
    ckpt = save_checkpoint(model, {**meta, "step": 1}, out_dir / "checkpoint")
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
