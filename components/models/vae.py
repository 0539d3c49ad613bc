"""Class-conditional convolutional VAE trained on the ELBO (reconstruction + beta * KL).

Any side >= 8: a side that is not a power of two is padded up to one on the way into the
encoder and the decoder's output cropped back (models/lattice.py).

Controls: sampling temperature (scales the prior's standard deviation) and interpolation
between two latents (seeds) or two input images.
"""
from __future__ import annotations

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
    z_dim: int = 16
    width: int = 64
    beta: float = 1.0


class Encoder(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.net, features = downsampling_stack(a.channels + a.num_classes, 32, a.width, network_size(a.image_size))
        self.stats = nn.Linear(features, 2 * a.z_dim)
        self.image_size = a.image_size

    def forward(self, x, onehot):
        x = pad_to_network(x, self.image_size)
        cond = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])
        mu, logvar = self.stats(self.net(torch.cat([x, cond], 1))).chunk(2, 1)
        return mu, logvar.clamp(-10, 10)


class Decoder(nn.Module):
    def __init__(self, a: Args):
        super().__init__()
        self.a = a
        self.project = nn.Linear(a.z_dim + a.num_classes, a.width * 4)
        self.net = upsampling_stack(a.width, a.channels, network_size(a.image_size), batch_norm=False)

    def forward(self, z, onehot):
        h = F.relu(self.project(torch.cat([z, onehot], 1))).view(-1, self.a.width, 2, 2)
        return crop_to_image(torch.tanh(self.net(h)), self.a.image_size)


class Model(ModuleWeights):
    family = "vae"
    modality = "image"
    metric = "fid"
    count_based = False
    validates = True
    ema_modules = ()

    def __init__(self, args: Args):
        check_image_size(self.family, args.image_size)
        self.args = args
        self.encoder, self.decoder = Encoder(args), Decoder(args)

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def make_optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return {"vae": torch.optim.Adam(params, lr)}

    def _onehot(self, labels):
        return F.one_hot(labels, self.args.num_classes).float()

    def loss(self, batch) -> dict[str, torch.Tensor]:
        x, labels = batch
        onehot = self._onehot(labels)
        mu, logvar = self.encoder(x, onehot)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.decoder(z, onehot)
        # Gaussian likelihood on [-1, 1] pixels (sum over pixels, mean over the batch)
        rec = F.mse_loss(recon.float(), x.float(), reduction="sum") / x.shape[0]
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        return {"loss": rec + self.args.beta * kl, "recon": rec, "kl": kl}

    def train_step(self, batch, optimizers, grad_clip: float = 0.0) -> dict[str, torch.Tensor]:
        losses = self.loss(batch)
        opt = optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if grad_clip:
            nn.utils.clip_grad_norm_([p for m in self.modules().values() for p in m.parameters()], grad_clip)
        opt.step()
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        device = device_of(self.decoder)
        with eval_mode(self.decoder):
            return as_cpu_float(self.decoder(on_device(z, device), self._onehot(on_device(labels, device))))

    def sample(self, n: int, seed: int, *, labels=None, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """n images in [-1, 1] and their class indices; `temperature` scales the prior's
        standard deviation (0: the prior mean). Same seed, same images."""
        z, labels = self.latents(n, seed, labels=labels, temperature=temperature)
        return self.render(z, labels), labels

    def latents(self, n: int, seed: int, *, labels=None, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        return draw_latents(self.args.z_dim, self.args.num_classes, n, seed, labels, temperature)

    def render(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.decode(z, labels)

    @torch.no_grad()
    def interpolate(self, steps: int, label: int, seeds: tuple[int, int] | None = None,
                    images: torch.Tensor | None = None) -> torch.Tensor:
        """`steps` images along the line between two latents: from two seeds, or the
        posterior means of two input images (2, C, H, W) in [-1, 1]."""
        labels = torch.full((2,), int(label))
        if images is not None:
            device = device_of(self.encoder)
            with eval_mode(self.encoder):
                ends, _ = self.encoder(images.to(device), self._onehot(labels.to(device)))
            ends = ends.cpu()
        else:
            a, b = seeds or (0, 1)
            ends = torch.stack([torch.randn(self.args.z_dim, generator=torch.Generator().manual_seed(s))
                                for s in (a, b)])
        t = torch.linspace(0, 1, steps).unsqueeze(1)
        z = (1 - t) * ends[0] + t * ends[1]
        return self.decode(z, torch.full((steps,), int(label)))
