"""Issue 11 figures: the FID Inception forward on CPU, in images/s and as a share of this
CPU's peak FLOP/s, for the ways of running it that matter (memory format, batch size,
a frozen graph), and the check that genloop's FID did not move: the features path before
(NCHW, batches of 64) and now, on the same images, FID equal to 1e-6 relative.

The peak: cores x clock x FP32 FLOP per cycle (2 FMA pipes x vector lanes x 2, from the
lscpu flags: 512-bit on AVX-512, 256-bit on AVX2), and the sgemm MKL reaches, for scale
(on this AMD CPU below what oneDNN's convolutions reach, so not a ceiling). Two 512-bit FMA
pipes is right for Zen 5 (this EPYC, CPU family 26) and two-FMA Xeons; Zen 4 and one-FMA
Xeons run half that, so there the share printed is too low by 2x.
The FLOP count of one 299x299 image is measured (torch's FlopCounterMode: 2 per multiply-add).

Usage: .venv/bin/python benchmarks/inception_cpu.py [--images N] [--repeats R] [--fid N] [--quick]
Timings taken while other work runs on the machine are noisy: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from components.evaluation import fid  # noqa: E402


def cpu_peak() -> dict:
    """Model, cores, clock and the theoretical FP32 peak from /proc/cpuinfo and its flags."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = {}
    for line in info.splitlines():
        if ":" in line:
            key, value = (s.strip() for s in line.split(":", 1))
            field.setdefault(key, value)
    flags = set(field.get("flags", "").split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = 2 * lanes * (2 if "fma" in flags else 1)      # 2 pipes x lanes x (mul+add)
    ghz = float(field.get("cpu MHz", "0") or 0) / 1000
    cores = os.cpu_count() or 1
    return {"model": field.get("model name", platform.processor()), "cores": cores, "ghz": ghz,
            "isa": "AVX-512" if lanes == 16 else "AVX2" if lanes == 8 else "SSE",
            "fma": "fma" in flags, "flop_per_cycle": per_cycle,
            "peak_gflops": cores * ghz * per_cycle}


def sgemm_gflops(n: int = 4096, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_image(net) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(2, 3, 299, 299))
    return counter.get_total_flops() / 2


def features_before(images_uint8: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """inception_features as it was before issue 11 (NCHW, batches of 64): the FID baseline."""
    net = fid.load_inception("cpu")
    out = []
    with torch.inference_mode():
        for i in range(0, images_uint8.shape[0], batch_size):
            x = fid.tf_bilinear_resize(images_uint8[i:i + batch_size].float())
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            out.append(net((x - 128.0) / 128.0).double().cpu().numpy())
    return np.concatenate(out)


def prepared(images: torch.Tensor, batch: int, channels_last: bool) -> list[torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return [((fid.tf_bilinear_resize(images[i:i + batch].float()).expand(-1, 3, -1, -1) - 128) / 128)
            .contiguous(memory_format=fmt) for i in range(0, len(images), batch)]


def throughput(args) -> None:
    peak = cpu_peak()
    net = fid.load_inception("cpu")
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.load(str(fid.inception_path())).eval()))
    flops = flops_per_image(net)
    gemm = sgemm_gflops()
    print(f"CPU: {peak['model']}, {peak['cores']} cores at {peak['ghz']:.2f} GHz, {peak['isa']}"
          f"{' + FMA' if peak['fma'] else ''}: peak {peak['peak_gflops']:.0f} GFLOP/s FP32 "
          f"({peak['flop_per_cycle']} FLOP/cycle/core); MKL sgemm 4096^2: {gemm:.0f} GFLOP/s (not a ceiling here); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"Inception-v3 (FID, 299x299): {flops / 1e9:.2f} GFLOP per image "
          f"({flops / 2e9:.2f} G multiply-adds)")
    images = torch.randint(0, 256, (args.images, 1, 8, 8), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    grid = [(64, False), (64, True), (4, False), (4, True)] + ([] if args.quick else [(1, True), (8, True), (16, True)])
    variants = {f"forward {'channels-last' if cl else 'NCHW         '} batch {batch:2d}": (net, prepared(images, batch, cl))
                for batch, cl in grid}
    if not args.quick:
        variants["frozen+optimize_for_inference, channels-last batch 4"] = (frozen, prepared(images, 4, True))
    runs = {name: [] for name in variants}
    ends = {"genloop before: resize + forward, NCHW batch 64": lambda: features_before(images),
            "genloop now: fid.inception_features         ": lambda: fid.inception_features(images)}
    runs.update({name: [] for name in ends})
    with torch.inference_mode():
        for model, batches in variants.values():
            model(batches[0][:2])                                   # warm-up
        for _ in range(args.repeats):                               # alternate, so drift hits all alike
            for name, (model, batches) in variants.items():
                start = time.perf_counter()
                for x in batches:
                    model(x)
                runs[name].append(len(images) / (time.perf_counter() - start))
            for name, fn in ends.items():
                start = time.perf_counter()
                fn()
                runs[name].append(len(images) / (time.perf_counter() - start))
    print(f"{args.images} images x {args.repeats} alternating repeats, median images/s:")
    for name, rates in runs.items():
        rate = statistics.median(rates)
        gflops = rate * flops / 1e9
        print(f"  {name}: {rate:6.2f} images/s = {gflops:4.0f} GFLOP/s = {gflops / peak['peak_gflops']:5.1%} "
              f"of peak   (runs: {', '.join(f'{r:.1f}' for r in rates)})")


def fid_check(n: int) -> None:
    """FID of n generated-like images (digits with noise) against n real digits: before vs now."""
    from components.data.embedded import digits_png_files
    from io import BytesIO

    from PIL import Image

    arrays = [np.asarray(Image.open(BytesIO(data)).convert("L")) for _, data in sorted(digits_png_files().items())]
    real = torch.from_numpy(np.stack(arrays[:n])).unsqueeze(1)
    gen = torch.Generator().manual_seed(1)
    fake = (torch.from_numpy(np.stack(arrays[n:2 * n])).unsqueeze(1).float()
            + torch.randn(n, 1, 8, 8, generator=gen) * 30).clamp(0, 255).to(torch.uint8)
    t = time.perf_counter()
    before = [features_before(x) for x in (real, fake)]
    t_before = time.perf_counter() - t
    t = time.perf_counter()
    now = [fid.inception_features(x) for x in (real, fake)]
    t_now = time.perf_counter() - t
    fid_before = fid.frechet_distance(*fid.feature_stats(before[1]), *fid.feature_stats(before[0]))
    fid_now = fid.frechet_distance(*fid.feature_stats(now[1]), *fid.feature_stats(now[0]))
    rel = abs(fid_now - fid_before) / fid_before
    feat = max(float(np.abs(a - b).max()) for a, b in zip(before, now))
    print(f"FID check, {n} noisy vs {n} real digits: before {fid_before:.9f} ({2 * n / t_before:.1f} images/s), "
          f"now {fid_now:.9f} ({2 * n / t_now:.1f} images/s); relative difference {rel:.2e} "
          f"({'OK' if rel <= 1e-6 else 'FAIL'}: <= 1e-6); largest feature difference {feat:.2e}")
    if rel > 1e-6:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images per timed pass (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fid", type=int, default=200, help="images per side of the FID check (0: skip)")
    parser.add_argument("--quick", action="store_true", help="batches of 64 and 4 only")
    args = parser.parse_args()
    if args.images:
        throughput(args)
    if args.fid:
        fid_check(args.fid)


if __name__ == "__main__":
    main()
