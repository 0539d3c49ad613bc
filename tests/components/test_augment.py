import torch

from components.augment import char_noise, image_augmenter
from components.config import AugmentConfig


def _batch():
    return torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_shapes_and_range_are_preserved_and_images_change():
    x = _batch()
    y = image_augmenter(AugmentConfig(p=1.0))(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


def test_same_seed_same_batch():
    augment = image_augmenter(AugmentConfig())
    torch.manual_seed(7)
    a = augment(_batch())
    torch.manual_seed(7)
    b = augment(_batch())
    torch.manual_seed(8)
    c = augment(_batch())
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_disabled_is_identity():
    x = _batch()
    assert image_augmenter(AugmentConfig(enabled=False))(x) is x
    tokens = torch.randint(0, 256, (4, 16))
    assert char_noise(AugmentConfig(char_noise=0.0))(tokens, torch.Generator()) is tokens


def test_char_noise_replaces_about_the_configured_share():
    tokens = torch.zeros(64, 256, dtype=torch.long)
    noisy = char_noise(AugmentConfig(char_noise=0.1))(tokens, torch.Generator().manual_seed(0))
    share = (noisy != 0).float().mean().item()
    assert 0.08 < share < 0.12 and noisy.shape == tokens.shape
