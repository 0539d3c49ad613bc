"""Count-based byte n-gram language model (order <= 3): a linear interpolation of an
add-one (Laplace) unigram and add-k bigram and trigram estimates, the weights renormalised
where a position has no trigram context (the first byte of a window). The baseline every
neural LM must beat.

No gradient training: `fit(tokens)` counts the training corpus once (a `CountedModel`).
Only the trigrams seen are stored (sparse keys and counts); they are expanded to a dense
256x256x256 table in memory when the model is first queried.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from components.data.text import VOCAB_SIZE
from components.errors import GenloopError
from components.models.textgen import Decoding, sample_text

V = VOCAB_SIZE


@dataclass(frozen=True)
class Args:
    order: int = 3
    add_k: float = 0.01
    weights: tuple[float, ...] = (0.1, 0.3, 0.6)      # unigram, bigram, trigram
    block_size: int = 8                               # context used when sampling


class Model:
    family = "ngram"
    modality = "text"
    metric = "perplexity"
    count_based = True
    sequence_limit = None          # position-independent: any window length

    def __init__(self, args: Args):
        if not 1 <= args.order <= 3 or len(args.weights) < args.order:
            raise GenloopError("ngram: order must be 1..3 with one weight per order.")
        self.args = args
        self.uni = torch.zeros(V)
        self.bi = torch.zeros(V, V)
        self.tri_keys = torch.zeros(0, dtype=torch.int64)
        self.tri_counts = torch.zeros(0)
        self._tables = None

    # counting -------------------------------------------------------------------------
    def fit(self, tokens: torch.Tensor) -> float:
        """Count the corpus; returns the training bits per byte."""
        t = tokens.long().cpu()
        self.uni = torch.bincount(t, minlength=V).float()
        self.bi = torch.bincount(t[:-1] * V + t[1:], minlength=V * V).float().view(V, V)
        tri = torch.bincount(t[:-2] * V * V + t[1:-1] * V + t[2:], minlength=V ** 3)
        self.tri_keys = tri.nonzero().squeeze(1)
        self.tri_counts = tri[self.tri_keys].float()
        self._tables = None
        return self.nll(t) / torch.log(torch.tensor(2.0)).item()

    def _dense(self):
        if self._tables is None:
            k = self.args.add_k
            p1 = (self.uni + 1) / (self.uni.sum() + V)
            p2 = (self.bi + k) / (self.bi.sum(1, keepdim=True) + V * k)
            tri = torch.zeros(V ** 3)
            tri[self.tri_keys] = self.tri_counts
            tri = tri.view(V, V, V)
            p3 = (tri + k) / (tri.sum(2, keepdim=True) + V * k)
            self._tables = (p1, p2, p3)
        return self._tables

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) bytes -> (B, T, 256) log-probabilities of the next byte."""
        p1, p2, p3 = self._dense()
        idx = idx.long().cpu()
        w1, w2, w3 = (list(self.args.weights) + [0.0, 0.0])[:3]
        w2, w3 = (w2 if self.args.order >= 2 else 0.0), (w3 if self.args.order >= 3 else 0.0)
        probs = w1 * p1.expand(*idx.shape, V).clone()
        weight = torch.full(idx.shape, w1)
        if w2:
            probs += w2 * p2[idx]
            weight += w2
        if w3:
            prev = torch.cat([idx[:, :1], idx[:, :-1]], 1)            # byte before the last one
            has = torch.zeros(idx.shape, dtype=torch.bool)
            has[:, 1:] = True                                           # position 0 has no trigram context
            probs += torch.where(has.unsqueeze(-1), w3 * p3[prev, idx], torch.zeros(()))
            weight += w3 * has
        return torch.log(probs / weight.unsqueeze(-1))

    def nll(self, tokens: torch.Tensor) -> float:
        lp = self.logits(tokens[:-1].unsqueeze(0))[0]
        return -lp.gather(1, tokens[1:].unsqueeze(1)).mean().item()

    # the model interface (components/models/base.py: CountedModel, TextSampler) -------------
    def modules(self) -> dict[str, nn.Module]:
        return {}                  # plain count tables, always on the CPU

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"uni": self.uni, "bi": self.bi, "tri_keys": self.tri_keys, "tri_counts": self.tri_counts}

    def save_weights(self, path: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self._tensors().items()}, str(path))

    def load_weights(self, path: Path, device: str = "cpu") -> None:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        missing = self._tensors().keys() - tensors.keys()
        if missing:
            raise ValueError(f"missing tensors {sorted(missing)}")
        self.uni, self.bi = tensors["uni"], tensors["bi"]
        self.tri_keys, self.tri_counts = tensors["tri_keys"], tensors["tri_counts"]
        self._tables = None

    def decoding(self) -> Decoding:
        return Decoding(self.args.block_size, "cpu", self.logits)

    def sample(self, n: int, seed: int, *, prompt: str = "", max_new_tokens: int = 100,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list[str]:
        return sample_text(self.logits, self.args.block_size, "cpu", n, seed, prompt,
                           max_new_tokens, temperature, top_k, top_p)

    def describe(self) -> dict:
        return {"family": self.family, "args": asdict(self.args)}
