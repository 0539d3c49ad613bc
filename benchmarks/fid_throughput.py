"""Issue 5 figures: FID feature-extraction throughput (uint8 images -> TF-style resize ->
scale -> Inception) against the bare TorchScript forward on the same, already prepared
batches, measured side by side (goal >= 0.95); and the wall time of the image evaluation
(FID + bootstrap + KID + PR/DC + domain FID) for 1,000 generated samples on this device.

Usage: .venv/bin/python benchmarks/fid_throughput.py [n_images] [--evaluate]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from components.evaluation.fid import (default_batch, inception_features, load_inception,  # noqa: E402
                                       tf_bilinear_resize)


def main(n: int = 256) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8)
    net = load_inception(device)
    batch = default_batch(device)               # the batch and layout inception_features uses
    layout = torch.channels_last if device == "cpu" else torch.contiguous_format
    prepared = [((tf_bilinear_resize(images[i:i + batch].float()).expand(-1, 3, -1, -1) - 128) / 128)
                .contiguous(memory_format=layout).to(device) for i in range(0, n, batch)]

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for x in prepared:
                net(x)
        return time.perf_counter() - start

    def ours() -> float:
        start = time.perf_counter()
        inception_features(images, device=device)
        return time.perf_counter() - start

    bare(), ours()                                           # warm-up
    b, o = [], []
    for _ in range(3):
        b.append(bare())
        o.append(ours())
    mb, mo = statistics.median(b), statistics.median(o)
    print(f"{device}: bare TorchScript {n / mb:.1f} images/s, genloop features {n / mo:.1f} images/s, "
          f"ratio {mb / mo:.3f}")
    if "--evaluate" not in sys.argv:
        return

    from components.config import RunConfig, build_dataclass
    from components.data.embedded import digits_png_files, write_dataset
    from components.data.images import load_image_folder
    from components.evaluation.run import evaluate_images
    from components.models import build_model
    from components.paths import ProjectPaths

    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(digits_png_files(), Path(tmp) / "digits")
        cfg = build_dataclass(RunConfig, {"evaluate": {"samples": 1000, "reference_samples": 1000}})
        data = load_image_folder(Path(tmp) / "digits", cfg.data.labels, 1)
        model = build_model("dcgan", {})
        for label in ("cold (reference statistics computed)", "warm (reference cached)"):
            start = time.perf_counter()
            metrics, _, _ = evaluate_images(data, cfg, model, "bench", ProjectPaths.at(tmp), Path(tmp), device)
            print(f"evaluate 1,000 samples, {label}: {time.perf_counter() - start:.1f}s "
                  f"(FID {metrics['fid']:.1f} of an untrained generator)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 256)
