"""Trainer step time against a bare PyTorch loop on the same model, batch and device,
measured side by side in one run (issue 4; goal: throughput ratio >= 0.97).

bare:    for each step: batch = next_batch(gen); model.train_step(batch, optimizers)
trainer: components.training.trainer.train (LR schedule, loss checks, EMA for the GAN,
         logging, progress) over the same steps; its own loop time, without the final
         checkpoint write.
Usage: .venv/bin/python benchmarks/trainer_overhead.py [steps] [repeats]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from components.config import TrainConfig  # noqa: E402
from components.models import build_model  # noqa: E402
from components.training.batches import image_batches, text_batches  # noqa: E402
from components.training.device import autocast, pick_device  # noqa: E402
from components.training.trainer import train  # noqa: E402


class _Images:
    images = torch.rand(1797, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.randint(0, 10, (1797,), generator=torch.Generator().manual_seed(1))


CASES = {
    "dcgan (batch 64, 8x8)": ("dcgan", {}, lambda d: image_batches(_Images, 64, lambda x: x, d)),
    "charlm (batch 32 x 64 bytes)": ("charlm", {"block_size": 64, "n_layers": 2},
                                     lambda d: text_batches(torch.randint(0, 256, (200_000,)), 64, 32, d)),
}


def bare(family, args, batches, steps, device) -> float:
    torch.manual_seed(0)
    model = build_model(family, args)
    for m in model.modules().values():
        m.to(device).train()
    optimizers = model.make_optimizers(2e-4)
    next_batch, gen = batches(device), torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast(device):
            model.train_step(next_batch(gen), optimizers, 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def trainer(family, args, batches, steps, device) -> float:
    torch.manual_seed(0)
    model = build_model(family, args)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(model, batches(device), TrainConfig(steps=steps, log_every=steps, lr=2e-4),
                       Path(tmp), {}, 0, device)
    return result.seconds


def main(steps: int = 300, repeats: int = 5) -> None:
    device = pick_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; {steps} steps x {repeats} alternating repeats")
    for label, (family, args, batches) in CASES.items():
        bare(family, args, batches, 20, device)                       # warm-up
        b, t = [], []
        for _ in range(repeats):
            b.append(bare(family, args, batches, steps, device))
            t.append(trainer(family, args, batches, steps, device))
        mb, mt = statistics.median(b), statistics.median(t)
        print(f"{label}: bare {steps / mb:.1f} steps/s, trainer {steps / mt:.1f} steps/s, "
              f"ratio {mb / mt:.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
