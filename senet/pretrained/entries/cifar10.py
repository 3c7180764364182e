"""The public CIFAR-10 checkpoints of the table: akamaster/pytorch_resnet_cifar10 (BSD-2-Clause).

The ResNet-20 ... ResNet-1202 of He et al. (arXiv:1512.03385, Sec. 4.2) trained by Yerlan Idelbayev,
the most used public CIFAR-10 ResNet weights, served from the publisher's GitHub repository (folder
``pretrained_models/``). Their naming is ``akamaster`` (``senet.convert.akamaster``): option-A
shortcuts padded on both sides, hence ``shortcut_pad='both'``. Preprocessing, from the publisher's
``trainer.py``: ToTensor and the ImageNet mean/std, at CIFAR's own 32x32 (no resize, no crop).

top-1 is the publisher's README (100 minus its test error on the original CIFAR-10 test set). The
embedded CIFAR-10 of this package is a lossy JPEG copy (quality-75 tables): on it the publisher's own
code scores ResNet-20 81.03% (8103 of 10,000) and ResNet-56 83.20% (8320); see docs/pretrained.md.
"""

from __future__ import annotations

from ..schema import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, PretrainedWeights

AKAMASTER_REPO = "https://github.com/akamaster/pytorch_resnet_cifar10"
_FILES = f"{AKAMASTER_REPO}/raw/master/pretrained_models"
_SOURCE = f"{AKAMASTER_REPO}/blob/master/README.md"
# trainer.py: transforms.ToTensor(), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).
AKAMASTER_PREPROCESSING = Preprocessing(
    input_size=(3, 32, 32), crop_pct=1.0, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD
)


def _akamaster(
    depth: int,
    prefix: str,
    error: float,
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    extra: str = "",
) -> PretrainedWeights:
    """One of akamaster's files: ``resnet<depth>-<sha256 prefix>.th``, the README's test error (%)."""
    return PretrainedWeights(
        model=f"cifar_resnet{depth}",
        tag="akamaster",
        url=f"{_FILES}/resnet{depth}-{prefix}.th",
        naming="akamaster",
        options=(("shortcut_pad", "both"),),
        preprocessing=AKAMASTER_PREPROCESSING,
        top1=round(100.0 - error, 2),
        sha256=sha256,
        sha256_prefix=prefix,
        size_bytes=size_bytes,
        source=_SOURCE,
        default=True,
        num_classes=10,
        dataset="cifar10",
        notes=f"akamaster/pytorch_resnet_cifar10 ResNet-{depth} (BSD-2-Clause: keep its LICENSE with any copy); "
        f"top-1: 100 - the README's {error}% test error on the original CIFAR-10.{extra}",
    )


CIFAR10: tuple[PretrainedWeights, ...] = (
    _akamaster(
        20,
        "12fca82f",
        8.27,
        sha256="12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8",
        size_bytes=1099231,
        extra=" The file's best_prec1: 91.78. On the embedded JPEG copy: 81.03% (8103 of 10,000).",
    ),
    _akamaster(32, "d509ac18", 7.37),
    _akamaster(44, "014dd654", 6.90),
    _akamaster(
        56,
        "4bfd9763",
        6.61,
        sha256="4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367",
        size_bytes=3471733,
        extra=" The file's best_prec1: 93.62. On the embedded JPEG copy: 83.20% (8320 of 10,000).",
    ),
    _akamaster(110, "1d1ed7c2", 6.32),
    _akamaster(1202, "f3b1deed", 6.18),
)
