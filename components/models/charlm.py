"""GPT-style byte-level language model: causal attention via scaled_dot_product_attention,
tied input/output embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from components.data.text import VOCAB_SIZE
from components.models.textgen import LanguageModel


@dataclass(frozen=True)
class Args:
    vocab_size: int = VOCAB_SIZE
    block_size: int = 128
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    dropout: float = 0.1


class Block(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.n_heads, self.dropout = a.n_heads, a.dropout
        self.ln1, self.ln2 = nn.LayerNorm(a.d_model), nn.LayerNorm(a.d_model)
        self.qkv = nn.Linear(a.d_model, 3 * a.d_model)
        self.proj = nn.Linear(a.d_model, a.d_model)
        self.mlp = nn.Sequential(nn.Linear(a.d_model, 4 * a.d_model), nn.GELU(),
                                 nn.Linear(4 * a.d_model, a.d_model), nn.Dropout(a.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, c // self.n_heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.a = a
        self.tok = nn.Embedding(a.vocab_size, a.d_model)
        self.pos = nn.Embedding(a.block_size, a.d_model)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.n_layers))
        self.ln = nn.LayerNorm(a.d_model)
        self.head = nn.Linear(a.d_model, a.vocab_size, bias=False)
        self.head.weight = self.tok.weight          # weight tying
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


class Model(LanguageModel):
    family = "charlm"

    def __init__(self, args: Args):
        super().__init__(args, CharTransformer(args))
