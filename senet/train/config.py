"""The configuration of a training run: one dataclass, filled from a recipe and overrides."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._subsets import check_named_subsets
from ..layers.registry import get_attention
from ..models.registry import get_model_entry
from .recipes import CIFAR_DATASETS, default_recipe, get_recipe

# Options a resumed run may change: where and how it runs, not what it computes (--epochs is checked apart).
RESUMABLE_OPTIONS = frozenset(
    {"out", "resume", "force", "progress", "device", "workers", "epochs", "given", "data_dir", "skip_corrupt",
     "save_every", "keep_checkpoints"}
)  # fmt: skip
MIN_IMAGE_SIZE = 32  # every model of the zoo takes inputs from 32 px
_SECONDS_PER_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0}


class SaveInterval(NamedTuple):
    """How often a run writes a mid-epoch checkpoint: every ``steps`` optimiser steps, or every ``seconds``."""

    steps: int | None = None
    seconds: float | None = None


def parse_save_every(value: int | str) -> SaveInterval:
    """Reads ``--save-every``: a number of steps (``500``) or a duration (``90s``, ``10m``, ``1.5h``).

    Raises:
        ValueError: Unless it is a positive whole number of steps or a positive, finite duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"--save-every must be a number of steps or a duration, got {value!r}")
    if isinstance(value, int):
        value = str(value)
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smh]?)\s*", str(value))
    why = "must be a positive number of steps (e.g. 500) or a duration (e.g. 90s, 10m, 1h)"
    if not found:
        raise ValueError(f"--save-every {why}, got {value!r}")
    number, unit = float(found.group(1)), found.group(2)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"--save-every {why}, got {value!r}")
    if unit:
        return SaveInterval(seconds=number * _SECONDS_PER_UNIT[unit])
    if number != int(number):
        raise ValueError(f"--save-every {why} (steps are whole numbers; add s, m or h for a duration), got {value!r}")
    return SaveInterval(steps=int(number))


def default_workers() -> int:
    """DataLoader workers for image folders: 4, or fewer when this process may use fewer CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus))


@dataclass
class TrainConfig:
    """Everything a run needs; ``None`` fields take the recipe's value (see ``resolve``).

    Attributes:
        model: A registered model name.
        dataset: 'cifar10' (embedded), 'cifar100' (official archive) or the path of an image folder.
        data_dir: Where official archives are read from or downloaded to.
        recipe: A recipe name (``senet.train.recipes``); ``None``: ``quick_cifar`` for CIFAR, ``quick_folder``
            for an image folder.
        epochs, batch_size, lr, momentum, nesterov, weight_decay, schedule, milestones, warmup_epochs,
            label_smoothing: Optimisation; ``batch_size`` is per process, ``lr`` is not scaled.
        grad_clip: Clip the global gradient norm (``None``: off).
        amp: 'none', 'bf16' or 'fp16' mixed precision.
        channels_last: Run the model in channels_last memory format.
        compile: Train under ``torch.compile`` (``False``: eagerly; ``None``: measured and chosen for the run
            about to start, see ``senet.train.compile_choice``; the run records the mode it chose).
        seed: Seeds initialisation, data order and augmentation.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        subset: Train on a class-balanced subset of this many images.
        test_subset: Evaluate on a class-balanced subset of this many test images (quick runs).
        attention: Override the model's attention ('se', 'eca', 'none', ...).
        reduction: Override the SE reduction ratio r.
        drop_rate: Dropout before the classifier (``None``: the model's default).
        init_from: Start from these weights (a checkpoint in any known naming, a run directory, a URL, a
            tag of the pretrained table, or a ``senet retrofit`` output); see ``senet.train.init``.
        retrofit: Insert this attention into the network (identity start) before training.
        image_size: Crop size for image folders.
        workers: DataLoader workers for image folders (``None``: up to 4, no more than the usable CPUs).
        skip_corrupt: Image folders: replace unreadable images (and count them) instead of stopping.
        out: The run directory (``None``: a new ``runs/<model>-<time>``, or on resume the newest run of the model).
        resume: Continue the run in ``out`` from its last checkpoint.
        force: Start anew in a non-empty ``out``.
        eval_every: Evaluate on the test set every this many epochs (and after the last).
        save_every: Also write mid-epoch checkpoints: every N optimiser steps (``500``) or every duration
            (``'10m'``, ``'90s'``, ``'1h'``); ``None``: at the end of each epoch only (see ``parse_save_every``).
        keep_checkpoints: Keep the newest K checkpoints (older ones are deleted once a newer one is complete).
        progress: Show progress bars.
        data_order_seed: Seed of the data order (defaults to ``seed``), so that runs can share an order.
        given: The options the user set explicitly (command-line names without dashes); a resume refuses
            those that differ from the recorded run. Not saved.
    """

    model: str = "cifar_resnet20"
    dataset: str = "cifar10"
    data_dir: str | None = None
    recipe: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    milestones: tuple[float, ...] | None = None
    warmup_epochs: float | None = None
    label_smoothing: float | None = None
    grad_clip: float | None = None
    amp: str = "none"
    channels_last: bool = False
    compile: bool | None = None
    seed: int = 0
    device: str = "auto"
    subset: int | None = None
    test_subset: int | None = None
    attention: str | None = None
    reduction: float | None = None
    drop_rate: float | None = None
    init_from: str | None = None
    retrofit: str | None = None
    image_size: int | None = None
    workers: int | None = None
    skip_corrupt: bool = False
    out: str | None = None
    resume: bool = False
    force: bool = False
    eval_every: int = 1
    save_every: int | str | None = None
    keep_checkpoints: int = 2
    progress: bool = True
    data_order_seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    given: tuple[str, ...] = ()

    def resolve(self) -> TrainConfig:
        """Returns a copy with every ``None`` recipe field filled from the recipe, validated.

        Raises:
            ValueError: On an unknown recipe or an invalid value (one line naming the option).
        """
        recipe_name = self.recipe or default_recipe(self.dataset)
        recipe = get_recipe(recipe_name)
        values = {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in recipe.items()}
        cfg = dataclasses.replace(self, recipe=recipe_name, **values)
        if cfg.image_size is None:  # what the run's images are: CIFAR's own 32 x 32, a folder's crop
            cfg.image_size = 32 if str(cfg.dataset).lower() in CIFAR_DATASETS else 224
        if cfg.data_order_seed is None:
            cfg.data_order_seed = cfg.seed
        if cfg.workers is None:
            cfg.workers = default_workers()
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Checks every value of a resolved configuration.

        Raises:
            ValueError: Naming the first invalid option, as ``--option``, and why.
        """

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"--{name.replace('_', '-')} {why}, got {getattr(self, name)!r}")

        get_model_entry(self.model)  # an unknown name fails before any data is read, with its close matches
        for name in ("attention", "retrofit"):
            if getattr(self, name) is not None:
                get_attention(getattr(self, name))

        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "grad_clip",
                     "reduction", "drop_rate"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise bad(name, "must be a finite number")
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        if isinstance(self.keep_checkpoints, bool) or not isinstance(self.keep_checkpoints, int) \
                or self.keep_checkpoints < 1:  # fmt: skip
            raise bad("keep_checkpoints", "must be a positive whole number (the newest is always kept)")
        if self.save_every is not None:
            parse_save_every(self.save_every)
        for name in ("subset", "test_subset", "grad_clip", "reduction"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        check_named_subsets(self.dataset, self.subset, self.test_subset)  # before CIFAR is decoded or downloaded
        if self.lr <= 0:
            raise bad("lr", "must be positive")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "must be in [0, 1)")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise bad("weight_decay" if self.weight_decay < 0 else "warmup_epochs", "must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "must be in [0, 1)")
        if self.drop_rate is not None and not 0 <= self.drop_rate < 1:
            raise bad("drop_rate", "must be in [0, 1)")
        milestones = tuple(self.milestones or ())
        if not all(0 < m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
            raise bad("milestones", "must be increasing fractions of training in (0, 1), e.g. 0.5 0.75")
        if self.image_size < MIN_IMAGE_SIZE:
            raise bad("image_size", f"must be at least {MIN_IMAGE_SIZE} (the smallest input the models take)")
        if "image_size" in self.given and str(self.dataset).lower() in CIFAR_DATASETS and self.image_size != 32:
            raise bad("image_size", "is the crop of image folders: CIFAR's images are 32 x 32")
        if self.workers < 0:
            raise bad("workers", "must be >= 0")
        if self.seed < 0:
            raise bad("seed", "must be >= 0")
        if self.retrofit is not None and self.attention is not None and self.attention.lower() != "none":
            raise bad("retrofit", "inserts attention into the network as it is: not with --attention")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-serialisable values."""
        d = dataclasses.asdict(self)
        del d["given"]
        d["milestones"] = list(d["milestones"]) if d["milestones"] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuilds a configuration from ``to_dict``'s output (unknown keys are ignored).

        Raises:
            ValueError: If ``d`` is not a mapping, or a value is not of its option's type (a hand-edited or
                damaged config.json: ``"epochs": "ten"``); ``None`` is taken for any option.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a run configuration is a JSON object of options, not a {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name: f.type for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        if isinstance(values.get("milestones"), list):
            values["milestones"] = tuple(values["milestones"])
        for name, value in values.items():
            if value is not None and not _fits(value, hints[name]):
                raise ValueError(f"its {name} is {value!r}, not {names[name]}")
        return cls(**values)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` (a field's annotation): bools are not numbers, ints are floats."""
    if hint is Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    kind = typing.get_origin(hint) or hint
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)
