"""Sampling shared by the language models: temperature, top-k and top-p (nucleus)."""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from components.data.text import decode, encode
from components.models.base import ModuleWeights, device_of, eval_mode


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    logits = logits / max(float(temperature), 1e-5)
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        cumulative = F.softmax(ordered, -1).cumsum(-1)
        drop = cumulative - F.softmax(ordered, -1) >= top_p       # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return logits


@torch.no_grad()
def sample_text(logits_fn: Callable, block_size: int, device, n: int, seed: int, prompt: str = "",
                max_new_tokens: int = 100, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0) -> list[str]:
    """n continuations of `prompt` (the prompt itself is not repeated in the output)."""
    gen = torch.Generator().manual_seed(int(seed))
    start = encode(prompt or "\n")[-block_size:]
    idx = start.unsqueeze(0).repeat(n, 1).to(device)
    for _ in range(max_new_tokens):
        logits = logits_fn(idx[:, -block_size:])[:, -1].float().cpu()
        probs = F.softmax(filter_logits(logits, temperature, top_k, top_p), -1)
        idx = torch.cat([idx, torch.multinomial(probs, 1, generator=gen).to(device)], 1)
    return [decode(row[len(start):].tolist()) for row in idx.cpu()]


class LanguageModel(ModuleWeights):
    """Shared base of the neural byte-level LMs (`TrainedModel`, `ValidatingModel`,
    `TextSampler`): next-byte cross-entropy, AdamW, and the sampling controls. A family
    passes its network to __init__."""
    modality = "text"
    metric = "perplexity"
    count_based = False
    validates = True
    ema_modules = ()

    def __init__(self, args, net: torch.nn.Module):
        self.args = args
        self.net = net

    @property
    def sequence_limit(self) -> int:
        return self.args.block_size

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"net": self.net}

    def make_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.AdamW(self.net.parameters(), lr, weight_decay=0.01)}

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Inference: next-byte logits in eval mode (no dropout), whatever mode training left."""
        with eval_mode(self.net):
            return self.net(idx)

    def loss(self, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = self.net(x)
        return {"loss": F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))}

    def train_step(self, batch, optimizers, grad_clip: float = 0.0) -> dict[str, torch.Tensor]:
        loss = self.loss(batch)["loss"]
        optimizers["net"].zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), grad_clip)
        optimizers["net"].step()
        return {"loss": loss.detach()}

    def sample(self, n: int, seed: int, *, prompt: str = "", max_new_tokens: int = 100,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list[str]:
        """n continuations of `prompt`; same seed, same text."""
        with eval_mode(self.net):
            return sample_text(self.net, self.args.block_size, device_of(self.net), n, seed,
                               prompt, max_new_tokens, temperature, top_k, top_p)
