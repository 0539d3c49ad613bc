"""The model interface, written down, and the helpers every family shares.

Every family module (dcgan.py, vae.py, charlm.py, lstm.py, ngram.py) defines `Args` (a
frozen dataclass of hyper-parameters) and `Model`, which satisfies one of two protocols:

- `TrainedModel`: fitted by an optimiser, step by step, in the one trainer
  (components/training/trainer.py);
- `CountedModel`: fitted by counting the training corpus once (the n-gram baseline).

`count_based` tells them apart (a class constant, not reflection), and every model also
samples as its modality says (`ImageSampler` or `TextSampler`). The rest of the code
reads these attributes and calls these methods; nothing asks a model what it has.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from components.models.textgen import Decoding


class GenerativeModel(Protocol):
    """Read-only members below are plain class attributes in each family."""
    args: Any                             # the family's frozen Args

    @property
    def family(self) -> str:
        """The config's model.family."""
        ...

    @property
    def modality(self) -> str:
        """What it generates, "image" or "text"; must match data.kind."""
        ...

    @property
    def metric(self) -> str:
        """The gate's metric, lower is better: "fid" (images) or "perplexity" (text)."""
        ...

    @property
    def count_based(self) -> bool:
        """False: a TrainedModel; True: a CountedModel."""
        ...

    def modules(self) -> dict[str, nn.Module]: ...
    def save_weights(self, path: Path) -> None: ...
    def load_weights(self, path: Path, device: str = "cpu") -> None: ...
    def describe(self) -> dict: ...


class TrainedModel(GenerativeModel, Protocol):
    """Fitted by `train_step` in the trainer. `validates` is True when the model is also a
    `ValidatingModel`: its loss on held-out batches is worth early stopping on (VAE and
    language models; a GAN's losses are not)."""
    @property
    def validates(self) -> bool: ...

    @property
    def ema_modules(self) -> tuple[str, ...]:
        """Modules the trainer keeps an EMA of and exports (empty: none)."""
        ...

    def make_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]: ...
    def train_step(self, batch, optimizers: dict, grad_clip: float = 0.0) -> dict[str, torch.Tensor]: ...


class ValidatingModel(TrainedModel, Protocol):
    def loss(self, batch) -> dict[str, torch.Tensor]:
        """{"loss": scalar, ...parts} on one batch, without a step."""
        ...


class CountedModel(GenerativeModel, Protocol):
    def fit(self, tokens: torch.Tensor) -> float:
        """Count the training tokens; returns the training bits per byte."""
        ...


# Sampling controls are keyword-only in the protocols: callers name them, and the static
# check (tests/models/protocol_conformance.py) then holds every family to these names.
class ImageSampler(Protocol):
    def sample(self, n: int, seed: int, *, labels=None,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """n images in [-1, 1] (N, C, H, W) and their class indices; `temperature` scales the
        latent noise (the one sampling knob of every image model). Same seed, same images.
        Equal to `render(*latents(...))`."""
        ...

    def latents(self, n: int, seed: int, *, labels=None,
                temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """What `sample` draws for a seed: the latent noise (N, z_dim) and the class indices."""
        ...

    def render(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] for latents and labels, each row on its own: the rows of several
        requests' latents rendered together are the images each would get alone (the
        server's batching relies on it)."""
        ...


class TextSampler(Protocol):
    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) bytes -> (B, T, 256) next-byte logits (or log-probabilities)."""
        ...

    @property
    def sequence_limit(self) -> int | None:
        """The longest input `logits` takes (None: any length); perplexity windows and the
        sampling context stay within it."""
        ...

    def sample(self, n: int, seed: int, *, prompt: str = "", max_new_tokens: int = 100,
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list[str]:
        """n continuations of `prompt` (the prompt itself is not repeated); same seed, same text."""
        ...

    def decoding(self) -> Decoding:
        """How `sample` gets its logits (window, device, recompute and incremental paths), for
        decoding many requests at once (textgen.BatchDecoder, the server's text engine)."""
        ...


# shared implementation ---------------------------------------------------------------------

class ModuleWeights:
    """Weights of a model made of nn.Modules (its `modules()`): one safetensors file,
    written and read by the same pair of calls (shared tensors such as tied embeddings
    are stored once and restored as shared)."""
    family: ClassVar[str]
    args: Any

    def save_weights(self, path: Path) -> None:
        from safetensors.torch import save_model

        save_model(nn.ModuleDict(self.modules()), str(path))

    def load_weights(self, path: Path, device: str = "cpu") -> None:
        from safetensors.torch import load_model

        load_model(nn.ModuleDict(self.modules()), str(path), device=device)

    def describe(self) -> dict:
        return {"family": self.family, "args": asdict(self.args)}


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Run with `modules` in eval mode, then put back the mode each had. A module already in
    eval mode throughout is left alone: toggling walks every submodule twice, 34 us for the
    8x8 DCGAN's generator, a tenth of its batch-1 forward in the server."""
    toggled = [(m, m.training) for m in modules if any(sub.training for sub in m.modules())]
    for m, _ in toggled:
        m.eval()
    try:
        yield
    finally:
        for m, training in toggled:
            m.train(training)


def on_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` on `device`, without a torch call when it is there already (`.to` dispatches even
    then; a served forward's few such no-ops cost ~10 us together, its caches cold)."""
    return x if x.device == device else x.to(device)


def as_cpu_float(x: torch.Tensor) -> torch.Tensor:
    """`x.float().cpu()`, without the calls that would change nothing."""
    if x.dtype != torch.float32:
        x = x.float()
    return x if x.device.type == "cpu" else x.cpu()


def device_of(module: nn.Module) -> torch.device:
    """The device of `module`'s first parameter. Looked up along first children before
    `parameters()` walks the whole tree (4 us for the 8x8 DCGAN's generator, per served
    forward)."""
    m = module
    while True:
        for p in m._parameters.values():
            if p is not None:
                return p.device
        children = m._modules
        if not children:
            break
        m = next(iter(children.values()))
        if m is None:
            break
    return next(module.parameters()).device


def sample_labels(n: int, labels, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """The classes to generate: random ones, one class for all n, or one per sample."""
    if labels is None:
        return torch.randint(0, num_classes, (n,), generator=gen)
    labels = torch.as_tensor(labels, dtype=torch.long)
    return labels.expand(n) if labels.dim() == 0 else labels


def draw_latents(z_dim: int, num_classes: int, n: int, seed: int, labels=None,
                 temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The latent noise and classes an image model samples for a seed (ImageSampler.latents)."""
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, z_dim, generator=gen)
    if float(temperature) != 1.0:                   # x * 1.0 is x: skip the op (a third of a served draw)
        z = z * float(temperature)
    return z, sample_labels(n, labels, num_classes, gen)


def request_labels(n: int, seed: int, label: str | None, class_names: list[str],
                   trained: list[str] | None = None):
    """The classes one service request generates: its `label`'s index, or, without a label,
    None (the model draws from all its classes) when it was trained on every class, else
    n draws among the classes its training data held (`trained`). A label that is not a
    class, or was not in the training data, is a ValueError that says which are."""
    trained = [c for c in (trained or class_names) if c in class_names]
    if label is not None:
        if label not in class_names:
            raise ValueError(f"label {label!r} is not a class of this model; valid labels: {', '.join(class_names)}.")
        if label not in trained:
            raise ValueError(f"label {label!r} was not in this model's training data; it was trained on "
                             f"{', '.join(trained)}.")
        return class_names.index(label)
    if len(trained) == len(class_names):
        return None
    gen = torch.Generator().manual_seed(int(seed))
    choices = torch.tensor([class_names.index(c) for c in trained])
    return choices[torch.randint(0, len(choices), (n,), generator=gen)]


def upsampling_stack(width: int, channels: int, image_size: int, batch_norm: bool) -> nn.Sequential:
    """From (width, 2, 2) to (channels, image_size, image_size): stride-2 transposed convs,
    halving the channels (at least 16) each time; ReLU (after BatchNorm if asked) between
    them, nothing after the last (the caller applies tanh)."""
    import math

    layers: list[nn.Module] = []
    n_up = int(math.log2(image_size)) - 1
    ch = width
    for i in range(n_up):
        out = channels if i == n_up - 1 else max(ch // 2, 16)
        layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1))
        if i < n_up - 1:
            layers += [nn.BatchNorm2d(out), nn.ReLU(True)] if batch_norm else [nn.ReLU(True)]
        ch = out
    return nn.Sequential(*layers)


def downsampling_stack(in_channels: int, first: int, width: int, image_size: int,
                       norm=lambda m: m) -> tuple[nn.Sequential, int]:
    """From (in_channels, image_size, image_size) down to 2x2: stride-2 convs with LeakyReLU,
    `first` channels doubling up to `width`, flattened. Returns (stack, output features)."""
    layers: list[nn.Module] = []
    ch, out, size = in_channels, first, image_size
    while size > 2:
        layers += [norm(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        ch, out, size = out, min(out * 2, width), size // 2
    return nn.Sequential(*layers, nn.Flatten()), ch * 4
