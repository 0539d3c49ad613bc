"""Class-conditional DCGAN for small square images (side a power of two, >= 8)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from components.errors import GenloopError


@dataclass(frozen=True)
class Args:
    image_size: int = 8
    channels: int = 1
    num_classes: int = 10
    z_dim: int = 32
    width: int = 64          # channels of the widest layer
    spectral_norm: bool = False


def sample_labels(n: int, labels, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """The classes to generate: random ones, one class for all n, or one per sample."""
    if labels is None:
        return torch.randint(0, num_classes, (n,), generator=gen)
    labels = torch.as_tensor(labels, dtype=torch.long)
    return labels.expand(n) if labels.dim() == 0 else labels


class Generator(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.a = a
        self.n_up = int(math.log2(a.image_size)) - 1     # from 2x2
        self.embed = nn.Embedding(a.num_classes, a.z_dim)
        self.project = nn.Linear(2 * a.z_dim, a.width * 4)
        layers: list[nn.Module] = []
        ch = a.width
        for i in range(self.n_up):
            out = a.channels if i == self.n_up - 1 else max(ch // 2, 16)
            layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1))
            if i < self.n_up - 1:
                layers += [nn.BatchNorm2d(out), nn.ReLU(True)]
            ch = out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], 1)).view(-1, self.a.width, 2, 2)
        return torch.tanh(self.net(F.relu(h)))


class Discriminator(nn.Module):
    """Projection discriminator: logit = psi(h) + <embed(y), h>."""

    def __init__(self, a: Args):
        super().__init__()
        norm = nn.utils.spectral_norm if a.spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        ch, size = a.channels, a.image_size
        out = max(a.width // 2 ** (int(math.log2(a.image_size)) - 2), 16)
        while size > 2:
            layers += [norm(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            ch, out, size = out, min(out * 2, a.width), size // 2
        self.net = nn.Sequential(*layers, nn.Flatten())
        features = ch * 4
        self.psi = norm(nn.Linear(features, 1))
        self.embed = norm(nn.Embedding(a.num_classes, features))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        return self.psi(h).squeeze(1) + (self.embed(labels) * h).sum(1)


class Objective:
    modality = "image"
    metric = "fid"                     # lower is better
    ema_modules = ("generator",)       # the trainer keeps an EMA of these weights

    def __init__(self, args: Args):
        if args.image_size < 8 or args.image_size & (args.image_size - 1):
            raise GenloopError(f"dcgan: image_size must be a power of two >= 8, got {args.image_size}.")
        self.args = args
        self.generator = Generator(args)
        self.discriminator = Discriminator(args)

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def make_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.Adam(self.generator.parameters(), lr, betas=(0.5, 0.999)),
                "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr, betas=(0.5, 0.999))}

    def train_step(self, batch, optimizers, grad_clip: float = 0.0) -> dict[str, torch.Tensor]:
        real, labels = batch
        n = real.shape[0]
        z = torch.randn(n, self.args.z_dim, device=real.device)
        fake = self.generator(z, labels)
        # discriminator: non-saturating GAN loss
        d_loss = (F.softplus(-self.discriminator(real, labels)).mean()
                  + F.softplus(self.discriminator(fake.detach(), labels)).mean())
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(self.discriminator.parameters(), grad_clip)
        optimizers["discriminator"].step()
        # generator
        g_loss = F.softplus(-self.discriminator(fake, labels)).mean()
        optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(self.generator.parameters(), grad_clip)
        optimizers["generator"].step()
        return {"loss": g_loss.detach() + d_loss.detach(), "g_loss": g_loss.detach(),
                "d_loss": d_loss.detach()}

    @torch.no_grad()
    def sample(self, n: int, seed: int, labels=None, truncation: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """n images in [-1, 1] (N, C, H, W) and their class indices; same seed, same images."""
        self.generator.eval()
        device = next(self.generator.parameters()).device
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.args.z_dim, generator=gen) * float(truncation)
        labels = sample_labels(n, labels, self.args.num_classes, gen)
        images = self.generator(z.to(device), labels.to(device)).float().cpu()
        self.generator.train()
        return images, labels

    def describe(self) -> dict:
        return {"family": "dcgan", "args": asdict(self.args)}
