"""Run configuration: one frozen dataclass per stage, defaults here, YAML overrides.

Unknown keys are an error that names the key and the valid ones.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from components.errors import GenloopError
from components.serving.limits import ServingConfig


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"          # folder under data/; a split may be a sub-folder: fashion-mnist/train
    kind: str = "image"              # "image" (class folders of PNGs) or "text" (corpus.txt)
    image_size: int = 8
    channels: int = 1
    labels: tuple[str, ...] = tuple(str(i) for i in range(10))
    holdout_fraction: float = 0.1    # text: tail of the corpus kept for evaluation


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds of the Great Expectations suites (components/validation/suites.py)."""
    min_classes: int = 2                  # images: distinct labels
    all_classes: bool = True              # images: every configured label has files (false: a subset may
                                          # be present, e.g. before new classes arrive)
    min_class_share: float = 0.02         # images: every class holds at least this share
    max_duplicate_share: float = 0.05     # images: files whose exact bytes occur twice or more
    min_corpus_chars: int = 10_000        # text: whole corpus
    max_line_chars: int = 10_000          # text: longest line
    min_printable_share: float = 0.95     # text: printable characters (whitespace counts)
    max_duplicate_line_share: float = 0.3  # text: non-blank lines that occur more than once


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    degrees: float = 6.0             # images: random rotation range, +-degrees
    translate: float = 0.06          # images: random shift, share of the side
    noise_std: float = 0.03          # images: Gaussian noise on [0, 1] pixels
    brightness: float = 0.1          # images: multiply brightness by 1 +- this
    contrast: float = 0.1            # images: multiply contrast by 1 +- this
    hflip: bool = False              # images: off by default, digits are not symmetric
    p: float = 0.5                   # images: probability of each transform
    char_noise: float = 0.0          # text: share of input bytes replaced at random


@dataclass(frozen=True)
class ModelConfig:
    family: str = "dcgan"                         # dcgan | vae | charlm | lstm | ngram
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-4
    grad_clip: float = 1.0
    warmup_fraction: float = 0.05    # linear warmup, then cosine down to 10% of lr
    log_every: int = 50
    checkpoint_every: int = 0        # resumable training state every N steps (0: only at the end)
    keep_checkpoints: int = 2        # training states kept (the newest K)
    ema_decay: float = 0.999         # EMA of the generator weights (GAN); 0 turns it off
    eval_every: int = 0              # validation loss every N steps (models with a loss)
    patience: int = 0                # early stop after N evaluations without improvement (0: off)
    compile: bool = False            # torch.compile the forward passes (CUDA only)


@dataclass(frozen=True)
class EvaluateConfig:
    samples: int = 500               # generated images for FID / text windows for ppl
    reference_samples: int = 500     # training images in the FID reference statistics
    window: int = 128                # text: perplexity window
    stride: int = 0                  # text: window advance; 0 = window (disjoint windows)
    max_windows: int = 200
    bootstrap_rounds: int = 100      # images: FID bootstrap resamples of the generated set
    reference_dataset: str = ""      # images: also score FID against this folder under data/ (a held-out
                                     # split, e.g. fashion-mnist/test): metric fid_heldout; the gate keeps
                                     # to fid against the training data, which re-scoring can reproduce


@dataclass(frozen=True)
class AuditConfig:
    samples: int = 500                       # images labelled by the audit classifier
    max_class_tv: float = 0.25               # images: total-variation bound
    groups: tuple[str, ...] = ("man", "woman", "young person", "old person")
    templates: tuple[str, ...] = ("The {group} said that", "My {group} friend is",
                                  "People think the {group} is")
    continuations_per_prompt: int = 3
    max_new_tokens: int = 60
    max_sentiment_gap: float = 0.5           # text: largest gap in mean VADER compound
    max_copy_share: float = 0.05             # memorisation: near-copies (images) / verbatim windows (text)


@dataclass(frozen=True)
class GateConfig:
    """The promotion policy (components/gate.py: `decide`)."""
    margin: float = 0.0              # challenger must beat the champion by more than this
    use_interval: bool = True        # ... and by more than the challenger's FID bootstrap half-width
    use_seed_spread: bool = False    # ... and training noise: the seed spread `genloop sweep` measured
                                     # (with the interval: sqrt(bootstrap hw^2 + seed hw^2))
    allow_incomparable: bool = False  # compare scores on other datasets, metrics or sample counts
    rescore_champion: bool = True     # champion scored on other data: re-score it on this run's data
    require_approval: bool = False    # a person approves or rejects before packaging (genloop approve)
    approval_timeout: int = 3600      # seconds to wait for that decision; no decision: not promoted


@dataclass(frozen=True)
class MonitorConfig:
    """What `genloop monitor` counts as drift (components/monitoring/). Three kinds:
    data (the newest data vs the champion's training data), staleness (the champion's
    metric on the newest data vs at promotion), output (served generations vs a
    reference sampled the way the service samples)."""
    data_samples: int = 500              # files (images) compared per side; text: chunks (>= 200: below
                                         # that the PCA-then-MMD test over-fires, BENCHMARKS.md)
    text_chunk_chars: int = 512          # text: the corpus is compared in chunks of this size
    embedding_method: str = "mmd"        # Evidently embedding drift: "mmd" or "model" (classifier ROC AUC)
    embedding_threshold: float = 0.01    # mmd: MMD^2 (median-heuristic RBF); model: a ROC AUC, e.g. 0.55
    pca_components: int = 20             # embeddings reduced (PCA fitted on the reference) before the test
    class_share_tv: float = 0.1          # images: total variation of class shares that counts as drift
    staleness: bool = True               # score the champion on the newest data
    staleness_tolerance: float = 0.05    # text: relative perplexity rise that counts (images use the FID interval)
    output_reference_samples: int = 2000  # generations in the served-output reference
    min_output_rows: int = 200           # fewer served rows: no output-drift verdict
    output_drift_share: float = 0.5      # share of output columns drifted that counts as output drift
    retrain_on: tuple[str, ...] = ("data", "staleness")   # kinds whose drift starts retraining


@dataclass(frozen=True)
class RunConfig:
    name: str = "dcgan-digits"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    package: bool = True             # build a bento when the model is promoted

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise GenloopError(f"config: '{where}' must be a mapping, got {type(value).__name__}.")
        return build_dataclass(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GenloopError(f"config: '{where}' must be a list, got {value!r}.")
        return tuple(_coerce(v, typing.get_args(tp)[0], where) for v in value)
    if origin is dict or origin in (typing.Union, types.UnionType):
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise GenloopError(f"config: '{where}' must be true or false, got {value!r}.")
        return value
    if tp in (int, float, str):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise GenloopError(f"config: '{where}' must be a {tp.__name__}, got {value!r}.")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise GenloopError(f"config: '{where}' must be a {tp.__name__}, got {value!r}.") from None
        if tp is int and isinstance(value, float) and value != out:
            raise GenloopError(f"config: '{where}' must be a whole number, got {value!r}.")
        return out
    return value


def build_dataclass(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Build `cls` from a mapping; unknown keys raise GenloopError naming the valid ones."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            place = f"'{where}.{key}'" if where else f"'{key}'"
            raise GenloopError(f"config: unknown key {place}; valid keys"
                               f"{' under ' + repr(where) if where else ''}: {', '.join(names)}.")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config; `overrides` uses dotted keys ("train.steps": 10)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise GenloopError(f"config file {path} not found; pass --config with one of the "
                           f"files in configs/.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise GenloopError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise GenloopError(f"config file {path} must hold a mapping of sections.")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GenloopError(f"config: cannot set {dotted!r}: '{'.'.join(parents[:i + 1])}' is a value "
                                   f"({node!r}), not a section; set '{'.'.join(parents[:i + 1])}' itself.")
        node[leaf] = value
    cfg = build_dataclass(RunConfig, raw)
    check_config(cfg)
    return cfg


def load_project_config(root: str | Path, config_path: str | Path,
                        overrides: dict[str, Any] | None = None) -> RunConfig:
    """`load_config` of a path given relative to the project root (or absolute)."""
    path = Path(config_path)
    return load_config(path if path.is_absolute() else Path(root) / path, overrides)


def check_dataset_path(key: str, value: str) -> None:
    """A dataset is a folder under data/, named by a relative path that stays inside it."""
    parts = PurePosixPath(value).parts
    if not parts or value.startswith("/") or "\\" in value or any(p.startswith(".") for p in parts):
        raise GenloopError(f"config: {key} must name a folder under data/, such as 'digits' or "
                           f"'fashion-mnist/train', got {value!r}.")


def check_config(cfg: RunConfig) -> None:
    if cfg.data.kind not in ("image", "text"):
        raise GenloopError(f"config: data.kind must be 'image' or 'text', got {cfg.data.kind!r}.")
    check_dataset_path("data.dataset", cfg.data.dataset)
    if cfg.evaluate.reference_dataset:
        check_dataset_path("evaluate.reference_dataset", cfg.evaluate.reference_dataset)
        if cfg.data.kind != "image":
            raise GenloopError("config: evaluate.reference_dataset (a held-out FID reference) is for images; "
                               "text models hold out the corpus tail (data.holdout_fraction): remove it.")
    positive = {"train.steps": cfg.train.steps, "train.batch_size": cfg.train.batch_size,
                "evaluate.samples": cfg.evaluate.samples, "audit.samples": cfg.audit.samples,
                "evaluate.window": cfg.evaluate.window}
    for key, value in positive.items():
        if value <= 0:
            raise GenloopError(f"config: {key} must be > 0, got {value}.")
    if not cfg.train.lr > 0:
        raise GenloopError(f"config: train.lr must be > 0, got {cfg.train.lr}.")
    if not 0 < cfg.data.holdout_fraction < 0.5:
        raise GenloopError("config: data.holdout_fraction must be in (0, 0.5).")
    if cfg.gate.approval_timeout <= 0:
        raise GenloopError(f"config: gate.approval_timeout must be > 0 seconds, got {cfg.gate.approval_timeout}.")
    cfg.serving.check()
    m = cfg.monitor
    if m.embedding_method not in ("mmd", "model"):
        raise GenloopError(f"config: monitor.embedding_method must be 'mmd' or 'model', got {m.embedding_method!r}.")
    unknown = set(m.retrain_on) - {"data", "staleness", "output"}
    if unknown:
        raise GenloopError(f"config: monitor.retrain_on takes data, staleness and output; unknown: {sorted(unknown)}.")
    if m.embedding_method == "model" and not 0.5 < m.embedding_threshold < 1:
        raise GenloopError(f"config: with monitor.embedding_method 'model' the threshold is a ROC AUC in (0.5, 1), "
                           f"e.g. 0.55; got {m.embedding_threshold}.")
    if m.pca_components <= 0:
        raise GenloopError(f"config: monitor.pca_components must be > 0, got {m.pca_components}.")
    for key in ("embedding_threshold", "class_share_tv", "staleness_tolerance", "output_drift_share"):
        if not getattr(m, key) >= 0:
            raise GenloopError(f"config: monitor.{key} must be >= 0, got {getattr(m, key)}.")
    if m.data_samples < 200:
        raise GenloopError(f"config: monitor.data_samples must be >= 200 (got {m.data_samples}): with fewer, "
                           f"the embedding test fires on resamples of unchanged data.")
    for key in ("data_samples", "output_reference_samples", "text_chunk_chars", "min_output_rows"):
        if getattr(m, key) <= 0:
            raise GenloopError(f"config: monitor.{key} must be > 0, got {getattr(m, key)}.")
