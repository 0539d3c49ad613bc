"""The one training entry point, used by `genloop run` (the flow's train stage),
`genloop train` and every torchrun rank of `genloop train --nproc N`.

A TrainedModel steps through the trainer (data-parallel when `sync` is given), a
CountedModel counts its corpus once. Every rank writes rank-<r>.json with a hash of its
weights and its loss on fixed held-out batches, so callers can check that ranks agree.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from components.augment import AugmentPlan
from components.errors import GenloopError
from components.results import Trained


def plan_augmentation(ctx) -> AugmentPlan:
    """The augmentation a run's config asks for (what the augment stage hands to train)."""
    from components.models import family_module, model_args

    cfg = ctx.config
    window = 0
    if cfg.data.kind == "text" and not family_module(cfg.model.family).Model.count_based:
        window = model_args(cfg.model.family, cfg.model.args).block_size
    return AugmentPlan(cfg.data.kind, cfg.augment, window)


def check_world(cfg, world: int) -> None:
    """Can this config train on `world` processes? (asked before torchrun starts any)"""
    from components.models import family_module

    if world > 1 and family_module(cfg.model.family).Model.count_based:
        raise GenloopError(f"model.family {cfg.model.family} is fitted by counting in one pass; "
                           f"run it without --nproc.")
    if cfg.train.batch_size % world:
        raise GenloopError(f"train.batch_size {cfg.train.batch_size} is not divisible by --nproc {world}.")


def weights_md5(model, checkpoint: str) -> str:
    """A hash of the trained weights: of the modules' tensors (the same on every rank), or
    of the saved weights file for models without modules (counted ones, one process)."""
    from components.models.io import WEIGHTS

    if not model.modules():
        return hashlib.md5((Path(checkpoint) / WEIGHTS).read_bytes()).hexdigest()
    digest = hashlib.md5()
    for name, module in sorted(model.modules().items()):
        for key, value in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_run(ctx, plan: AugmentPlan, sync=None, resume: bool = False) -> Trained:
    """Train the model `ctx.config` describes on the run's dataset; the checkpoint lands in
    run_dir/train/checkpoint. `resume` continues from the newest training state there."""
    import torch

    from components.models import build_model
    from components.training.batches import batch_source, heldout_batches
    from components.training.device import pick_device
    from components.training.trainer import fit_counts, train, validation_loss

    cfg = ctx.config
    world = sync.world if sync else 1
    check_world(cfg, world)
    torch.manual_seed(cfg.seed)                   # the same seed builds the same initial weights
    model = build_model(cfg.model.family, cfg.model.args)
    if model.modality != cfg.data.kind:
        raise GenloopError(f"config: model.family {cfg.model.family} makes {model.modality}s "
                           f"but data.kind is {cfg.data.kind}.")
    out = ctx.run_dir / "train"
    meta = {**ctx.provenance(), "config": cfg.to_dict(), "world_size": world}
    heldout = None
    if model.count_based:
        from components.data.loaders import run_text
        from components.data.text import encode
        device = torch.device("cpu")
        result = fit_counts(model, encode(run_text(ctx)[0]), out, meta)
    else:
        local = replace(cfg.train, batch_size=cfg.train.batch_size // world)
        device = sync.device() if sync else pick_device()
        # the same held-out batches whatever the number of processes
        val = heldout_batches(ctx, model, cfg.train.batch_size, device) if model.validates else None
        result = train(model, batch_source(ctx, model, plan, local.batch_size, device), local, out, meta,
                       cfg.seed, device, resume=resume, val_batches=val if cfg.train.eval_every else None,
                       sync=sync)
        heldout = validation_loss(model, val) if val else None
    rank = sync.rank if sync else 0
    report = {"rank": rank, "world_size": world, "weights_md5": weights_md5(model, result.checkpoint),
              "heldout_loss": heldout,
              "checkpoint": result.checkpoint, "steps": result.steps}
    rank_file = ctx.run_dir / f"rank-{rank}.json"
    rank_file.write_text(json.dumps(report))
    return Trained(figure=f"{result.steps} steps on {device.type}, loss {result.final_loss:.3f}, "
                          f"{result.seconds:.1f}s",
                   files=(result.checkpoint, result.history_path, result.curve_path, str(rank_file)),
                   checkpoint=result.checkpoint, steps=result.steps, device=device.type)
