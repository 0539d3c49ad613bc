"""Entry point of one torchrun rank: `python -m components.training.launch RUN_JSON`.

The parent (`genloop train --nproc N`) prepared the run (config, data version, run dir);
each rank trains on its share of every global batch; rank 0 writes the checkpoint. Every
rank writes rank-<r>.json with a hash of its weights and its loss on fixed held-out
batches, so callers can check that the ranks agree.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path


def weights_md5(objective) -> str:
    digest = hashlib.md5()
    for name, module in sorted(objective.modules().items()):
        for key, value in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_distributed(ctx: dict, sync=None, resume: bool = False) -> dict:
    """Train as the run context says; data-parallel when `sync` is given; `resume`
    continues from the newest training state in the run dir."""
    import torch

    from components.models import build_model
    from components.runs import config_of, provenance
    from components.stages import _batch_source, _heldout_batches
    from components.training.device import pick_device
    from components.training.trainer import train, validation_loss

    cfg = config_of(ctx)
    world = sync.world if sync else 1
    if cfg.train.batch_size % world:
        from components.errors import GenloopError
        raise GenloopError(f"train.batch_size {cfg.train.batch_size} is not divisible by --nproc {world}.")
    local = replace(cfg, train=replace(cfg.train, batch_size=cfg.train.batch_size // world))
    device = sync.device() if sync else pick_device()
    torch.manual_seed(cfg.seed)
    objective = build_model(cfg.model.family, cfg.model.args)
    result = train(objective, _batch_source(ctx, local, objective, device), local.train,
                   Path(ctx["run_dir"]) / "train", {**provenance(ctx), "config": ctx["config"],
                                                   "world_size": world},
                   cfg.seed, device, resume=resume, sync=sync)
    report = {"rank": sync.rank if sync else 0, "world_size": world, "weights_md5": weights_md5(objective),
              "heldout_loss": (validation_loss(objective, _heldout_batches(ctx, cfg, objective, device))
                               if hasattr(objective, "loss") else None),
              "checkpoint": result.checkpoint, "steps": result.steps}
    (Path(ctx["run_dir"]) / f"rank-{report['rank']}.json").write_text(json.dumps(report))
    return report


def main() -> None:
    from components.training.distributed import GradSync

    ctx = json.loads(Path(sys.argv[1]).read_text())
    sync = GradSync()
    try:
        train_distributed(ctx, sync, resume="--resume" in sys.argv[2:])
    finally:
        sync.close()


if __name__ == "__main__":
    main()
