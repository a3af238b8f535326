"""Training configuration: YAML -> nested dataclasses, validated.

Unknown or mistyped keys are refused with the closest valid key suggested;
values are type-checked. ``-o a.b=c`` overrides are applied to the raw YAML
before validation (values parsed as YAML, list items addressed by index:
``-o classes.0.spec=8-6``). No Paddle (tests/test_paddle_free.py).
"""
from __future__ import annotations

import copy
import math
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Optional

import yaml

from paddle_mmsr.core.devices import BACKENDS, TRAIN_DEVICES
from paddle_mmsr.core.keys import suggest
from paddle_mmsr.core.spec import FORMS, LAYER_NAMES, GeneratorOptions, ModelSpec
from paddle_mmsr.core.tvat import TVATSettings
from paddle_mmsr.image.degrade import DOWNSCALERS, VIDEO_CODECS, Degradation, DegradationMix

__all__ = ["ConfigError", "Config", "load_config", "parse_config", "apply_overrides"]


class ConfigError(ValueError):
    pass


# ------------------------------------------------------------------ schema
@dataclass
class DataConfig:
    split: Optional[str] = None        # folder written by tools/split_tvat.py (split.yaml)
    sources: list = field(default_factory=list)  # folders/manifests when there is no split
    crop: int = 96                     # HR crop; LR is crop / scale
    batch_size: int = 16
    workers: int = 0                   # DataLoader worker processes (0 = in the training process)
    augment: bool = True
    cache: bool = True                 # keep decoded images in memory
    degradation: Optional[Degradation] = None  # default: the split's, else bicubic;
    #                                  fields and meanings in paddle_mmsr/image/degrade.py
    degradation_mix: Optional[DegradationMix] = None  # a random degradation per crop
    #                                  (the robust recipe); replaces ``degradation``


@dataclass
class ClassConfig:
    spec: str = "16-8"
    generator: dict = field(default_factory=dict)  # overrides of model.generator
    sources: list = field(default_factory=list)    # overrides the split's manifest
    pretrain_iters: Optional[int] = None  # this class's phase 1 (default train.pretrain_iters);
    #                                       the phase-1 lr milestones scale with it
    warm_iters: int = 0  # the first N phase-1 steps draw from every sub-image of the split
    #                      (its all.tsv), the rest from this class's own: a warm start


@dataclass
class ModelConfig:
    generator: GeneratorOptions = field(default_factory=GeneratorOptions)
    discriminator_channels: int = 64


@dataclass
class TrainConfig:
    pretrain_iters: int = 1000       # phase 1: G alone on the pixel loss
    adversarial_iters: int = 0       # phase 2: G + D
    d_updates: int = 1               # D updates per G update in phase 2
    ema_decay: float = 0.0           # EMA of G weights (0 = off); used for val and export
    amp: bool = False                # mixed precision, GPU only
    amp_dtype: str = "float16"       # float16 (loss scaling) | bfloat16 (cards that support it)
    cpu_threads: int = 0             # 0 = library default
    init_bundle: Optional[str] = None  # a bundle whose class i weights start class i's G
    #                                    (same spec and generator; fine-tuning), unless
    #                                    the class resumes from its own checkpoint


@dataclass
class OptimizerConfig:
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    milestones: list = field(default_factory=list)  # phase-local iterations where lr *= gamma
    gamma: float = 0.1


@dataclass
class OptimConfig:
    pretrain: OptimizerConfig = field(default_factory=OptimizerConfig)
    generator: OptimizerConfig = field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class LossConfig:
    pixel: str = "mse"               # mse | l1: phase-1 loss and the optional phase-2 term
    pixel_weight: float = 0.0        # phase-2 pixel term (0 = SRGAN)
    content_weight: float = 1.0      # phase-2 VGG feature loss
    adv_weight: float = 1e-3
    vgg_layer: str = "conv5_4"
    vgg_weights: str = "auto"        # auto (search, fail if absent) | PATH | random (tests only)


@dataclass
class ValConfig:
    dir: Optional[str] = None        # folder with HR/ and LR_bicubic_X<scale>/
    every: int = 1000
    max_images: int = 0              # 0 = all
    crop_border: Optional[int] = None  # default: scale
    routed: bool = True              # evaluate the assembled bundle at the end
    backend: str = "auto"            # routed evaluation: auto | inference | dygraph
    curve: bool = True               # keep G at each validation (class*/snapshots/) and
                                     # compute the routed PSNR-Y / train-time curve at the end


@dataclass
class LogConfig:
    every: int = 20                  # scalars, progress, non-finite check
    images_every: int = 500
    histograms_every: int = 2000
    progress: bool = True            # tqdm bar


@dataclass
class CheckpointConfig:
    every: int = 500                 # iterations
    minutes: float = 10.0            # also save when this much time passed (0 = off)


@dataclass
class Config:
    name: str = "experiment"
    output: Optional[str] = None     # default: output/<name>
    scale: int = 4
    device: str = "auto"             # auto | cpu | gpu
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    classes: list = field(default_factory=lambda: [ClassConfig()])
    tvat: Optional[TVATSettings] = None  # only without a split (taken from split.yaml otherwise)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    val: ValConfig = field(default_factory=ValConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    @property
    def output_dir(self) -> Path:
        return Path(self.output or f"output/{self.name}")

    def for_class(self, class_id: int) -> "Config":
        """The config one class trains with: its own phase-1 length, if it sets one,
        with the phase-1 lr milestones scaled in proportion."""
        n = self.classes[class_id].pretrain_iters
        if n is None or n == self.train.pretrain_iters:
            return self
        cfg = copy.deepcopy(self)
        base = max(self.train.pretrain_iters, 1)
        cfg.train.pretrain_iters = n
        cfg.optim.pretrain.milestones = [round(m * n / base) for m in
                                         self.optim.pretrain.milestones]
        return cfg

    def generator_options(self, class_id: int) -> dict:
        """Generator kwargs of one class (model defaults + class overrides; a width in
        the class spec, e.g. "4-6w16", sets ``channels``: the model's is the default
        of specs without one, a class's own ``channels`` must agree with it)."""
        spec = ModelSpec.parse(self.classes[class_id].spec)
        opts = asdict(self.model.generator)
        if spec.channels is not None:
            del opts["channels"]
        opts.update(self.classes[class_id].generator)
        return spec.generator_options(opts)


_LIST_ITEM_TYPES = {(Config, "classes"): ClassConfig}
_CHOICES = {
    (GeneratorOptions, "form"): FORMS,
    (Degradation, "kernel"): DOWNSCALERS,
    (Degradation, "video"): ("", *VIDEO_CODECS),
    (Config, "device"): TRAIN_DEVICES,
    (LossConfig, "pixel"): ("mse", "l1"),
    (TrainConfig, "amp_dtype"): ("float16", "bfloat16"),
    (ValConfig, "backend"): BACKENDS,
}


# -------------------------------------------------------------- conversion
def _convert(value, tp, where: str):
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
        origin = typing.get_origin(tp)
    if is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML reads 1e-4 as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is list or origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _build(cls, raw, where: str = ""):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown key '{path}'{suggest(str(key), names)}")
        item_type = _LIST_ITEM_TYPES.get((cls, key))
        if item_type is not None:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: expected a list, got {value!r}")
            kwargs[key] = [_build(item_type, v, f"{path}.{i}") for i, v in enumerate(value)]
        else:
            kwargs[key] = _convert(value, hints[key], path)
        choices = _CHOICES.get((cls, key))
        if choices and kwargs[key] not in choices:
            raise ConfigError(f"{path}: {kwargs[key]!r} is not one of {choices}"
                              f"{suggest(str(kwargs[key]), choices)}")
    try:
        return cls(**kwargs)
    except ValueError as e:  # a dataclass's own check (e.g. TVAT bounds)
        raise ConfigError(f"{where or 'config'}: {e}") from None


# -------------------------------------------------------------- overrides
def _parse_override(text: str):
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return key.strip(), value


def merge_sections(raw: dict, sections: dict) -> dict:
    """``raw`` with each top-level section updated by ``sections`` (mappings merged
    one level deep, other values replaced); a modified copy."""
    raw = copy.deepcopy(raw)
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return raw


def apply_overrides(raw: dict, overrides) -> dict:
    """Set ``a.b.c=value`` entries in a raw config dict (a modified copy)."""
    raw = copy.deepcopy(raw or {})
    for text in overrides or []:
        key, value = _parse_override(text)
        parts = key.split(".")
        node = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                try:
                    idx = int(part)
                    node[idx]
                except (ValueError, IndexError):
                    raise ConfigError(f"override {key}: '{part}' is not an index of a "
                                      f"{len(node)}-item list") from None
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = {}
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:  # a missing list gets one item to address
                        node[part] = [{}] if parts[i + 1].isdigit() else {}
                    node = node[part]
    return raw


# -------------------------------------------------------------- semantics
def _check(cfg: Config) -> Config:
    errors = []
    if cfg.scale not in (2, 3, 4):
        errors.append(f"scale: must be 2, 3 or 4, got {cfg.scale}")
    if not cfg.classes:
        errors.append("classes: at least one class is needed")
    gen_keys = [f.name for f in fields(GeneratorOptions)]
    for i, c in enumerate(cfg.classes):
        try:
            ModelSpec.parse(c.spec).generator_options(c.generator)
        except ValueError as e:
            errors.append(f"classes.{i}.spec: {e}")
        for k in c.generator:
            if k not in gen_keys:
                errors.append(f"unknown key 'classes.{i}.generator.{k}'{suggest(k, gen_keys)}")
        try:
            g = _build(GeneratorOptions, {**asdict(cfg.model.generator), **c.generator},
                       f"classes.{i}.generator")
            if g.channels < 1:
                errors.append(f"classes.{i}: generator channels must be >= 1, got {g.channels}")
        except ConfigError as e:
            errors.append(str(e))
    if cfg.model.discriminator_channels < 1:
        errors.append("model.discriminator_channels must be >= 1, got "
                      f"{cfg.model.discriminator_channels}")
    d = cfg.data
    if d.crop % cfg.scale:
        errors.append(f"data.crop: {d.crop} is not a multiple of scale {cfg.scale}")
    if d.crop // cfg.scale < 8:
        errors.append(f"data.crop: {d.crop} gives LR crops under 8 px")
    if d.batch_size < 1 or d.workers < 0:
        errors.append("data.batch_size must be >= 1 and data.workers >= 0")
    if d.degradation is not None and d.degradation_mix is not None:
        errors.append("data: give data.degradation (one fixed way) or data.degradation_mix "
                      "(a random one per crop), not both")
    if d.split is None and not d.sources and not all(c.sources for c in cfg.classes):
        errors.append("data: give data.split (a tools/split_tvat.py folder) or data.sources")
    if d.split is not None and cfg.tvat is not None:
        errors.append("tvat: the split's TVAT settings are used with data.split; "
                      "remove the tvat section or re-run tools/split_tvat.py with them")
    if d.split is not None and d.sources:
        errors.append("data.sources is not used with data.split; give one of them "
                      "(or classes.N.sources to override one class)")
    for i, c in enumerate(cfg.classes):
        phase1 = c.pretrain_iters if c.pretrain_iters is not None else cfg.train.pretrain_iters
        if c.warm_iters < 0 or c.warm_iters > phase1:
            errors.append(f"classes.{i}.warm_iters: {c.warm_iters} is not within its "
                          f"{phase1} phase-1 iterations")
        if c.warm_iters and d.split is None:
            errors.append(f"classes.{i}.warm_iters needs data.split (its all.tsv)")
    if d.split is None and len(cfg.classes) > 1:  # classes without sources share data.sources
        if cfg.tvat is None:
            errors.append(f"without data.split, tvat.bounds must hold {len(cfg.classes) - 1} "
                          "class bounds")
    if d.split is None and cfg.tvat is not None and cfg.tvat.n_classes != len(cfg.classes):
        errors.append(f"tvat.bounds: {len(cfg.classes)} classes need {len(cfg.classes) - 1} "
                      f"class bounds, got {cfg.tvat.bounds}")
    t = cfg.train
    if t.pretrain_iters < 0 or t.adversarial_iters < 0:
        errors.append("train: iteration counts must be >= 0")
    if t.pretrain_iters + t.adversarial_iters == 0:
        errors.append("train: pretrain_iters + adversarial_iters is 0, nothing to train")
    if t.d_updates < 1:
        errors.append("train.d_updates must be >= 1")
    if not 0.0 <= t.ema_decay < 1.0:
        errors.append("train.ema_decay must be in [0, 1)")
    for name in ("pretrain", "generator", "discriminator"):
        o = getattr(cfg.optim, name)
        if not o.lr > 0:
            errors.append(f"optim.{name}.lr must be > 0, got {o.lr}")
        if not (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1):
            errors.append(f"optim.{name}: betas must be in [0, 1)")
        if sorted(o.milestones) != list(o.milestones) or any(
                not isinstance(m, int) or m <= 0 for m in o.milestones):
            errors.append(f"optim.{name}.milestones: increasing positive integers, "
                          f"got {o.milestones}")
    lo = cfg.loss
    if t.adversarial_iters > 0 and lo.content_weight > 0:
        if lo.vgg_layer not in LAYER_NAMES:
            errors.append(f"loss.vgg_layer: unknown layer {lo.vgg_layer!r}"
                          f"{suggest(lo.vgg_layer, LAYER_NAMES)}")
    if cfg.val.every < 1 or cfg.log.every < 1 or cfg.checkpoint.every < 1:
        errors.append("val.every, log.every and checkpoint.every must be >= 1")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return cfg


def parse_config(raw: dict, overrides=None) -> Config:
    raw = apply_overrides(raw, overrides)
    return _check(_build(Config, raw))


def load_config(path, overrides=None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    try:
        return parse_config(raw, overrides)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
