"""LSTM byte-level language model, with the same controls as the transformer."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from components.data.text import VOCAB_SIZE
from components.models.textgen import LanguageModel


@dataclass(frozen=True)
class Args:
    vocab_size: int = VOCAB_SIZE
    block_size: int = 64          # training window (and sampling context)
    d_model: int = 128
    hidden: int = 256
    n_layers: int = 2
    dropout: float = 0.1


class LSTMLM(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.embed = nn.Embedding(a.vocab_size, a.d_model)
        self.lstm = nn.LSTM(a.d_model, a.hidden, a.n_layers, batch_first=True,
                            dropout=a.dropout if a.n_layers > 1 else 0.0)
        self.head = nn.Linear(a.hidden, a.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(idx))
        return self.head(out)


class Model(LanguageModel):
    family = "lstm"

    def __init__(self, args: Args):
        super().__init__(args, LSTMLM(args))
