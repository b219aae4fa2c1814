"""Run configuration: typed dataclasses loaded from YAML, then a profile, then `--set a.b=value` overrides.

Precedence (later wins): dataclass defaults < YAML file < PROFILES[profile] < command-line `--set`.
The defaults are the authors' recipe (reference spec §5.5); configs/paper_*.yaml repeat it per dataset.

Profiles are the one place where run sizes are chosen:
* `paper`: the recipe as the authors ran it (real data, GPU): ctranscnn_tiny, 224 px, batch 32, 300 epochs.
* `demo`: the default of reproduce.sh on phantom data, CPU with 2 cores, runs trained two at a time with one
  torch thread each; the whole reproduce.sh (phantoms included) is budgeted at <= 30 minutes
  (results/runtime/demo_run.md: the measured run). 29 runs: CTransCNN, its three ablation variants, Conformer
  and the image-level split side on cxr14-phantom with 3 seeds each (the rows the claims rest on), CTransCNN on
  the other two phantoms and 9 baselines with one seed. 64 px, and every transformer still sees an 8 x 8 token
  grid: the `mini` presets use patch 8 (CTransCNN/Conformer: /4 stem, /2 tokens, stage 3 unstrided so IIM's
  maps match the tokens; ViT/DeiT: patch 8; Swin: patch 4, 16 x 16). At 128 px (the previous demo size) the
  CNN branch cost 1.6x as much for the same grid and the phantoms 4x as much to generate, which left 3 epochs
  of 896 images, too few to learn (mean AUC ~61 on cxr14-phantom). Single-thread training cost at 64 px:
  ctranscnn_mini ~12 ms per image, conformer_mini ~7, timm *_mini baselines 4-13. 6 epochs x 960 images
  (6 x 1,024 measured 28 min in all), validation on 200 images every epoch; up to 3,000 test images
  (cxr14-phantom, abnormal-only like the authors' NIH subset; cxr11 900, tongue 300: their test splits), for a
  bootstrap 95% CI of the mean AUC <= 4 points wide on cxr14 (measured 3.9-5.2 at 3,000 test images of NIH's
  full-set prevalence, the width set by Hernia's ~5 positives) and <= 5 on the others. Warmup: one epoch
  (30 steps) instead of 6,260 iterations, which would never end in so short a run. Checkpoints at epoch ends
  only; no loader worker processes (decoding a 64 px PNG costs ~0.2 ms).
* `smoke`: CI and tests, seconds per run: `micro` models, 32 px, two epochs of 64 images.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctranscnn.data.splits import DATASETS, MISSING, SPLIT_KINDS
from ctranscnn.losses import LOSS_NAMES, LossConfig


@dataclass
class ModelConfig:
    name: str = "ctranscnn_tiny"  # registered model (ctranscnn.list_models())
    # '' keeps `name`; otherwise the same family at that size (see resolve_model_name), set by profiles
    size: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # factory keywords, e.g. {mmaef: false}


@dataclass
class DataConfig:
    dataset: str = "nih"  # ctranscnn.data.load_splits: nih | ranzcr | chestmnist | list
    root: str = ""  # the dataset folder as released
    lists: str = ""  # folder with the authors' split lists (split 'paper')
    split: str = "paper"  # paper | official | patient | image
    split_seed: int = 0  # seed of the patient / image split
    # train/val/test shares of the patient or image split (None: the split's default, 70/10/20 or 90/7/3)
    fractions: tuple[float, float, float] | None = None
    image_size: int = 224  # square resize, bicubic, aspect ratio not kept (the authors' pipeline)
    hflip: bool = True  # random horizontal flip p=0.5 in training: the authors' only augmentation
    # loader worker processes, or 'auto' (engine.setup.auto_workers: enough workers for the GPU's measured
    # training rate at the per-worker rate timed from the decode cache; 0 on CPU)
    num_workers: int | str = 2
    cache_dir: str = ""  # decoded-image cache ('' = none)
    # 0 = whole split; otherwise a seeded random subset of that many images (CPU profiles)
    limit_train: int = 0
    limit_val: int = 0
    limit_test: int = 0
    # a listed image without a file: 'error', or 'skip' = keep the images present (NIH/RANZCR partial downloads;
    # what was left out is recorded in the run's manifest)
    missing: str = "error"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.05  # not applied to norm weights, biases and the class token
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    epochs: int = 300
    warmup_iters: int = 6260  # 5 x 1252: copied by the authors from an ImageNet batch-1024 recipe
    warmup_ratio: float = 1e-3  # warmup starts at lr * warmup_ratio (mmcv linear warmup)
    min_lr_ratio: float = 0.01  # cosine ends at lr * min_lr_ratio (1e-5)


@dataclass
class TrainConfig:
    batch_size: int = 32  # global batch (split over DDP ranks)
    seed: int = 0
    # strict: torch.use_deterministic_algorithms(True) (an op without a deterministic kernel is an error),
    #   CUBLAS_WORKSPACE_CONFIG=:4096:8 set before CUDA starts, cuDNN deterministic; bitwise repeatable on one GPU.
    # warn (default; YAML/--set `true`): the same settings, but ops without a deterministic kernel only warn, so
    #   the run is NOT bitwise repeatable on CUDA. Of CTransCNN's ops (torch's list: the docs of
    #   torch.use_deterministic_algorithms) only one is nondeterministic there: the backward of F.interpolate
    #   bilinear (T2C's upsampling to the feature map; atomicAdd), which strict replaces by two matmuls
    #   (models.ctranscnn.bilinear_as_matmul, same function). Its pooling is not on the list (head: mean; C2T:
    #   avg_pool2d; an adaptive average pool to 1 x 1 is computed by torch as a mean); a model with another op
    #   of the list stops under strict with torch's error naming it. warn stays the CUDA default because no
    #   faster exact setting has been measured yet (issue 18; results/gpu/README.md). CPU kernels are
    #   deterministic in every mode. Costs of strict and warn beyond the kernels chosen: torch fills every new
    #   empty tensor (torch.utils.deterministic.fill_uninitialized_memory), and scaled_dot_product_attention
    #   (fast_attention) must pick a deterministic backward; unmeasured on a GPU so far.
    # off (`false`): no determinism settings, cudnn.benchmark on (fastest; cuDNN may pick other algorithms).
    deterministic: str = "warn"
    device: str = "auto"  # auto | cpu | cuda
    # torch intra-op threads (0 = torch's default). The CPU profiles use 1: on this project's 2-core (virtualised)
    # machines two OpenMP threads trained ctranscnn_mini 30x slower (3 vs 88 images/s) as soon as one other
    # process was busy, while one thread loses at most 2x on an idle machine.
    cpu_threads: int = 0
    amp: str = "none"  # none | bf16 | fp16 (fp16 on CUDA only)
    channels_last: bool = False
    compile: bool = False
    # CUDA only: the training step (forward, loss, backward, AdamW with capturable=True) captured once as a CUDA
    # graph (ctranscnn.bench.capture) and replayed for every full batch; the epoch's last, smaller batch runs
    # eagerly with the same weights and optimizer, so the recipe is unchanged. Single process, no fp16, no compile.
    cuda_graph: bool = False
    # read the summed training loss and the non-finite flag (both kept on the device) every this many steps:
    # 1 waits for the GPU after every step; more lets the host run ahead. A non-finite loss stops the run at
    # the next read, which also comes before every checkpoint and at each epoch's end.
    sync_every: int = 1
    # CTransCNN/Conformer only: the exact speed paths (ctranscnn.models.ctranscnn.FAST_SWITCHES; same
    # parameters, same numbers up to float rounding, equality-tested in tests/test_fast_paths.py)
    fast: bool = False
    # DDP on CUDA: BatchNorm statistics over the global batch (without it each rank normalises its own
    # share, so N-process runs differ from 1-process ones; the authors' mmcv runs did not sync)
    sync_bn: bool = False
    checkpoint_every: int = 1000  # also save resumable state every this many steps (0: epoch ends only)
    out_dir: str = "runs"
    run_name: str = ""  # '' = <dataset>_<model>_<profile>_s<seed>
    progress: bool = True


@dataclass
class EvalConfig:
    batch_size: int = 64
    single_class: str = "skip"  # ctranscnn.metrics policy for a one-valued label column
    n_boot: int = 1000  # bootstrap resamples for the 95% CIs
    threshold: float = 0.5


@dataclass
class RunConfig:
    profile: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


PROFILES: dict[str, dict[str, Any]] = {
    # The authors' metric convention: a class with one label value on the test set counts as AUC 50 (the CPU
    # profiles leave it out of the mean instead, so tiny phantom test sets do not pull the mean towards 50).
    "paper": {"eval.single_class": "fifty"},
    "demo": {
        "model.size": "mini", "data.image_size": 64, "data.num_workers": 0, "data.limit_train": 960,
        "data.limit_val": 200, "data.limit_test": 3000, "schedule.epochs": 6, "schedule.warmup_iters": 30,
        "train.batch_size": 32, "train.checkpoint_every": 0, "train.fast": True, "train.cpu_threads": 1,
        "eval.n_boot": 200,
    },
    "smoke": {
        "model.size": "micro", "data.image_size": 32, "data.num_workers": 0, "data.limit_train": 64,
        "data.limit_val": 32, "data.limit_test": 32, "schedule.epochs": 2, "schedule.warmup_iters": 2,
        "train.batch_size": 16, "train.checkpoint_every": 2, "train.fast": True, "train.cpu_threads": 1,
        "eval.batch_size": 32,
        "eval.n_boot": 50,
    },
}
# The phantom data each profile trains on when no real data is given: per phantom, (images, side in px, further
# generator flags), written by `python -m ctranscnn phantom` (reproduce.sh asks
# `python -m ctranscnn.report.plan phantom-args PROFILE`). Demo: test splits (cxr14/cxr11 patient split 20%,
# tongue lists 10%) of 3,000 / 900 / 300 images, generated at the training size; cxr14 abnormal-only like the
# authors' 51,759-image NIH subset (spec §4), which also doubles every finding's positives: at NIH's full-set
# prevalence Hernia had ~5 of 3,000 test images and alone made the mean AUC's CI ~5 points wide. The paper
# profile needs real data (no phantoms). cxr11: 600 test images gave a 5.2-point CI at mean AUC 68 (target 5).
PHANTOM_DATA: dict[str, dict[str, tuple[int, int, str]]] = {
    "smoke": {"cxr14": (240, 64, ""), "cxr11": (240, 64, ""), "tongue": (240, 64, "")},
    "demo": {"cxr14": (15000, 64, "--abnormal-only"), "cxr11": (4500, 64, ""), "tongue": (3000, 64, "")},
    "paper": {},
}
DETERMINISTIC = ("strict", "warn", "off")
_DETERMINISTIC_BOOL = {True: "warn", False: "off"}  # train.deterministic was a bool before issue 18
CHOICES = {
    "profile": tuple(PROFILES), "loss.name": LOSS_NAMES, "data.dataset": DATASETS, "data.split": SPLIT_KINDS, "model.size": ("", "micro", "mini", "tiny"), "train.device": ("auto", "cpu", "cuda"),
    "train.amp": ("none", "bf16", "fp16"), "eval.single_class": ("skip", "fifty"),
    "data.missing": MISSING, "train.deterministic": DETERMINISTIC,
}
SIZES = ("micro", "mini", "tiny")
# Fields that change where or how fast a run happens, not its numbers: left out of the config hash.
UNHASHED = ("train.out_dir", "train.run_name", "train.progress", "train.cpu_threads", "train.sync_every",
            "data.num_workers", "data.cache_dir", "data.root", "data.lists")
# Settings added after runs were recorded: hashed only when changed from these values, so that the recorded runs'
# hashes (and their reuse by plan/grid) stay valid. train.deterministic hashes as the bool it used to be.
_HASHED_IF_CHANGED = {"train.cuda_graph": False}


class ConfigError(ValueError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a key given twice in one mapping is an error (SafeLoader keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            # Keys brought in by a `<<` merge may be overridden; only the mapping's own keys must be unique.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, mark = self.construct_object(key_node), key_node.start_mark
            if key in first:
                raise ConfigError(f"{mark.name}:{mark.line + 1}: duplicate key {key!r} (first on line {first[key]})")
            first[key] = mark.line + 1
        return super().construct_mapping(node, deep)


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        # An empty mapping stays a key of its own, so that a misspelt section (`overides: {}`) is still checked.
        if value and isinstance(value, dict) and path != "model.overrides" and not path.startswith("model.overrides."):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as type `hint`, or a ConfigError naming `where`."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if value is None:  # `--set data.lists=` or an empty YAML value
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {name}, got {value!r}")


def set_key(cfg: Any, path: str, value: Any, source: str) -> None:
    """Set dotted `path` in the dataclass tree `cfg`; unknown keys are errors naming the key and its source."""
    node, parts = cfg, path.split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        if isinstance(node, dict):  # model.overrides.<key>: free-form model keywords
            node[".".join(parts[i:])] = value
            return
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            raise ConfigError(f"{source}: unknown config key {where!r}; known here: {', '.join(fields)}")
        if i == len(parts) - 1:
            hint = typing.get_type_hints(type(node))[part]
            if dataclasses.is_dataclass(hint) and value in (None, {}):
                return  # an empty section (`model:` with every key commented out) sets nothing
            if dataclasses.is_dataclass(hint):
                raise ConfigError(f"{source}: {where!r} is a section; set its keys ({where}.<key>)")
            if path == "train.deterministic" and isinstance(value, bool):
                value = _DETERMINISTIC_BOOL[value]
            value = _coerce(value, hint, f"{source}: {where}")
            if path in CHOICES and value not in CHOICES[path]:
                raise ConfigError(f"{source}: {where} must be one of {CHOICES[path]}, got {value!r}")
            if path == "model.name":
                _check_model(value, source)
            setattr(node, part, value)
            return
        node = getattr(node, part)


def _check_model(name: str, source: str) -> None:
    """A model name must be registered in every layer, even one a later layer overrides (a typo in a config file
    is an error naming that file)."""
    from ctranscnn import list_models

    known = list_models()
    if name not in known:
        raise ConfigError(f"{source}: model.name {name!r} is not a registered model; known: {', '.join(known)}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """RunConfig from a YAML file (optional), its profile and dotted `overrides` (e.g. from --set)."""
    tree: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            with open(path, encoding="utf-8") as stream:  # a stream, so marks (and errors) carry the file name
                tree = yaml.load(stream, Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of config sections, got {type(tree).__name__}")
    overrides = dict(overrides or {})
    from_file = _flatten(tree)
    profile = overrides.get("profile", from_file.get("profile", "paper"))
    if profile not in PROFILES:
        raise ConfigError(f"profile must be one of {tuple(PROFILES)}, got {profile!r}")
    cfg = RunConfig()
    origin: dict[str, str] = {}  # model override -> the layer that set it, for error messages
    for layer, values in ((source, from_file), (f"profile {profile}", PROFILES[profile]), ("--set", overrides)):
        for key, value in values.items():
            set_key(cfg, key, value, layer)
            if key == "model.overrides" and isinstance(value, dict):
                origin.update(dict.fromkeys(value, layer))
            elif key.startswith("model.overrides."):
                origin[key.removeprefix("model.overrides.")] = layer
    validate(cfg)
    if cfg.model.overrides:
        _check_overrides(cfg.model, origin)
    return cfg


def _check_overrides(model: ModelConfig, origin: dict[str, str]) -> None:
    """Overrides must be fields of the model's config with values of their types (booleans only true/false),
    checked before any data is read. Imports the models (torch), so only runs when there are overrides."""
    from ctranscnn.registry import OverrideError, check_overrides

    try:
        check_overrides(resolve_model_name(model), model.overrides)
    except OverrideError as err:
        where = origin.get(err.key, "model.overrides") if err.key else ", ".join(sorted(set(origin.values())))
        raise ConfigError(f"{where}: model.overrides.{err}" if err.key else f"{where}: model.overrides: {err}") from None


def validate(cfg: RunConfig) -> None:
    checks = [
        (cfg.train.batch_size > 0, "train.batch_size must be positive"),
        (cfg.eval.batch_size > 0, "eval.batch_size must be positive"),
        (cfg.schedule.epochs > 0, "schedule.epochs must be positive"),
        (cfg.schedule.warmup_iters >= 0, "schedule.warmup_iters must be >= 0"),
        (0 < cfg.schedule.warmup_ratio <= 1, "schedule.warmup_ratio must lie in (0, 1]"),
        (0 <= cfg.schedule.min_lr_ratio <= 1, "schedule.min_lr_ratio must lie in [0, 1]"),
        (cfg.optim.lr > 0, "optim.lr must be positive"),
        (0 <= cfg.eval.threshold <= 1, f"eval.threshold must lie in [0, 1], got {cfg.eval.threshold}"),  # NaN fails
        (cfg.data.image_size >= 32, "data.image_size must be at least 32"),
        (cfg.train.cpu_threads >= 0, "train.cpu_threads must be >= 0"),
        (cfg.train.checkpoint_every >= 0, "train.checkpoint_every must be >= 0"),
        (cfg.train.sync_every >= 1, "train.sync_every must be >= 1"),
        (cfg.data.num_workers == "auto" or (isinstance(cfg.data.num_workers, int) and cfg.data.num_workers >= 0),
         f"data.num_workers must be >= 0 or 'auto', got {cfg.data.num_workers!r}"),
        (not (cfg.train.cuda_graph and cfg.train.device == "cpu"), "train.cuda_graph needs CUDA (train.device is cpu)"),
        (not (cfg.train.cuda_graph and cfg.train.compile), "train.cuda_graph and train.compile exclude each other"),
        (not (cfg.train.cuda_graph and cfg.train.amp == "fp16"),
         "train.cuda_graph does not support train.amp fp16 (GradScaler reads its scale on the host); use bf16"),
        (min(cfg.data.limit_train, cfg.data.limit_val, cfg.data.limit_test) >= 0, "data.limit_* must be >= 0"),
        (cfg.data.fractions is None or (min(cfg.data.fractions) >= 0 and abs(sum(cfg.data.fractions) - 1) < 1e-6),
         "data.fractions must be three non-negative shares summing to 1"),
        (not re.search(r"[/\\]", cfg.train.run_name), "train.run_name must not contain path separators"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def to_dict(cfg: RunConfig) -> dict:
    out = dataclasses.asdict(cfg)
    out["optim"]["betas"] = list(cfg.optim.betas)
    if cfg.data.fractions is not None:
        out["data"]["fractions"] = list(cfg.data.fractions)
    return out


def from_dict(tree: dict, source: str = "checkpoint") -> RunConfig:
    """Rebuild a RunConfig from `to_dict` output exactly (no profile applied again)."""
    cfg = RunConfig()
    for key, value in _flatten(tree).items():
        set_key(cfg, key, value, source)
    return cfg


def config_hash(cfg: RunConfig) -> str:
    """SHA-256 of the settings that determine a run's numbers (paths and worker counts left out)."""
    flat = {k: v for k, v in _flatten(to_dict(cfg)).items()
            if k not in UNHASHED and not (k in _HASHED_IF_CHANGED and v == _HASHED_IF_CHANGED[k])}
    old = {v: k for k, v in _DETERMINISTIC_BOOL.items()}
    flat["train.deterministic"] = old.get(flat["train.deterministic"], flat["train.deterministic"])
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()


def resolve_model_name(cfg: ModelConfig) -> str:
    """Registered model for (name, size): `ctranscnn_tiny` at size 'mini' is `ctranscnn_mini`, `resnet50`
    at 'mini' is `resnet50_mini`. A family without the requested size gets its next larger registered size
    (e.g. baselines have no 'micro' and use 'mini'), so one profile serves every model."""
    from ctranscnn import list_models

    known = set(list_models())
    if not cfg.size:
        return cfg.name
    family = re.sub(r"_(%s)$" % "|".join(SIZES), "", cfg.name)
    for size in SIZES[SIZES.index(cfg.size):]:
        for candidate in (f"{family}_{size}",) + ((family,) if size == "tiny" else ()):
            if candidate in known:
                return candidate
    raise ConfigError(f"model.size {cfg.size!r}: no registered size of {cfg.name!r} "
                      f"(tried {family}_{cfg.size} and larger); set model.size='' to use {cfg.name!r} as named")
