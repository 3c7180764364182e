"""The fixed vocabularies the command line offers as choices: free of torch, so that building the
parser (``senet --help``) imports nothing heavy. Each is re-exported by the module that uses it
(``senet.models.registry.PLACEMENTS``, ``senet.profiler.render.FORMATS``, ``senet.bench.runner.SUITES``).
"""

from __future__ import annotations

# Where SE sits in a residual block (see ``senet.models.create_model``'s ``se_placement``).
PLACEMENTS = ("standard", "pre", "post", "identity", "after_3x3")

# Output formats of ``senet profile`` (``ProfileReport.format``).
FORMATS = ("table", "markdown", "json", "csv")

# Benchmark suites of ``senet bench``, in the order ``--suite all`` runs them.
BENCH_SUITES = ("se", "network", "engine", "cifar", "compile")

# Benchmark suites that run apart from ``--suite all``: long (an hour and more), resumable, with a record
# file of their own (``senet.bench.zoo``).
BENCH_APART_SUITES = ("zoo",)

# Checkpoint namings of ``senet convert`` (``senet.convert.list_namings()`` plus our own keys).
NAMINGS = ("ours", "legacy", "modern", "torchvision", "tf_slim")

# Formats of ``senet export``.
EXPORT_FORMATS = ("onnx", "torchscript")
