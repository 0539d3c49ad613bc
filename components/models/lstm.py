"""LSTM byte-level language model, with the same controls as the transformer."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from components.data.text import VOCAB_SIZE
from components.models.textgen import LanguageModel, Packing, TextNet


@dataclass(frozen=True)
class Args:
    vocab_size: int = VOCAB_SIZE
    block_size: int = 64          # training window (and sampling context)
    d_model: int = 128
    hidden: int = 256
    n_layers: int = 2
    dropout: float = 0.1


State = tuple[torch.Tensor, torch.Tensor]     # (h, c), each (layers, B, hidden)


class LSTMLM(TextNet):
    def __init__(self, a: Args):
        super().__init__()
        self.embed = nn.Embedding(a.vocab_size, a.d_model)
        self.lstm = nn.LSTM(a.d_model, a.hidden, a.n_layers, batch_first=True,
                            dropout=a.dropout if a.n_layers > 1 else 0.0)
        self.head = nn.Linear(a.hidden, a.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(idx))
        return self.head(out)

    def decode(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Incremental decoding with the carried hidden state: `idx` (B, T) are the tokens after
        those `state` (h, c) summarises (None: zeros, the start of a window). Returns the
        next-byte logits after the last of them (B, V), equal to forward(all tokens)[:, -1],
        and the state after idx; one more token costs one step.

        The recompute path starts each window from zero state, so once a window slides the
        carried state (which has seen the dropped tokens) no longer matches it; the sampler
        (textgen.IncrementalLogits) then decodes the cropped window afresh."""
        out, state = self.lstm(self.embed(idx), state)
        return self.head(out[:, -1]), state

    def packing(self) -> Packing:
        """(h, c) does not depend on how many tokens a row has seen: rows of any lengths
        stack along the batch dimension and step together through `decode`."""
        return Packing(join=lambda states: tuple(torch.cat(parts, 1) for parts in zip(*states)),
                       step=lambda idx, state, lengths: self.decode(idx, state),
                       keep=lambda state, rows: tuple(part.index_select(1, rows) for part in state))


class Model(LanguageModel):
    family = "lstm"

    def __init__(self, args: Args):
        super().__init__(args, LSTMLM(args))
