"""A run's dataset as tensors or text, read from its dataset folder as the config says."""
from __future__ import annotations

from components.data.images import ImageData


def run_images(ctx) -> ImageData:
    """The image dataset of a RunContext (class folders of PNGs)."""
    from components.data.images import load_image_folder

    cfg = ctx.config.data
    return load_image_folder(ctx.dataset_dir, cfg.labels, cfg.channels)


def run_text(ctx) -> tuple[str, str]:
    """(training text, held-out tail) of a RunContext's corpus."""
    from components.data.text import load_corpus, split_corpus

    return split_corpus(load_corpus(ctx.dataset_dir), ctx.config.data.holdout_fraction)
