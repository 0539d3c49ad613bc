"""Sampling shared by the language models: temperature, top-k and top-p (nucleus)."""
from __future__ import annotations

import abc
from typing import Any, Callable

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


# (tokens, state or None) -> (next-token logits after the last token (B, V), state after them)
StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


class IncrementalLogits:
    """Next-token logits of a sequence that grows by one token a call, equal to the recompute
    path's `logits_fn(idx[:, -block_size:])[:, -1]` but through a model's `decode` (the
    transformer's KV cache, the LSTM's carried (h, c)): while the sequence fits in the window
    a call feeds only the newest token.

    Once the sequence is longer than block_size the window slides, and every call decodes
    the cropped window afresh, as the recompute path does. A carried state cannot follow a
    sliding window exactly: the transformer's learned absolute positions shift for every
    token (a rolling KV cache would keep each token's old position), and the LSTM's
    recompute starts each window from zero state. Being exact there costs a window per
    token, which is what the recompute path costs too; the saving is then only what
    `decode` skips (the head on every position but the last, and for the transformer the
    last layer's attention output and MLP for them)."""

    def __init__(self, step_fn: StepFn, block_size: int):
        self.step_fn, self.block_size = step_fn, block_size
        self.state: Any = None
        self.length = 0

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.state is not None and idx.shape[1] == self.length + 1 <= self.block_size:
            logits, self.state = self.step_fn(idx[:, -1:], self.state)
        else:                       # the start, a slid window, or a sequence that did not grow by one
            logits, self.state = self.step_fn(idx[:, -self.block_size:], None)
        self.length = idx.shape[1]
        return logits


@torch.no_grad()
def sample_text(logits_fn: Callable, block_size: int, device, n: int, seed: int, prompt: str = "",
                max_new_tokens: int = 100, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, *, step_fn: StepFn | None = None) -> list[str]:
    """n continuations of `prompt` (the prompt itself is not repeated in the output). With
    `step_fn` (a model's `decode`) each token is decoded incrementally (`IncrementalLogits`);
    without it the window is recomputed for every token. Both give the same logits to float
    rounding (~1e-6) and so, for a seed, the same text: a draw could only differ where that
    rounding moved a cumulative probability across the uniform number drawn."""
    gen = torch.Generator().manual_seed(int(seed))
    start = encode(prompt or "\n")[-block_size:]
    idx = start.unsqueeze(0).repeat(n, 1).to(device)
    if step_fn is not None:
        next_logits: Callable = IncrementalLogits(step_fn, block_size)
    else:
        def next_logits(idx: torch.Tensor) -> torch.Tensor:
            return logits_fn(idx[:, -block_size:])[:, -1]
    for _ in range(max_new_tokens):
        logits = next_logits(idx).float().cpu()
        probs = F.softmax(filter_logits(logits, temperature, top_k, top_p), -1)
        idx = torch.cat([idx, torch.multinomial(probs, 1, generator=gen).to(device)], 1)
    return [decode(row[len(start):].tolist()) for row in idx.cpu()]


class TextNet(torch.nn.Module, abc.ABC):
    """A language model's network: forward (B, T) bytes -> (B, T, V) logits for training and
    `logits`; `decode` for incremental sampling (a `StepFn`). A network without `decode`
    cannot be instantiated."""

    @abc.abstractmethod
    def decode(self, idx: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """`idx` (B, T) following the tokens `state` carries (None: from the start) -> the
        logits after the last of them (B, V), equal to forward's, and the state after idx."""


class LanguageModel(ModuleWeights):
    """Shared base of the neural byte-level LMs (`TrainedModel`, `ValidatingModel`,
    `TextSampler`): next-byte cross-entropy, AdamW, and the sampling controls. A family
    passes its network (a `TextNet`) to __init__; `sample` decodes incrementally through it."""
    modality = "text"
    metric = "perplexity"
    count_based = False
    validates = True
    ema_modules = ()

    def __init__(self, args, net: TextNet):
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
        """n continuations of `prompt`; same seed, same text. Decoded incrementally through
        the network's `decode` (KV cache, carried state): the same text as recomputing the
        window for every token (`sample_text` without `step_fn`)."""
        with eval_mode(self.net):
            return sample_text(self.net, self.args.block_size, device_of(self.net), n, seed,
                               prompt, max_new_tokens, temperature, top_k, top_p, step_fn=self.net.decode)
