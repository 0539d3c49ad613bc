"""Image models at any side >= 8, on a power-of-two lattice.

The convolutional stacks (models/base.py) halve or double the side at every stage between
2x2 and the image, so they work on a power of two. An image of another side (28x28
Fashion-MNIST and MNIST) is padded up to the next power of two on the way in and the
network's output is cropped back on the way out. The data stays as it is on disk, so
everything that reads images (validation, FID against the files, drift monitoring, the
service) sees the real size, and FID is measured on the images papers measure.

Padding is the constant -1 (black): real and generated inputs get the same border, so it
tells a discriminator nothing, and it is the background of the MNIST family.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

PAD_VALUE = -1.0


def check_image_size(family: str, image_size: int) -> None:
    from components.errors import GenloopError

    if image_size < 8:
        raise GenloopError(f"{family}: model.args.image_size must be >= 8, got {image_size}.")


def network_size(image_size: int) -> int:
    """The power of two the network works at: image_size itself, or the next one up."""
    return 1 << (int(image_size) - 1).bit_length()


def _margins(image_size: int) -> tuple[int, int]:
    extra = network_size(image_size) - image_size
    return extra // 2, extra - extra // 2


def pad_to_network(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """(N, C, s, s) -> (N, C, n, n), n = network_size(s); unchanged when s == n."""
    before, after = _margins(image_size)
    return F.pad(x, (before, after, before, after), value=PAD_VALUE) if before or after else x


def crop_to_image(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """The inverse of pad_to_network: the centre (N, C, s, s) of a network output."""
    if network_size(image_size) == image_size:
        return x
    before, _ = _margins(image_size)
    return x[:, :, before:before + image_size, before:before + image_size]
