"""Sampling shared by the language models: temperature, top-k and top-p (nucleus)."""
from __future__ import annotations

import abc
import itertools
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Packing:
    """A network's incremental states packed across requests: rows whose sequences have
    different lengths decode their next token in one forward (the server's continuous
    batching; without it, each arrival's rows decode in a forward of their own).
    - `join(states)`: one state holding the rows of each (a `decode` state or a packed one),
      in order, in new tensors (never a view of the states given);
    - `step(idx (B, 1), state, lengths (B,))`: the logits after each row's newest token,
      which sits at position lengths[b] (the tokens its state holds), equal to `decode`'s
      for that row alone up to float rounding, and the state after it. It may write into
      the state it is given (the transformer does): pass only a state from `join` or `keep`;
    - `keep(state, rows)`: the state of those rows only (a LongTensor of row indices), in new
      tensors."""
    join: Callable[[list], Any]
    step: Callable[[torch.Tensor, Any, torch.Tensor], tuple[torch.Tensor, Any]]
    keep: Callable[[Any, torch.Tensor], Any]


@dataclass(frozen=True)
class Decoding:
    """How a language model produces next-token logits for sampling: the window it sees, the
    device its tokens live on, the recompute path `logits_fn` ((B, T) -> (B, T, V)) and, if
    it has one, the incremental `step_fn` (its network's `decode`) and the `packing` that
    decodes rows of different lengths together."""
    block_size: int
    device: Any
    logits_fn: Callable
    step_fn: StepFn | None = None
    packing: Packing | None = None


@dataclass(eq=False)
class TextJob:
    """One sampling request: n continuations of `prompt` drawn with the request's own seeded
    generator, so its text does not depend on what else is decoded beside it.
    `on_tokens(job, tokens)` is called after every step with the new token of each row;
    `cancel()` stops the job at the next step (its rows are dropped)."""
    n: int
    seed: int
    prompt: str = ""
    max_new_tokens: int = 100
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    on_tokens: Callable[["TextJob", list[int]], None] | None = None
    produced: int = 0
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.gen = torch.Generator().manual_seed(int(self.seed))
        self.start = encode(self.prompt or "\n")
        self.idx: torch.Tensor | None = None

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def done(self) -> bool:
        return self.cancelled or self.produced >= self.max_new_tokens

    def texts(self) -> list[str]:
        rows = self.idx.cpu() if self.idx is not None else torch.empty(self.n, 0, dtype=torch.long)
        return [decode(row[rows.shape[1] - self.produced:].tolist()) for row in rows]


class _Group:
    """Jobs admitted together whose sequences have the same length: their rows share one
    incremental state (KV cache / (h, c)) while the sequence fits in the window. Rows of a
    job that finished stay in the state (fed a dummy token) until the group ends: a state
    cannot drop rows without knowing its layout, and at most block_size steps are wasted."""

    def __init__(self, jobs: list[TextJob], state: Any, length: int):
        self.jobs, self.state, self.length = jobs, state, length


class _Pool:
    """Every row decoding through its incremental state, whatever its length, in one packed
    state (a network's `Packing`): one forward a step for all of them. A job leaves the pool
    (its rows dropped from the state) when it ends or its window would slide."""

    def __init__(self, packing: Packing, block_size: int):
        self.packing, self.block_size = packing, block_size
        self.jobs: list[TextJob] = []
        self.lengths: list[int] = []           # tokens each job's rows hold in the state
        self.state: Any = None

    def add(self, jobs: list[TextJob], state: Any, length: int) -> None:
        self.state = self.packing.join([state] if self.state is None else [self.state, state])
        self.jobs += jobs
        self.lengths += [length] * len(jobs)

    def leave(self) -> list[TextJob]:
        """Drop the jobs that ended and those whose next token would pass block_size; returns
        the latter (they go on from their window, decoded afresh each step)."""
        stay = [i for i, (j, n) in enumerate(zip(self.jobs, self.lengths)) if not j.done and n < self.block_size]
        if len(stay) == len(self.jobs):
            return []
        slid = [j for j, n in zip(self.jobs, self.lengths) if not j.done and n >= self.block_size]
        if stay:
            starts = [0, *itertools.accumulate(j.n for j in self.jobs)]
            rows = [r for i in stay for r in range(starts[i], starts[i + 1])]
            device = self.jobs[0].idx.device
            self.state = self.packing.keep(self.state, torch.tensor(rows, device=device))
        else:
            self.state = None
        self.jobs = [self.jobs[i] for i in stay]
        self.lengths = [self.lengths[i] for i in stay]
        return slid

    def step(self, before_forward: Callable[[int], None]) -> list[tuple[TextJob, torch.Tensor]]:
        """The next-token logits of every job in the pool, through one forward."""
        if not self.jobs:
            return []
        last = torch.cat([j.idx[:, -1:] for j in self.jobs]) if len(self.jobs) > 1 else self.jobs[0].idx[:, -1:]
        lengths = torch.tensor([n for j, n in zip(self.jobs, self.lengths) for _ in range(j.n)], device=last.device)
        before_forward(len(last))
        out, self.state = self.packing.step(last, self.state, lengths)
        self.lengths = [n + 1 for n in self.lengths]
        if len(self.jobs) == 1:
            return [(self.jobs[0], out)]
        return list(zip(self.jobs, torch.split(out, [j.n for j in self.jobs])))


class BatchDecoder:
    """Decodes many `TextJob`s at once, one token per job a step, continuous batching: jobs
    join (`add`) and leave (finished, cancelled) between steps. Each job's text equals what
    it gets decoded alone (`sample_text`), up to float rounding of the logits in a batch of
    another size: the same window, positions and state as alone, its own generator.

    A step computes each job's next-token logits the way `IncrementalLogits` does:
    - a new job: its prompt window decoded afresh (jobs of the same prompt length together);
      its state then joins the others';
    - jobs whose sequences still fit in block_size: only the newest token, through their
      state. With the network's `Packing` every such row, whatever its length, is in one
      packed state and one forward (`_Pool`); without it, each group of jobs admitted
      together has a forward of its own (`_Group`);
    - sequences past block_size (and every step of a model without `step_fn`): the last
      block_size tokens afresh, all such jobs of one window length in one forward; past
      the window every job has exactly block_size tokens, so they all batch together."""

    def __init__(self, decoding: Decoding, before_forward: Callable[[int], None] | None = None):
        self.d = decoding
        # called with a forward's row count just before it runs (the server picks torch's
        # thread count per forward: a step holds one large forward and several small ones)
        self.before_forward = before_forward or (lambda rows: None)
        self.groups: list[_Group] = []        # without a Packing
        self.pool = _Pool(decoding.packing, decoding.block_size) if decoding.packing else None
        self.windowed: list[TextJob] = []      # jobs decoded from their window afresh each step
        self.new: list[TextJob] = []
        self.jobs: list[TextJob] = []          # live: added, not yet finished or cancelled

    @property
    def rows(self) -> int:
        """Rows one step decodes (a finished job's rows count while its group lives)."""
        live = [g for g in self.groups if not all(j.done for j in g.jobs)]
        pooled = sum(j.n for j in self.pool.jobs if not j.done) if self.pool else 0
        return pooled + sum(j.n for g in live for j in g.jobs) + sum(j.n for j in self.windowed + self.new if not j.done)

    def add(self, jobs: list[TextJob]) -> None:
        for job in jobs:
            job.idx = job.start[-self.d.block_size:].unsqueeze(0).repeat(job.n, 1).to(self.d.device)
        self.new += [j for j in jobs if not j.done]
        self.jobs += [j for j in jobs if not j.done]

    def _by_length(self, jobs: list[TextJob]) -> dict[int, list[TextJob]]:
        out: dict[int, list[TextJob]] = {}
        for job in jobs:
            out.setdefault(min(job.idx.shape[1], self.d.block_size), []).append(job)
        return out

    def _windows(self, jobs: list[TextJob], keep_state: bool) -> list[tuple[TextJob, torch.Tensor]]:
        out = []
        for length, same in self._by_length(jobs).items():
            window = torch.cat([j.idx[:, -self.d.block_size:] for j in same])
            self.before_forward(len(window))
            if self.d.step_fn is None:
                logits, state = self.d.logits_fn(window)[:, -1], None
            else:
                logits, state = self.d.step_fn(window, None)
            if keep_state and state is not None and self.pool is not None:
                if length < self.d.block_size:
                    self.pool.add(same, state, length)
                else:                     # a prompt that fills the window: afresh from the next token
                    self.windowed += same
            elif keep_state and state is not None:
                self.groups.append(_Group(same, state, length))
            else:
                self.windowed += same
            out += list(zip(same, torch.split(logits, [j.n for j in same])))
        return out

    @staticmethod
    def _sample(logits: list[tuple[TextJob, torch.Tensor]]) -> list[tuple[TextJob, torch.Tensor, list[int]]]:
        """Each job's next tokens ((n, 1), and as ints), drawn with its own generator. Jobs with
        the same controls are filtered and softmaxed in one op (row by row, so each row's
        probabilities are the ones it gets alone); only the noise is drawn per job.

        The draw is an exponential race, argmax(p / E) with E ~ Exp(1) for every token (as in
        pytorch-labs/gpt-fast's `multinomial_sample_one_no_sync`): token i wins with
        probability p_i, the same distribution as torch.multinomial, but the argmax runs once
        for all jobs (a multinomial call per job took ~28 us; 32 of them were 7% of a step).
        A token filtered out (p = 0) cannot win: E is kept above 0, so its ratio is 0."""
        by_controls: dict[tuple, list[tuple[TextJob, torch.Tensor]]] = {}
        for job, rows in logits:
            by_controls.setdefault((job.temperature, job.top_k, job.top_p), []).append((job, rows))
        out = []
        for (temperature, top_k, top_p), same in by_controls.items():
            stacked = torch.cat([rows for _, rows in same]) if len(same) > 1 else same[0][1]
            probs = F.softmax(filter_logits(stacked.float().cpu(), temperature, top_k, top_p), -1)
            if not bool(torch.isfinite(probs).all()):       # a NaN would otherwise draw token 0
                raise ValueError("text sampling: the model gave non-finite logits (NaN or inf); "
                                 "its weights are broken: retrain or restore the checkpoint.")
            noise = [torch.empty(job.n, probs.shape[1]).exponential_(generator=job.gen) for job, _ in same]
            noise = torch.cat(noise) if len(noise) > 1 else noise[0]
            tokens = (probs / noise.clamp_min_(1e-30)).argmax(-1, keepdim=True)
            values, start = tokens.view(-1).tolist(), 0
            for (job, _), part in zip(same, torch.split(tokens, [job.n for job, _ in same])):
                out.append((job, part, values[start:start + job.n]))
                start += job.n
        return out

    @torch.no_grad()
    def step(self) -> list[TextJob]:
        """One token for every live job; returns the jobs that ended (finished or cancelled)."""
        ended = [j for j in self.jobs if j.cancelled]
        logits: list[tuple[TextJob, torch.Tensor]] = []
        if self.pool is not None:
            self.windowed += self.pool.leave()
            logits += self.pool.step(self.before_forward)
        groups, self.groups = self.groups, []
        for g in groups:
            if all(j.done for j in g.jobs):
                continue
            if g.length + 1 > self.d.block_size:           # the window slides: afresh from now on
                self.windowed += [j for j in g.jobs if not j.done]
                continue
            last = torch.cat([j.idx[:, -1:] for j in g.jobs])
            self.before_forward(len(last))
            out, g.state = self.d.step_fn(last, g.state)
            g.length += 1
            self.groups.append(g)
            logits += [(j, l) for j, l in zip(g.jobs, torch.split(out, [j.n for j in g.jobs])) if not j.done]
        windowed, self.windowed = [j for j in self.windowed if not j.done], []
        new, self.new = [j for j in self.new if not j.done], []
        logits += self._windows(windowed, keep_state=False)
        logits += self._windows(new, keep_state=self.d.step_fn is not None)
        for job, token, values in self._sample(logits):
            job.idx = torch.cat([job.idx, token.to(self.d.device)], 1)
            job.produced += 1
            if job.on_tokens is not None:
                try:
                    job.on_tokens(job, values)
                except Exception:                  # a listener that fails (a client gone) drops
                    job.cancel()                   # its own job, not the others
            if job.done:
                ended.append(job)
        self.jobs = [j for j in self.jobs if j not in ended]
        if self.pool is not None:                 # let go of the ended rows' state now
            self.windowed += self.pool.leave()
        return ended


@torch.no_grad()
def sample_text(logits_fn: Callable, block_size: int, device, n: int, seed: int, prompt: str = "",
                max_new_tokens: int = 100, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, *, step_fn: StepFn | None = None) -> list[str]:
    """n continuations of `prompt` (the prompt itself is not repeated in the output). With
    `step_fn` (a model's `decode`) each token is decoded incrementally (as `IncrementalLogits`
    does); without it the window is recomputed for every token. Both give the same logits to
    float rounding (~1e-6) and so, for a seed, the same text: a draw could only differ where
    that rounding moved the largest p / E (the exponential race, `BatchDecoder._sample`) to
    another token. This is a `BatchDecoder` with one job: the server decodes many at once
    through the same code."""
    job = TextJob(n, seed, prompt, max_new_tokens, temperature, top_k, top_p)
    decoder = BatchDecoder(Decoding(block_size, device, logits_fn, step_fn))
    decoder.add([job])
    while decoder.jobs:
        decoder.step()
    return job.texts()


class TextNet(torch.nn.Module, abc.ABC):
    """A language model's network: forward (B, T) bytes -> (B, T, V) logits for training and
    `logits`; `decode` for incremental sampling (a `StepFn`). A network without `decode`
    cannot be instantiated."""

    @abc.abstractmethod
    def decode(self, idx: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """`idx` (B, T) following the tokens `state` carries (None: from the start) -> the
        logits after the last of them (B, V), equal to forward's, and the state after idx."""

    def packing(self) -> Packing | None:
        """How this network's states pack rows of different lengths into one forward
        (`Packing`); None: each group of rows admitted together decodes on its own."""
        return None


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

    def decoding(self) -> Decoding:
        """For a `BatchDecoder` (the server's), with the network in eval mode (no dropout)."""
        if self.net.training:
            raise ValueError("decoding(): put the network in eval mode first (net.eval()); "
                             "in training mode dropout would change every token.")
        return Decoding(self.args.block_size, device_of(self.net), self.net, self.net.decode, self.net.packing())

    def sample(self, n: int, seed: int, *, prompt: str = "", max_new_tokens: int = 100,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list[str]:
        """n continuations of `prompt`; same seed, same text. Decoded incrementally through
        the network's `decode` (KV cache, carried state): the same text as recomputing the
        window for every token (`sample_text` without `step_fn`)."""
        with eval_mode(self.net):
            return sample_text(self.net, self.args.block_size, device_of(self.net), n, seed,
                               prompt, max_new_tokens, temperature, top_k, top_p, step_fn=self.net.decode)
