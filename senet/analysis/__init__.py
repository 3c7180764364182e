"""Excitation analysis: what the gates of a network's attention modules do, per block and per class.

Hu et al., "Squeeze-and-Excitation Networks" (arXiv:1709.01507), Sec. 7.2 and Fig. 6: the mean
excitation per channel, per class, at several depths of SE-ResNet-50. Early blocks excite alike for
every class, later blocks class-specifically, and the last blocks saturate near 1.

    >>> import senet
    >>> from senet.analysis import ExcitationRecorder, measure_block
    >>> model = senet.create_model("se_cifar_resnet20").eval()
    >>> recorder = ExcitationRecorder(model, num_classes=10)      # hooks; the model is unchanged
    >>> with recorder:
    ...     recorder.record(images, labels)                        # any number of batches
    >>> stats = recorder.stats(classes)
    >>> measure_block(stats.blocks["SE_4_3"]).class_specificity

``senet analyze`` runs it on a training run or a checkpoint and writes ``excitations.json``, the figures
and ``summary.md`` (docs/analysis.md).
"""

from .blocks import check_blocks, default_blocks
from .data import AnalysisData, model_data, per_class_subset, run_data
from .figures import class_means_figure, distributions_figure, pick_classes, save_png
from .gates import GateSource, find_gates, gate_range
from .measures import BlockMeasures, measure_block
from .recorder import ExcitationRecorder
from .report import summary_markdown, write_analysis
from .run import analyze, record_excitations
from .sources import AnalysisSource, from_source
from .stats import BlockExcitations, Excitations

__all__ = [
    "AnalysisData",
    "AnalysisSource",
    "BlockExcitations",
    "BlockMeasures",
    "ExcitationRecorder",
    "Excitations",
    "GateSource",
    "analyze",
    "check_blocks",
    "class_means_figure",
    "default_blocks",
    "distributions_figure",
    "find_gates",
    "from_source",
    "gate_range",
    "measure_block",
    "model_data",
    "per_class_subset",
    "pick_classes",
    "record_excitations",
    "run_data",
    "save_png",
    "summary_markdown",
    "write_analysis",
]
