"""Text corpora: byte-level tokens (vocabulary 256, no tokenizer to version)."""
from __future__ import annotations

from pathlib import Path

from components.errors import GenloopError

VOCAB_SIZE = 256


def load_corpus(root: Path) -> str:
    """Every .txt file under `root` (sorted by path), joined by blank lines."""
    paths = sorted(Path(root).rglob("*.txt"))
    if not paths:
        raise GenloopError(f"no .txt files under {root}: run `genloop data init` or "
                           f"`genloop data add FILES --name NAME`.")
    return "\n\n".join(p.read_bytes().decode("utf-8") for p in paths)


def encode(text: str) -> "torch.Tensor":  # noqa: F821
    import torch

    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def decode(tokens) -> str:
    return bytes(int(t) for t in tokens).decode("utf-8", errors="replace")


def split_corpus(text: str, holdout_fraction: float) -> tuple[str, str]:
    """Train on the head, hold out the tail (cut at a line break)."""
    cut = int(len(text) * (1 - holdout_fraction))
    newline = text.rfind("\n", 0, cut)
    cut = newline + 1 if newline > 0 else cut
    return text[:cut], text[cut:]
