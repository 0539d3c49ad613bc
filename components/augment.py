"""Light augmentation, applied on the batch on the training device (kornia).

Flips stay off: digits are not symmetric. Text models augment by sampling random
windows of the corpus (see components/models/charlm.py), so nothing here for text.
"""
from __future__ import annotations

from components.config import AugmentConfig


def image_augmenter(cfg: AugmentConfig):
    """A callable batch -> batch on [-1, 1] images; identity when disabled."""
    if not cfg.enabled:
        return lambda x: x
    import kornia.augmentation as K
    import torch

    pipeline = K.AugmentationSequential(
        K.RandomAffine(degrees=cfg.degrees, translate=(cfg.translate, cfg.translate),
                       p=cfg.p, padding_mode="border"),
        K.RandomGaussianNoise(mean=0.0, std=cfg.noise_std, p=cfg.p),
    )

    def augment(x: torch.Tensor) -> torch.Tensor:
        # kornia works on [0, 1]; our tensors are [-1, 1]
        return (pipeline((x + 1) / 2) * 2 - 1).clamp(-1, 1)

    return augment
