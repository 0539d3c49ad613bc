"""The stages of the retraining loop. Each takes the run context (paths, hashes, config
as plain data) and returns a JSON-able dict with the stage's key `figure` and the
`files` it wrote; the Prefect flow only calls these in order."""
from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path

from components.config import RunConfig
from components.errors import GenloopError
from components.runs import config_of, provenance

log = logging.getLogger(__name__)


class ValidationFailed(GenloopError):
    pass


def timed(stage):
    """Add the stage's wall time to its result (shown in the run summary)."""
    @functools.wraps(stage)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = stage(*args, **kwargs)
        return {**result, "seconds": round(time.perf_counter() - start, 2)}
    return wrapper


def _write_json(path: Path, payload) -> str:
    path.write_text(json.dumps(payload, indent=2, default=str))
    return str(path)


@timed
def validate(ctx: dict) -> dict:
    from components.validation.run import validate_dataset

    cfg = config_of(ctx)
    report = validate_dataset(Path(ctx["dataset_dir"]), cfg, Path(ctx["run_dir"]) / "validation")
    if not report.success:
        raise ValidationFailed(f"data validation failed for {ctx['dataset_dir']}; nothing was trained "
                               f"or promoted.\n{report.summary()}\nReport: {report.json_path}\n"
                               f"Data Docs: {report.docs_path}")
    return {"figure": report.summary(), "files": [report.json_path, report.docs_path]}


def _load_images(ctx: dict, cfg: RunConfig):
    from components.data.images import load_image_folder

    return load_image_folder(Path(ctx["dataset_dir"]), cfg.data.labels, cfg.data.channels)


def _load_text(ctx: dict, cfg: RunConfig) -> tuple[str, str]:
    from components.data.text import load_corpus, split_corpus

    return split_corpus(load_corpus(Path(ctx["dataset_dir"])), cfg.data.holdout_fraction)


def save_grid(images_uint8, path: Path, columns: int = 10, scale: int = 4, pad: int = 1) -> str:
    """A PNG grid of (N, C, H, W) uint8 images, `pad` grey pixels between tiles."""
    import numpy as np
    from PIL import Image

    n, c, h, w = images_uint8.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 96, dtype=np.uint8)
    for i, img in enumerate(images_uint8.permute(0, 2, 3, 1).numpy()):
        r, k = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = img
    picture = Image.fromarray(grid.squeeze(-1) if c == 1 else grid)
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)
    return str(path)


@timed
def augment(ctx: dict) -> dict:
    cfg = config_of(ctx)
    if cfg.data.kind == "text":
        noise = f", char noise {cfg.augment.char_noise}" if cfg.augment.enabled and cfg.augment.char_noise else ""
        return {"figure": f"random {cfg.model.args.get('block_size', 'model')}-byte windows{noise}", "files": []}
    import torch

    from components.augment import image_augmenter
    from components.data.images import to_uint8

    data = _load_images(ctx, cfg)
    torch.manual_seed(cfg.seed)
    batch = data.images[:50]
    preview = torch.cat([batch, image_augmenter(cfg.augment)(batch)])
    path = save_grid(to_uint8(preview), Path(ctx["run_dir"]) / "augment_preview.png")
    state = "on" if cfg.augment.enabled else "off"
    a = cfg.augment
    return {"figure": f"kornia {state}: affine {a.degrees} deg/{a.translate}, brightness/contrast "
                      f"{a.brightness}/{a.contrast}, noise {a.noise_std}, hflip {a.hflip}",
            "files": [path]}


def _batch_source(ctx: dict, cfg: RunConfig, objective, device):
    """`next_batch(generator)`: augmented image batches, or (noisy) random text windows."""
    from components.training.batches import image_batches, text_batches

    if cfg.data.kind == "image":
        from components.augment import image_augmenter
        data = _load_images(ctx, cfg)
        a = objective.args
        if tuple(data.images.shape[1:]) != (a.channels, a.image_size, a.image_size):
            raise GenloopError(f"images are {tuple(data.images.shape[1:])} but the model expects "
                               f"({a.channels}, {a.image_size}, {a.image_size}); fix model.args or data.")
        return image_batches(data, cfg.train.batch_size, image_augmenter(cfg.augment), device)
    from components.augment import char_noise
    from components.data.text import encode
    return text_batches(encode(_load_text(ctx, cfg)[0]), objective.args.block_size,
                        cfg.train.batch_size, device, char_noise(cfg.augment))


def _heldout_batches(ctx: dict, cfg: RunConfig, objective, device, count: int = 8) -> list:
    """Fixed batches for a validation loss: held-out text windows (language models), or
    un-augmented training images (VAE)."""
    import torch

    gen = torch.Generator().manual_seed(12345)
    if cfg.data.kind == "text":
        from components.data.text import encode
        from components.training.batches import text_batches
        next_batch = text_batches(encode(_load_text(ctx, cfg)[1]), objective.args.block_size,
                                  cfg.train.batch_size, device)
    else:
        from components.training.batches import image_batches
        next_batch = image_batches(_load_images(ctx, cfg), cfg.train.batch_size, lambda x: x, device)
    return [next_batch(gen) for _ in range(count)]


def _val_batches(ctx: dict, cfg: RunConfig, objective, device) -> list | None:
    """Validation batches for early stopping, for models that have a loss to validate."""
    if not cfg.train.eval_every or not hasattr(objective, "loss"):
        return None
    return _heldout_batches(ctx, cfg, objective, device)


@timed
def train(ctx: dict) -> dict:
    from components.models import build_model
    from components.training.device import pick_device
    from components.training.trainer import fit_counts
    from components.training.trainer import train as run_training

    cfg = config_of(ctx)
    device = pick_device()
    objective = build_model(cfg.model.family, cfg.model.args)
    if objective.modality != cfg.data.kind:
        raise GenloopError(f"config: model.family {cfg.model.family} makes {objective.modality}s "
                           f"but data.kind is {cfg.data.kind}.")
    meta = {**provenance(ctx), "config": ctx["config"]}
    out = Path(ctx["run_dir"]) / "train"
    if getattr(objective, "count_based", False):            # n-gram: count the corpus once
        from components.data.text import encode
        result = fit_counts(objective, encode(_load_text(ctx, cfg)[0]), out, meta)
    else:
        result = run_training(objective, _batch_source(ctx, cfg, objective, device), cfg.train, out,
                              meta, cfg.seed, device, val_batches=_val_batches(ctx, cfg, objective, device))
    return {"figure": f"{result.steps} steps on {device.type}, loss {result.final_loss:.3f}, "
                      f"{result.seconds:.1f}s", "checkpoint": result.checkpoint,
            "files": [result.checkpoint, result.history_path, result.curve_path]}


@timed
def evaluate(ctx: dict, checkpoint: str) -> dict:
    import pandas as pd

    from components.models.io import load_checkpoint
    from components.training.device import pick_device

    cfg = config_of(ctx)
    device = pick_device()
    objective, _ = load_checkpoint(Path(checkpoint), device=str(device))
    out = Path(ctx["run_dir"]) / "evaluate"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if cfg.data.kind == "image":
        from components.evaluation.run import evaluate_images
        metrics, features, sample_file = evaluate_images(
            _load_images(ctx, cfg), cfg, objective, ctx["dataset_md5"], Path(ctx["root"]), out, str(device),
            save_grid)
    else:
        from components.evaluation.run import evaluate_text
        metrics, features, sample_file = evaluate_text(*_load_text(ctx, cfg), cfg, objective, out, str(device))
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    metrics_path = _write_json(out / "metrics.json", metrics)
    reference = out / "reference.csv"
    pd.DataFrame(features).to_csv(reference, index=False)
    key = objective.metric
    return {"figure": f"{key} {metrics[key]:.3f}", "metric": key, "metrics": metrics,
            "metrics_path": metrics_path, "reference": str(reference),
            "files": [metrics_path, sample_file, str(reference)]}


@timed
def audit(ctx: dict, checkpoint: str) -> dict:
    from components.models.io import load_checkpoint
    from components.training.device import pick_device

    cfg = config_of(ctx)
    objective, _ = load_checkpoint(Path(checkpoint), device=str(pick_device()))
    if cfg.data.kind == "image":
        from components.audits.run import audit_images
        bias, memo = audit_images(_load_images(ctx, cfg), cfg, objective, ctx["dataset_md5"], Path(ctx["root"]))
    else:
        from components.audits.run import audit_text
        bias, memo = audit_text(_load_text(ctx, cfg)[0], cfg, objective)
    run_dir = Path(ctx["run_dir"])
    files = [_write_json(run_dir / "bias.json", bias), _write_json(run_dir / "memorisation.json", memo)]
    passed = bias["passed"] and memo["passed"]
    reasons = [r["reason"] for r in (bias, memo)]
    return {"figure": ("pass: " if passed else "FAIL: ") + "; ".join(reasons), "passed": passed,
            "reasons": reasons, "reason": "; ".join(reasons), "result": {"bias": bias, "memorisation": memo},
            "files": files}


@timed
def gate(ctx: dict, evaluation: dict, audit_result: dict) -> dict:
    from components.gate import decide
    from components.registry import champion_summary

    cfg = config_of(ctx)
    metric = evaluation["metric"]
    current = champion_summary(cfg.name)
    champ_value = None
    if current is not None:
        champ_value = (current["metadata"].get("metrics") or {}).get(metric)
    interval = evaluation["metrics"].get(f"{metric}_interval", {}).get("half_width", 0.0)
    margin = max(cfg.gate.margin, interval if cfg.gate.use_interval else 0.0)
    decision = decide(metric, evaluation["metrics"][metric], champ_value, audit_result["passed"],
                      audit_result["reasons"], margin, current and current["tag"])
    path = _write_json(Path(ctx["run_dir"]) / "gate.json",
                       {"promote": decision.promote, "reason": decision.reason,
                        "champion": current and current["tag"]})
    return {"figure": ("PROMOTE: " if decision.promote else "KEEP: ") + decision.reason,
            "promote": decision.promote, "reason": decision.reason, "files": [path]}


@timed
def package(ctx: dict, checkpoint: str, evaluation: dict, audit_result: dict, decision: dict) -> dict:
    if not decision["promote"]:
        return {"figure": "not promoted: nothing packaged", "files": [], "model_tag": None, "bento_tag": None}
    from components.registry import build_bento, save_model

    cfg = config_of(ctx)
    modality = cfg.data.kind
    metadata = {**provenance(ctx), "metrics": evaluation["metrics"], "audit": audit_result["result"],
                "decision": decision["reason"], "config": ctx["config"],
                "class_names": list(cfg.data.labels), "modality": modality}
    files = {"checkpoint": Path(checkpoint), "reference.csv": Path(evaluation["reference"])}
    tag = save_model(cfg.name, files, {"stage": "champion", "family": cfg.model.family,
                                       "modality": modality}, metadata)
    bento = build_bento(tag, modality, Path(ctx["run_dir"]) / "bento") if cfg.package else None
    path = _write_json(Path(ctx["run_dir"]) / "package.json", {"model_tag": tag, "bento_tag": bento})
    return {"figure": f"model {tag}" + (f", bento {bento}" if bento else ""), "model_tag": tag,
            "bento_tag": bento, "files": [path]}


@timed
def report(ctx: dict, evaluation: dict, audit_result: dict, decision: dict) -> dict:
    from components.report import write_report

    path, markdown = write_report(Path(ctx["run_dir"]), ctx["run_id"], evaluation, audit_result, decision)
    return {"figure": "report.md", "files": [path], "markdown": markdown}
