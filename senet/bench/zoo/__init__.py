"""Suite ``zoo``: what SE costs, network by network (``senet bench --suite zoo``, docs/zoo.md).

For every registered SE network and the same network with SE off (``create_model(name,
attention=None)``), at its natural input size: parameters and multiply-adds (``senet.profiler``, on the
meta device), batch-1 inference latency, and training throughput at a small batch, eagerly and, when
asked, under ``torch.compile``; each with SE's overhead as SE/plain. Hu et al., "Squeeze-and-Excitation
Networks" (arXiv:1709.01507), Table 2 reports the same for ResNet-50 (GFLOPs 3.86 -> 3.87, CPU
inference 164 -> 167 ms): this suite extends it to the whole zoo.

It runs apart from ``senet bench --suite all`` (an hour and more on 2 cores, compiled many more): each
measurement is written to ``<out>/zoo.json`` as it finishes, and a rerun continues where the last
stopped.

    >>> from senet.bench.zoo import ZooOptions, run_zoo
    >>> result = run_zoo(ZooOptions(models=("se_cifar_resnet20",), quick=True, out=None))  # doctest: +SKIP
    >>> print(result.markdown)                                                              # doctest: +SKIP

Modules: ``pairs`` (which networks), ``measure`` (one measurement), ``record`` (the resumable JSON
file), ``table`` (the markdown), ``run`` (the loop).
"""

from .measure import KINDS
from .pairs import ZooPair, select_pairs, zoo_pairs
from .record import ZooRecord
from .run import ZooOptions, ZooResult, run_zoo
from .table import zoo_markdown

__all__ = ["KINDS", "ZooOptions", "ZooPair", "ZooRecord", "ZooResult", "run_zoo", "select_pairs", "zoo_markdown",
           "zoo_pairs"]
