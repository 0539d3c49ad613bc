"""Entry point of one torchrun rank: `python -m components.training.launch RUN_DIR [--resume]`.

The parent (`genloop train --nproc N`) prepared the run (config, data version, run dir);
each rank trains on its share of every global batch through the one training entry point
(components/training/run.py); rank 0 writes the checkpoint.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    from components.runs import RunContext
    from components.training.distributed import GradSync
    from components.training.run import plan_augmentation, train_run

    ctx = RunContext.load(Path(sys.argv[1]))
    sync = GradSync()
    try:
        train_run(ctx, plan_augmentation(ctx), sync, resume="--resume" in sys.argv[2:])
    finally:
        sync.close()


if __name__ == "__main__":
    main()
