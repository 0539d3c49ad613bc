"""Class-conditional DCGAN for small square images (side >= 8; a side that is not a power of
two is padded up to one inside the model, see models/lattice.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from components.models.base import (ModuleWeights, as_cpu_float, device_of, downsampling_stack, draw_latents,
                                    eval_mode, on_device, upsampling_stack)
from components.models.lattice import check_image_size, crop_to_image, network_size, pad_to_network


@dataclass(frozen=True)
class Args:
    image_size: int = 8
    channels: int = 1
    num_classes: int = 10
    z_dim: int = 32
    width: int = 64          # channels of the widest layer
    spectral_norm: bool = False


class Generator(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.a = a
        self.embed = nn.Embedding(a.num_classes, a.z_dim)
        self.project = nn.Linear(2 * a.z_dim, a.width * 4)
        self.net = upsampling_stack(a.width, a.channels, network_size(a.image_size), batch_norm=True)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], 1)).view(-1, self.a.width, 2, 2)
        return crop_to_image(torch.tanh(self.net(F.relu(h))), self.a.image_size)


class Discriminator(nn.Module):
    """Projection discriminator: logit = psi(h) + <embed(y), h>."""

    def __init__(self, a: Args):
        super().__init__()
        norm = nn.utils.spectral_norm if a.spectral_norm else (lambda m: m)
        size = network_size(a.image_size)
        first = max(a.width // 2 ** (int(math.log2(size)) - 2), 16)     # doubling reaches `width` at 2x2
        self.net, features = downsampling_stack(a.channels, first, a.width, size, norm)
        self.psi = norm(nn.Linear(features, 1))
        self.embed = norm(nn.Embedding(a.num_classes, features))
        self.image_size = a.image_size

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.net(pad_to_network(x, self.image_size))
        return self.psi(h).squeeze(1) + (self.embed(labels) * h).sum(1)


class Model(ModuleWeights):
    family = "dcgan"
    modality = "image"
    metric = "fid"
    count_based = False
    validates = False                  # a GAN's losses say little about sample quality
    ema_modules = ("generator",)

    def __init__(self, args: Args):
        check_image_size(self.family, args.image_size)
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

    def sample(self, n: int, seed: int, *, labels=None, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """n images in [-1, 1] (N, C, H, W) and their class indices; `temperature` scales the
        latent noise (below 1: the truncation trick). Same seed, same images."""
        z, labels = self.latents(n, seed, labels=labels, temperature=temperature)
        return self.render(z, labels), labels

    def latents(self, n: int, seed: int, *, labels=None, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        return draw_latents(self.args.z_dim, self.args.num_classes, n, seed, labels, temperature)

    @torch.no_grad()
    def render(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        device = device_of(self.generator)
        with eval_mode(self.generator):              # BatchNorm on running statistics: rows independent
            return as_cpu_float(self.generator(on_device(z, device), on_device(labels, device)))
