"""GPU throughput of the project's trainer (issue 4): tokens/s and model FLOPs
utilisation (MFU) of the byte transformer in bf16, and images/s of the DCGAN.

MFU = (6 * N * tokens + 12 * layers * d_model * T * tokens) / step time / peak, N the
non-embedding parameters (PaLM appendix B); peak bf16 dense: H100 SXM 989 TFLOP/s,
H200 989 TFLOP/s. Times come from the trainer's own history after a warm-up (compile).
Usage: python benchmarks/gpu_throughput.py [--no-compile]
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from components.config import TrainConfig  # noqa: E402
from components.models import build_model  # noqa: E402
from components.training.batches import image_batches, text_batches  # noqa: E402
from components.training.device import pick_device  # noqa: E402
from components.training.trainer import train  # noqa: E402

PEAK = {"H100": 989e12, "H200": 989e12}


def rate(history: list[dict], items_per_step: int, skip: int) -> float:
    """items/s over the logged intervals after `skip` steps."""
    rows = [h for h in history if h["step"] > skip]
    first = [h for h in history if h["step"] <= skip][-1]
    steps = rows[-1]["step"] - first["step"]
    return steps * items_per_step / (rows[-1]["seconds"] - first["seconds"])


def main() -> None:
    compile_ = "--no-compile" not in sys.argv
    device = pick_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK.items() if k in name), None)
    print(f"device {name}, torch {torch.__version__}, compile={compile_}")
    args = {"block_size": 1024, "d_model": 1024, "n_layers": 12, "n_heads": 16, "dropout": 0.0}
    batch = 32
    model = build_model("charlm", args)
    n_params = sum(p.numel() for n, p in model.net.named_parameters() if not n.startswith(("tok", "pos")))
    tokens = torch.randint(0, 256, (5_000_000,))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(model, text_batches(tokens, 1024, batch, device),
                       TrainConfig(steps=60, lr=3e-4, log_every=10, compile=compile_), Path(tmp), {}, 0, device)
        history = json.loads(Path(result.history_path).read_text())
    tok_s = rate(history, batch * 1024, skip=20)
    flops_per_token = 6 * n_params + 12 * args["n_layers"] * args["d_model"] * args["block_size"]
    mfu = tok_s * flops_per_token / peak if peak else float("nan")
    print(f"transformer {n_params / 1e6:.0f}M non-embedding params, batch {batch}x1024 bf16: "
          f"{tok_s:,.0f} tokens/s, {tok_s * flops_per_token / 1e12:.0f} TFLOP/s, MFU {mfu:.1%}")

    class Images:
        images = torch.rand(60_000, 1, 8, 8) * 2 - 1
        labels = torch.randint(0, 10, (60_000,))
    for bs in (64, 1024):
        with tempfile.TemporaryDirectory() as tmp:
            result = train(build_model("dcgan", {}), image_batches(Images, bs, lambda x: x, device),
                           TrainConfig(steps=300, log_every=50), Path(tmp), {}, 0, device)
            history = json.loads(Path(result.history_path).read_text())
        print(f"dcgan batch {bs} (8x8, no compile): {rate(history, bs, skip=50):,.0f} images/s")


if __name__ == "__main__":
    main()
