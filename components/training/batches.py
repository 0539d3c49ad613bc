"""Batch sources: a `next_batch(generator)` callable per modality."""
from __future__ import annotations

from typing import Callable


def image_batches(data, batch_size: int, augment: Callable, device) -> Callable:
    import torch

    images, labels = data.images, data.labels

    def next_batch(gen: "torch.Generator"):
        idx = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)
        return augment(images[idx].to(device)), labels[idx].to(device)

    return next_batch


def text_batches(tokens, block_size: int, batch_size: int, device, noise: Callable | None = None) -> Callable:
    """Random windows of the corpus (the text model's augmentation); `noise(inputs, gen)`
    perturbs the inputs only, the targets stay the true next bytes."""
    import torch

    from components.errors import GenloopError

    if tokens.numel() <= block_size + 1:
        raise GenloopError(f"corpus of {tokens.numel()} bytes is shorter than one training window "
                           f"({block_size + 1}); add text or lower model.args.block_size.")

    def next_batch(gen: "torch.Generator"):
        start = torch.randint(0, tokens.numel() - block_size - 1, (batch_size,), generator=gen)
        rows = torch.stack([tokens[s:s + block_size + 1] for s in start.tolist()])
        inputs = rows[:, :-1] if noise is None else noise(rows[:, :-1], gen)
        return inputs.to(device), rows[:, 1:].to(device)

    return next_batch
