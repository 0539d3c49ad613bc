"""A fast domain feature extractor: a small MLP trained on the dataset's labels, cached
by dataset md5. Its penultimate layer gives the features of the FID-domain figure, its
predictions label generated samples in the bias audit."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class DomainClassifier(nn.Module):
    def __init__(self, pixels: int, classes: int, width: int = 128, features: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(pixels, width), nn.ReLU(),
                                  nn.Linear(width, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).argmax(1)


def _fit(images: torch.Tensor, labels: torch.Tensor, classes: int, steps: int = 600,
         seed: int = 0) -> tuple[DomainClassifier, float]:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)
    held = order[: len(images) // 10]
    train = order[len(images) // 10:]
    model = DomainClassifier(images[0].numel(), classes)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(steps):
        idx = train[torch.randint(0, len(train), (128,), generator=gen)]
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    accuracy = float((model.predict(images[held]) == labels[held]).float().mean())
    return model, accuracy


def domain_classifier(images: torch.Tensor, labels: torch.Tensor, classes: int, dataset_md5: str,
                      cache_dir: Path) -> tuple[DomainClassifier, dict]:
    """images float in [-1, 1]; trained once per dataset md5 and shape, then loaded."""
    from safetensors.torch import load_model, save_model

    cache_dir = Path(cache_dir)
    key = f"{dataset_md5}-{'x'.join(map(str, images.shape[1:]))}-{classes}"
    weights, meta_path = cache_dir / f"{key}.safetensors", cache_dir / f"{key}.json"
    model = DomainClassifier(images[0].numel(), classes)
    if weights.is_file() and meta_path.is_file():
        load_model(model, str(weights))
        model.eval()
        return model, {**json.loads(meta_path.read_text()), "cached": True}
    model, accuracy = _fit(images, labels, classes)
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta = {"heldout_accuracy": accuracy, "dataset_md5": dataset_md5}
    # weights, then the meta file a reader checks for, each whole under its own temp name:
    # sweep points on other processes may train and read it at the same time
    own = f"{os.getpid()}.{threading.get_ident()}.tmp"
    save_model(model, str(weights.with_name(f".{weights.name}.{own}")))
    os.replace(weights.with_name(f".{weights.name}.{own}"), weights)
    meta_path.with_name(f".{meta_path.name}.{own}").write_text(json.dumps(meta))
    os.replace(meta_path.with_name(f".{meta_path.name}.{own}"), meta_path)
    return model, {**meta, "cached": False}
