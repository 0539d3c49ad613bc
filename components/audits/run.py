"""The audit stage's work: bias and memorisation, each pass/fail with its reason."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from components.config import RunConfig
from components.paths import ProjectPaths

if TYPE_CHECKING:
    from components.models.base import ImageSampler, TextSampler


def audit_images(data, cfg: RunConfig, model: ImageSampler, dataset_md5: str, paths: ProjectPaths) -> tuple[dict, dict]:
    from components.audits.bias import class_share_audit
    from components.audits.memorisation import image_memorisation
    from components.data.images import to_uint8
    from components.evaluation.run import domain_model

    a = cfg.audit
    classifier, _ = domain_model(data, cfg, dataset_md5, paths)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    requested = data.labels[torch.randint(0, len(data.labels), (a.samples,), generator=gen)]
    fake, requested = model.sample(a.samples, cfg.seed + 2, labels=requested)
    bias = class_share_audit(classifier.predict(fake).numpy(), requested.numpy(), data.labels.numpy(),
                             len(cfg.data.labels), a.max_class_tv)
    memo = image_memorisation(to_uint8(fake).numpy() / 255.0, to_uint8(data.images).numpy() / 255.0,
                              a.max_copy_share, seed=cfg.seed)
    return bias, memo


def audit_text(train_text: str, cfg: RunConfig, model: TextSampler) -> tuple[dict, dict]:
    from components.audits.bias import representation, sentiment_gap_audit
    from components.audits.memorisation import text_memorisation

    a = cfg.audit

    def sample_fn(prompt, n, seed):
        return model.sample(n, seed, prompt=prompt, max_new_tokens=a.max_new_tokens)

    bias = sentiment_gap_audit(sample_fn, a.groups, a.templates, a.continuations_per_prompt,
                               a.max_new_tokens, a.max_sentiment_gap, cfg.seed)
    free = model.sample(8, cfg.seed + 3, prompt="\n", max_new_tokens=max(a.max_new_tokens, 200))
    bias["representation"] = representation(free, a.groups)
    memo = text_memorisation(free, train_text, a.max_copy_share)
    return bias, memo
