"""The configuration of a training run: one dataclass, filled from a recipe and overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .recipes import get_recipe


@dataclass
class TrainConfig:
    """Everything a run needs; ``None`` fields take the recipe's value (see ``resolve``).

    Attributes:
        model: A registered model name.
        dataset: 'cifar10' (embedded), 'cifar100' (official archive) or the path of an image folder.
        data_dir: Where official archives are read from or downloaded to.
        recipe: A recipe name (``senet.train.recipes``).
        epochs, batch_size, lr, momentum, nesterov, weight_decay, schedule, milestones, warmup_epochs,
            label_smoothing: Optimisation; ``batch_size`` is per process, ``lr`` is not scaled.
        grad_clip: Clip the global gradient norm (``None``: off).
        amp: 'none', 'bf16' or 'fp16' mixed precision.
        channels_last: Run the model in channels_last memory format.
        compile: Wrap the model in ``torch.compile``.
        seed: Seeds initialisation, data order and augmentation.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        subset: Train on a class-balanced subset of this many images.
        test_subset: Evaluate on a class-balanced subset of this many test images (quick runs).
        attention: Override the model's attention ('se', 'eca', 'none', ...).
        reduction: Override the SE reduction ratio r.
        drop_rate: Dropout before the classifier (``None``: the model's default).
        image_size: Crop size for image folders.
        workers: DataLoader workers for image folders.
        out: The run directory.
        resume: Continue the run in ``out`` from its last checkpoint.
        force: Start anew in a non-empty ``out``.
        eval_every: Evaluate on the test set every this many epochs (and after the last).
        progress: Show progress bars.
        data_order_seed: Seed of the data order (defaults to ``seed``), so that runs can share an order.
    """

    model: str = "cifar_resnet20"
    dataset: str = "cifar10"
    data_dir: str | None = None
    recipe: str = "quick_cifar"
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
    compile: bool = False
    seed: int = 0
    device: str = "auto"
    subset: int | None = None
    test_subset: int | None = None
    attention: str | None = None
    reduction: float | None = None
    drop_rate: float | None = None
    image_size: int | None = None
    workers: int = 4
    out: str = "runs/run"
    resume: bool = False
    force: bool = False
    eval_every: int = 1
    progress: bool = True
    data_order_seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> TrainConfig:
        """Returns a copy with every ``None`` recipe field filled from the recipe, validated.

        Raises:
            ValueError: On an unknown recipe or an invalid value.
        """
        recipe = get_recipe(self.recipe)
        values = {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in recipe.items()}
        cfg = dataclasses.replace(self, **values)
        if cfg.image_size is None:
            cfg.image_size = 224
        if cfg.data_order_seed is None:
            cfg.data_order_seed = cfg.seed
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(cfg, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
        if cfg.lr <= 0:
            raise ValueError(f"--lr must be positive, got {cfg.lr}")
        for name in ("subset", "test_subset"):
            if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
        if cfg.drop_rate is not None and not 0 <= cfg.drop_rate < 1:
            raise ValueError(f"--drop-rate must be in [0, 1), got {cfg.drop_rate}")
        if not 0 <= cfg.label_smoothing < 1:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-serialisable values."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(d["milestones"]) if d["milestones"] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuilds a configuration from ``to_dict``'s output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        if values.get("milestones") is not None:
            values["milestones"] = tuple(values["milestones"])
        return cls(**values)
