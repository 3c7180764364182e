"""Public ImageNet and CIFAR-10 checkpoints: the table, safe reading, conversion, download, preprocessing, evaluation.

    >>> model = senet.create_model("se_resnet50", pretrained=True)         # the authors' Caffe model
    >>> senet.data_config(model)["interpolation"]
    'bilinear'
    >>> report = senet.load_pretrained(model, "my_checkpoint.pth", strict=False)
    >>> report.missing, report.unexpected, report.mismatched
"""

from ..io import UnsafeCheckpointError, read_state_dict
from .evaluate import evaluate_imagenet_folder, imagenet_classes, imagenet_folder_classes
from .factory import PretrainedInfo, create_pretrained, data_config, resolve_checkpoint
from .hub import fetch, pretrained_dir
from .loading import LoadReport, load_pretrained
from .schema import Preprocessing, PretrainedWeights
from .table import PRETRAINED, get_pretrained, list_pretrained

__all__ = [
    "PRETRAINED",
    "LoadReport",
    "Preprocessing",
    "PretrainedInfo",
    "PretrainedWeights",
    "UnsafeCheckpointError",
    "create_pretrained",
    "data_config",
    "evaluate_imagenet_folder",
    "fetch",
    "get_pretrained",
    "imagenet_classes",
    "imagenet_folder_classes",
    "list_pretrained",
    "load_pretrained",
    "pretrained_dir",
    "read_state_dict",
    "resolve_checkpoint",
]
