"""The paper's accuracy numbers that ``senet ablate`` and ``senet reproduce`` print beside their own.

Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks" (arXiv:1709.01507 v4), as quoted in
``shared/reference/paper.md``: the ablations on SE-ResNet-50 (ImageNet, top-1 / top-5 error, Sec. 6 and
the TPAMI version's Tables 10-14) and the CIFAR results of Tables 4-5 (error, baseline -> SE). The cost
numbers of the same tables live in ``senet.profiler.paper``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageNetError:
    """One row of the paper's SE-ResNet-50 ablations.

    Attributes:
        top1: Top-1 error, percent.
        top5: Top-5 error, percent.
        params_m: Parameters in millions, where the paper gives them.
    """

    top1: float
    top5: float
    params_m: float | None = None

    def __str__(self) -> str:
        params = f" ({self.params_m:.1f}M)" if self.params_m is not None else ""
        return f"{self.top1:.2f} / {self.top5:.2f}{params}"


ABLATION_SOURCE = (
    "the paper's ablations of SE-ResNet-50 on ImageNet (top-1 / top-5 error, %); a different network and "
    "data set, quoted for the ordering of the settings, not for their values"
)
ABLATION_BASELINE = ImageNetError(23.30, 6.55, 25.6)  # the ablations' own ResNet-50

# --vary key -> value (as the command line spells it) -> the paper's result. SE-ResNet-50's default
# (r = 16, avg squeeze, sigmoid gate, all stages, standard placement) is 22.28 / 6.03 in every table.
_SE_DEFAULT = ImageNetError(22.28, 6.03, 28.1)
PAPER_ABLATIONS: dict[str, dict[str, ImageNetError]] = {
    "reduction": {
        "2": ImageNetError(22.29, 6.00, 45.7),
        "4": ImageNetError(22.25, 6.09, 35.7),
        "8": ImageNetError(22.26, 5.99, 30.7),
        "16": _SE_DEFAULT,
        "32": ImageNetError(22.72, 6.20, 26.9),
    },
    "squeeze": {"max": ImageNetError(22.57, 6.09), "avg": ImageNetError(22.28, 6.03)},
    "gate": {
        "relu": ImageNetError(23.47, 6.98),
        "tanh": ImageNetError(23.00, 6.38),
        "sigmoid": ImageNetError(22.28, 6.03),
    },
    # SE in one stage only: the paper's conv2_x, conv3_x, conv4_x are our stages 2, 3, 4 (the stem is 1).
    "stages": {
        "2": ImageNetError(23.03, 6.48, 25.6),
        "3": ImageNetError(23.04, 6.32, 25.7),
        "4": ImageNetError(22.68, 6.22, 26.4),
        "all": _SE_DEFAULT,
        "none": ABLATION_BASELINE,
    },
    "placement": {
        "standard": ImageNetError(22.28, 6.03),
        "pre": ImageNetError(22.23, 6.00),
        "post": ImageNetError(22.78, 6.35),
        "identity": ImageNetError(22.20, 6.15),
        "after_3x3": ImageNetError(22.48, 6.02, 25.8),
    },
    "attention": {"se": _SE_DEFAULT, "none": ABLATION_BASELINE},
}

# The setting the paper chose for each ablated option.
PAPER_CHOICE = {
    "reduction": "16", "squeeze": "avg", "gate": "sigmoid", "stages": "all", "placement": "standard", "attention": "se",
}  # fmt: skip


@dataclass(frozen=True)
class CifarResult:
    """The paper's CIFAR error (percent) of one network without and with SE (Tables 4-5)."""

    plain: float
    se: float

    @property
    def gain(self) -> float:
        """Points of error SE removed."""
        return self.plain - self.se


# network key (senet.experiments.reproduce) -> dataset -> result
PAPER_CIFAR: dict[str, dict[str, CifarResult]] = {
    "resnet110": {"cifar10": CifarResult(6.37, 5.21), "cifar100": CifarResult(26.88, 23.85)},
    "resnet164": {"cifar10": CifarResult(5.46, 4.39), "cifar100": CifarResult(24.33, 21.31)},
    "wrn16_8": {"cifar10": CifarResult(4.27, 3.88), "cifar100": CifarResult(20.43, 19.14)},
}

# Public reproductions of the CIFAR ResNet-20 comparison (paper.md, "Public implementations"), as
# top-1 accuracy: the nearest published reference for the CPU-sized protocol.
RESNET20_REPRODUCTIONS = (
    "a widely used PyTorch reproduction: ResNet-20 92% vs SE-ResNet-20 93% (reduction 4 or 8, 200 epochs); "
    "another: ResNet-20 91.30% vs SE 91.70%"
)
