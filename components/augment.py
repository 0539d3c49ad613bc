"""Light augmentation, applied on the batch on the training device.

Images: a kornia pipeline (small affine, brightness/contrast, Gaussian noise; flips off
by default since digits are not symmetric), deterministic under the run seed because it
draws from torch's seeded generator. Text: random windows of the corpus (see
components/training/batches.py) and optional character noise on the inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from components.config import AugmentConfig


@dataclass(frozen=True)
class AugmentPlan:
    """What the augment stage hands to train: the transform, as plain data. Train applies
    it to every batch it draws (no augmented copies are written)."""
    kind: str                    # "image" | "text"
    config: AugmentConfig
    text_window: int = 0         # text: bytes per training window; 0: the model counts the whole split

    def image_transform(self) -> Callable:
        """batch -> augmented batch, on [-1, 1] images (identity when disabled)."""
        return image_augmenter(self.config)

    def text_noise(self) -> Callable:
        """(inputs, generator) -> inputs with `char_noise` of the bytes replaced."""
        return char_noise(self.config)

    def describe(self) -> str:
        a = self.config
        if self.kind == "text" and not self.text_window:
            return "none: the model counts the whole training split"
        if self.kind == "text":
            noise = f", char noise {a.char_noise}" if a.enabled and a.char_noise else ""
            return f"random {self.text_window}-byte windows{noise}"
        return (f"kornia {'on' if a.enabled else 'off'}: affine {a.degrees} deg/{a.translate}, "
                f"brightness/contrast {a.brightness}/{a.contrast}, noise {a.noise_std}, hflip {a.hflip}")


def image_augmenter(cfg: AugmentConfig):
    """A callable batch -> batch on [-1, 1] images of the same shape; identity when disabled."""
    if not cfg.enabled:
        return lambda x: x
    import kornia.augmentation as K
    import torch

    transforms = [
        K.RandomAffine(degrees=cfg.degrees, translate=(cfg.translate, cfg.translate), p=cfg.p,
                       padding_mode="border"),
        K.RandomBrightness(brightness=(1 - cfg.brightness, 1 + cfg.brightness), p=cfg.p),
        K.RandomContrast(contrast=(1 - cfg.contrast, 1 + cfg.contrast), p=cfg.p),
        K.RandomGaussianNoise(mean=0.0, std=cfg.noise_std, p=cfg.p),
    ]
    if cfg.hflip:
        transforms.append(K.RandomHorizontalFlip(p=cfg.p))
    pipeline = K.AugmentationSequential(*transforms)

    def augment(x: torch.Tensor) -> torch.Tensor:
        # kornia works on [0, 1]; our tensors are [-1, 1]
        return (pipeline((x + 1) / 2).clamp(0, 1) * 2 - 1).to(x.dtype)

    return augment


def char_noise(cfg: AugmentConfig):
    """inputs (B, T) byte tokens -> the same with a `char_noise` share replaced at random."""
    if not cfg.enabled or cfg.char_noise <= 0:
        return lambda x, gen: x
    import torch

    def noisy(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        mask = torch.rand(x.shape, generator=gen) < cfg.char_noise
        return torch.where(mask.to(x.device), torch.randint(32, 127, x.shape, generator=gen).to(x.device), x)

    return noisy
