import numpy as np
import pytest
import torch

from components.evaluation.fid import (feature_stats, frechet_distance, inception_features,
                                       reference_stats, tf_bilinear_resize)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 16))
    mu, sigma = feature_stats(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_matches_closed_form_for_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0, 2, 0])
    s1, s2 = np.diag([1.0, 2, 3, 4]), np.diag([4.0, 1, 1, 9])
    # closed form for commuting (diagonal) covariances
    expected = ((mu1 - mu2) ** 2).sum() + sum((np.sqrt(a) - np.sqrt(b)) ** 2
                                              for a, b in zip(np.diag(s1), np.diag(s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # and estimated from samples it comes close
    a = rng.multivariate_normal(mu1, s1, 200_000)
    b = rng.multivariate_normal(mu2, s2, 200_000)
    assert frechet_distance(*feature_stats(a), *feature_stats(b)) == pytest.approx(expected, rel=0.02)


def test_fid_is_order_invariant():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 8)), rng.normal(0.5, 1, size=(200, 8))
    assert frechet_distance(*feature_stats(a), *feature_stats(b)) == pytest.approx(
        frechet_distance(*feature_stats(a[::-1]), *feature_stats(b[rng.permutation(200)])))


def test_tf_bilinear_resize_keeps_constant_images_and_size():
    x = torch.full((2, 3, 8, 8), 77.0)
    y = tf_bilinear_resize(x)
    assert y.shape == (2, 3, 299, 299) and torch.allclose(y, torch.full_like(y, 77.0))


@pytest.mark.slow
def test_inception_features_and_reference_cache(tmp_path):
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    feats = inception_features(images)
    assert feats.shape == (4, 2048) and feats.dtype == np.float64 and np.isfinite(feats).all()
    mu, sigma, features, cached = reference_stats(images, "abc", tmp_path)
    assert not cached and mu.shape == (2048,) and np.allclose(features, feats)
    mu2, _, _, cached2 = reference_stats(images, "abc", tmp_path)
    assert cached2 and np.allclose(mu, mu2)


def test_resize_matches_tensorflow_legacy_bilinear_on_a_ramp():
    """TF1 resize_bilinear (align_corners=False, no half-pixel centres), the StyleGAN FID
    resize: output i samples input at i * in / out, clamped at the last pixel."""
    ramp = np.array([0.0, 10, 20, 40, 80, 160, 200, 255])
    expected = []
    for i in range(299):
        src = i * 8 / 299
        x0 = int(np.floor(src))
        x1, frac = min(x0 + 1, 7), src - x0
        expected.append((1 - frac) * ramp[x0] + frac * ramp[x1])
    x = torch.tensor(ramp, dtype=torch.float32).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    got = tf_bilinear_resize(x)[0, 0, 0].double().numpy()
    assert np.abs(got - np.array(expected)).max() < 1e-3


def test_fid_bootstrap_fast_path_equals_fid_and_brackets_it():
    from components.evaluation.fid import _sqrtm_psd
    from components.evaluation.image_metrics import fid_bootstrap, fid_low_rank, kernel_inception_distance

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 64)), rng.normal(0.3, 1, size=(40, 64))
    mu, sigma = feature_stats(real)
    exact = frechet_distance(*feature_stats(fake), mu, sigma)
    assert fid_low_rank(fake, mu, _sqrtm_psd(sigma), np.trace(sigma)) == pytest.approx(exact, rel=1e-6)
    interval = fid_bootstrap(fake, mu, sigma, rounds=30)
    assert interval["low"] < exact < interval["high"] and interval["half_width"] > 0
    same, _ = kernel_inception_distance(real, real[::-1].copy(), subsets=10, subset_size=50)
    shifted, _ = kernel_inception_distance(real, real + 1.0, subsets=10, subset_size=50)
    assert abs(same) < 0.05 < shifted


def _features_before_issue_11(images: torch.Tensor) -> np.ndarray:
    """inception_features as it was (NCHW, batches of 64): what FID must stay equal to."""
    from components.evaluation.fid import load_inception

    net, out = load_inception("cpu"), []
    with torch.inference_mode():
        for i in range(0, len(images), 64):
            x = tf_bilinear_resize(images[i:i + 64].float()).expand(-1, 3, -1, -1)
            out.append(net((x - 128.0) / 128.0).double().numpy())
    return np.concatenate(out)


@pytest.mark.slow
def test_the_fast_cpu_path_keeps_fid_to_1e_6_and_counts_on_the_open_meter():
    """channels-last, batches of 4 (components/evaluation/fid.py) against the old path, on
    digit-like images: FID equal to 1e-6 relative (benchmarks/inception_cpu.py checks 2x200)."""
    from components import progress
    from components.data.embedded import digits_png_files
    from io import BytesIO

    from PIL import Image

    pngs = [data for _, data in sorted(digits_png_files().items())[:20]]
    real = torch.from_numpy(np.stack([np.asarray(Image.open(BytesIO(b)).convert("L")) for b in pngs])).unsqueeze(1)
    fake = (real.float() + torch.randn(real.shape, generator=torch.Generator().manual_seed(0)) * 40
            ).clamp(0, 255).to(torch.uint8)
    with progress.meter("test", 2 * len(real), bar=False) as meter:
        now = [inception_features(x) for x in (real, fake)]
    assert meter.done == 2 * len(real)
    before = [_features_before_issue_11(x) for x in (real, fake)]
    assert np.abs(now[0] - before[0]).max() < 1e-4 * np.abs(before[0]).max()
    fid_now = frechet_distance(*feature_stats(now[1]), *feature_stats(now[0]))
    fid_before = frechet_distance(*feature_stats(before[1]), *feature_stats(before[0]))
    assert fid_before > 10 and abs(fid_now - fid_before) <= 1e-6 * fid_before
