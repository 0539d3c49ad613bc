"""Metrics on Inception (or domain) features beyond FID: KID, precision/recall and
density/coverage (prdc), and a bootstrap interval for FID over the generated set."""
from __future__ import annotations

import numpy as np

from components.evaluation.fid import _sqrtm_psd, feature_stats, frechet_distance


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 50,
                              subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3, mean and std over
    random subsets (Bińkowski et al. 2018; the clean-fid / torchmetrics estimator).
    Written here because torchmetrics' KID takes images through its own extractor, and we
    reuse the features already computed for FID."""
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    m = min(subset_size, len(real), len(fake))
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray) -> dict:
    """prdc: precision and recall with k=3, density and coverage with k=5 (Naeem et al. 2020)."""
    import contextlib
    import io

    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):      # prdc prints "Num real: N Num fake: M" on every call
        pr = compute_prdc(real_features=real, fake_features=fake, nearest_k=3)
        dc = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    return {"precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "density": float(dc["density"]), "coverage": float(dc["coverage"])}


def fid_low_rank(fake: np.ndarray, mu_r: np.ndarray, root_r: np.ndarray, trace_r: float) -> float:
    """FID against a reference given by its mean, S_r^1/2 and tr(S_r).

    tr sqrt(S_r^1/2 S_g S_r^1/2) is the sum of sqrt eigenvalues of the n x n matrix
    (X R)(X R)^T / (n-1), X the centred generated features and R = S_r^1/2: with n
    generated samples below the feature dimension this equals frechet_distance's value,
    at a fraction of its cost, which makes a bootstrap affordable on CPU."""
    n = len(fake)
    mu = fake.mean(0)
    xc = fake - mu
    y = xc @ root_r
    eig = np.linalg.eigvalsh(y @ y.T / (n - 1))
    diff = mu - mu_r
    return float(diff @ diff + (xc * xc).sum() / (n - 1) + trace_r - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


def fid_bootstrap(fake: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray, rounds: int = 100,
                  seed: int = 0, level: float = 0.95) -> dict:
    """Bootstrap interval for FID over resamples (with replacement) of the generated set.

    Resampling repeats samples, which shifts FID upwards by far more than its spread (on
    random 2048-d features: +10%), so neither the percentile nor the basic interval covers
    the point estimate. We keep the bootstrap's spread and centre it on the estimate:
    FID +- half the central `level` range of the resampled values."""
    rng = np.random.default_rng(seed)
    root, trace_r = _sqrtm_psd(sigma_r), float(np.trace(sigma_r))
    point = fid_low_rank(fake, mu_r, root, trace_r)
    n = len(fake)
    values = [fid_low_rank(fake[rng.integers(0, n, n)], mu_r, root, trace_r) for _ in range(rounds)]
    q_low, q_high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    half = float((q_high - q_low) / 2)
    return {"fid": point, "low": point - half, "high": point + half, "half_width": half,
            "std": float(np.std(values)),
            "rounds": rounds, "level": level}

