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


def batch_source(ctx, model, plan, batch_size: int, device) -> Callable:
    """The training batches of a run: augmented images (checked against the model's shape)
    or (noisy) random text windows of the training split."""
    from components.data.loaders import run_images, run_text
    from components.errors import GenloopError

    if model.modality == "image":
        data = run_images(ctx)
        a = model.args
        if tuple(data.images.shape[1:]) != (a.channels, a.image_size, a.image_size):
            raise GenloopError(f"images are {tuple(data.images.shape[1:])} but the model expects "
                               f"({a.channels}, {a.image_size}, {a.image_size}); fix model.args or data.")
        return image_batches(data, batch_size, plan.image_transform(), device)
    from components.data.text import encode
    return text_batches(encode(run_text(ctx)[0]), plan.text_window, batch_size, device, plan.text_noise())


def heldout_batches(ctx, model, batch_size: int, device, count: int = 8) -> list:
    """Fixed batches for a validation loss: held-out text windows (language models), or
    un-augmented training images (VAE)."""
    import torch

    from components.data.loaders import run_images, run_text

    gen = torch.Generator().manual_seed(12345)
    if model.modality == "text":
        from components.data.text import encode
        next_batch = text_batches(encode(run_text(ctx)[1]), model.args.block_size, batch_size, device)
    else:
        next_batch = image_batches(run_images(ctx), batch_size, lambda x: x, device)
    return [next_batch(gen) for _ in range(count)]
