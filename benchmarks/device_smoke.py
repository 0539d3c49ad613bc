"""Train each model family for a few steps on the picked device (CUDA when present) with
the project's trainer, then sample: the same code path as on CPU. Prints steps/s.

Needs only torch, safetensors and matplotlib (runs on a bare GPU box). Usage:
    python benchmarks/device_smoke.py [steps]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from components.config import TrainConfig  # noqa: E402
from components.models import build_model  # noqa: E402
from components.models.io import load_checkpoint  # noqa: E402
from components.training.batches import image_batches, text_batches  # noqa: E402
from components.training.device import pick_device  # noqa: E402
from components.training.trainer import train  # noqa: E402


class _Images:
    def __init__(self, n=1797):
        self.images = torch.rand(n, 1, 8, 8) * 2 - 1
        self.labels = torch.randint(0, 10, (n,))


def main(steps: int = 200) -> None:
    device = pick_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}")
    cases = {
        "dcgan": (build_model("dcgan", {}), lambda: image_batches(_Images(), 64, lambda x: x, device), 64),
        "charlm": (build_model("charlm", {"block_size": 64, "n_layers": 2}),
                   lambda: text_batches(torch.randint(0, 256, (100_000,)), 64, 32, device), 32 * 64),
    }
    for family, (model, batches, items) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = train(model, batches(), TrainConfig(steps=steps, log_every=steps), Path(tmp), {}, 0, device)
            elapsed = time.perf_counter() - start
            loaded, _ = load_checkpoint(Path(result.checkpoint), device=str(device))
            out = loaded.sample(4, seed=0) if family == "dcgan" else loaded.sample(2, 0, prompt="The ", max_new_tokens=16)
            ok = torch.isfinite(out[0]).all().item() if family == "dcgan" else all(isinstance(t, str) for t in out)
            print(f"{family}: {steps} steps in {elapsed:.2f}s ({steps / elapsed:.1f} steps/s, "
                  f"{steps * items / elapsed:,.0f} {'images' if family == 'dcgan' else 'tokens'}/s), "
                  f"final loss {result.final_loss:.3f}, checkpoint reload + sample ok: {ok}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
