"""GPT-style byte-level language model: causal attention via scaled_dot_product_attention,
tied input/output embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from components.data.text import VOCAB_SIZE
from components.models.textgen import LanguageModel, Packing, TextNet


@dataclass(frozen=True)
class Args:
    vocab_size: int = VOCAB_SIZE
    block_size: int = 128
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    dropout: float = 0.1


KV = tuple[torch.Tensor, torch.Tensor]      # one layer's keys and values, (B, heads, T, head_dim)


class Block(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.n_heads, self.dropout = a.n_heads, a.dropout
        self.ln1, self.ln2 = nn.LayerNorm(a.d_model), nn.LayerNorm(a.d_model)
        self.qkv = nn.Linear(a.d_model, 3 * a.d_model)
        self.proj = nn.Linear(a.d_model, a.d_model)
        self.mlp = nn.Sequential(nn.Linear(a.d_model, 4 * a.d_model), nn.GELU(),
                                 nn.Linear(4 * a.d_model, a.d_model), nn.Dropout(a.dropout))

    def forward(self, x: torch.Tensor, past: KV | None = None,
                last_only: bool = False) -> tuple[torch.Tensor, KV]:
        """x: (B, T, C), the positions after the `past` keys and values (none: from position 0).
        Returns the block's output and the keys and values of past + x; with `last_only`, the
        output of the last position only (its keys and values still cover every position)."""
        b, t, c = x.shape
        q, k, v = (z.transpose(1, 2) for z in
                   self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, c // self.n_heads).unbind(2))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        if last_only:
            q, x = q[:, :, -1:], x[:, -1:]
        tq, tk = q.shape[2], k.shape[2]
        # each query sees the keys up to its own position: the causal triangle when queries and
        # keys are the same positions, every key for a single newest query, else the triangle
        # shifted by the cached length (is_causal aligns it top-left, which would be wrong)
        mask = None if tq in (1, tk) else torch.ones(tq, tk, dtype=torch.bool, device=x.device).tril(tk - tq)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=tq == tk and tq > 1,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, tq, c))
        return x + self.mlp(self.ln2(x)), (k, v)

    def step_rows(self, x: torch.Tensor, past: KV, lengths: torch.Tensor | int,
                  mask: torch.Tensor | None) -> torch.Tensor:
        """One new position per row, row b's at lengths[b]: x (B, 1, C); `past` the packed
        keys and values (B, heads, block_size, head_dim), written in place at those
        positions; `mask` (B, 1, 1, top + 1) the keys each row sees (its own, up to and with
        the new one; top: the longest row's position), or None when every row is at the same
        position (`lengths` is then that int). Returns the block's output there."""
        b, _, c = x.shape
        q, k, v = (z.transpose(1, 2) for z in
                   self.qkv(self.ln1(x)).view(b, 1, 3, self.n_heads, c // self.n_heads).unbind(2))
        if mask is None:                       # one position for all: a slice, no mask
            past[0][:, :, lengths] = k[:, :, 0]
            past[1][:, :, lengths] = v[:, :, 0]
            keys, values = past[0][:, :, :lengths + 1], past[1][:, :, :lengths + 1]
        else:
            rows = torch.arange(b, device=x.device)
            past[0][rows, :, lengths] = k[:, :, 0]
            past[1][rows, :, lengths] = v[:, :, 0]
            keys, values = past[0][:, :, :mask.shape[-1]], past[1][:, :, :mask.shape[-1]]
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, 1, c))
        return x + self.mlp(self.ln2(x))


class CharTransformer(TextNet):
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

    def _run(self, idx: torch.Tensor, past: list[KV] | None, last_only: bool) -> tuple[torch.Tensor, list[KV]]:
        start = past[0][0].shape[2] if past else 0
        x = self.tok(idx) + self.pos(torch.arange(start, start + idx.shape[1], device=idx.device))
        cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, past[i] if past else None, last_only and i == len(self.blocks) - 1)
            cache.append(kv)
        return self.head(self.ln(x)), cache

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self._run(idx, None, False)[0]

    def decode(self, idx: torch.Tensor, past: list[KV] | None = None) -> tuple[torch.Tensor, list[KV]]:
        """Incremental decoding with a KV cache: `idx` (B, T) are the tokens after those `past`
        holds (per layer, their keys and values; None: idx starts at position 0). Returns the
        next-byte logits after the last of them (B, V), equal to forward(all tokens)[:, -1],
        and the cache extended by idx. Only the last position goes through the last layer's
        attention output, MLP and the head.

        The positions are learned absolute embeddings, so the cache holds only while the
        sequence fits in block_size: once a window slides, every token's position changes and
        its keys and values with it. The sampler (textgen.IncrementalLogits) then decodes
        the cropped window afresh, exactly what the recompute path does; a rolling cache
        would keep stale positions and give other logits."""
        start = past[0][0].shape[2] if past else 0
        if start + idx.shape[1] > self.a.block_size:
            raise ValueError(f"charlm: {start} cached + {idx.shape[1]} new tokens exceed block_size "
                             f"{self.a.block_size}; decode the last {self.a.block_size} afresh.")
        logits, cache = self._run(idx, past, True)
        return logits[:, -1], cache

    def packing(self) -> Packing:
        """Packed KV caches: every row's keys and values in block_size slots per layer
        ((B, heads, block_size, head_dim), zeros past a row's length), so rows of different
        lengths take their next token in one forward. Each row's new token gets its own
        position embedding and attends to its own keys only (a mask over the slots), which is
        what `decode` computes for that row alone; the masked slots add exact zeros to the
        softmax, so the logits differ from decode's by float rounding only."""
        size = self.a.block_size

        def join(states: list[list[KV]]) -> list[KV]:
            return [tuple(torch.cat([F.pad(kv[i], (0, 0, 0, size - kv[i].shape[2])) for kv in layer])
                          for i in (0, 1)) for layer in zip(*states)]

        def step(idx: torch.Tensor, cache: list[KV], lengths: torch.Tensor) -> tuple[torch.Tensor, list[KV]]:
            low, top = int(lengths.min()), int(lengths.max())
            if top >= size:
                raise ValueError(f"charlm: a row already holds {top} tokens, the block_size; "
                                 f"decode its last {size} afresh.")
            # attention reads the slots up to the longest row's new position only; rows all at
            # one position (requests admitted together) need no mask
            where: torch.Tensor | int = lengths
            mask = None
            if low == top:
                where = top
            else:
                mask = (torch.arange(top + 1, device=idx.device) <= lengths.unsqueeze(1)).view(len(idx), 1, 1, top + 1)
            x = self.tok(idx) + self.pos(lengths).unsqueeze(1)
            for block, past in zip(self.blocks, cache):
                x = block.step_rows(x, past, where, mask)
            return self.head(self.ln(x))[:, -1], cache

        def keep(cache: list[KV], rows: torch.Tensor) -> list[KV]:
            return [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in cache]

        return Packing(join, step, keep)


class Model(LanguageModel):
    family = "charlm"

    def __init__(self, args: Args):
        super().__init__(args, CharTransformer(args))
