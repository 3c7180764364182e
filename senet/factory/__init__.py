"""Models from a name or from anything a user holds: the floor above the registry, the checkpoint helpers
and retrofit.

* ``create_model(name, pretrained=...)``: a registered network, with public weights when asked.
* ``load_model(source, model=..., num_classes=...)``: the one way in for a run, a checkpoint, a retrofit
  output, a weights file in any naming, a URL or a tag; ``model.source_info`` says what was loaded.
* ``build_run_model(config, num_classes)``: the network a run's ``config.json`` records.
* ``retrofit_checkpoint`` / ``load_retrofitted``: ``senet retrofit``'s output, written and read back.
"""

from .create import create_model
from .load import ModelSource, is_recorded_source, load_model
from .retrofit_output import retrofit_checkpoint
from .retrofitted import METADATA_KEY, build_retrofitted, load_retrofitted, retrofit_record
from .runs import (
    ARCHITECTURE,
    MODEL_OPTIONS,
    NORMALIZATION,
    build_recorded,
    build_run_model,
    read_run_config,
    run_preprocessing,
)

__all__ = [
    "ARCHITECTURE",
    "NORMALIZATION",
    "METADATA_KEY",
    "MODEL_OPTIONS",
    "ModelSource",
    "build_recorded",
    "build_retrofitted",
    "build_run_model",
    "create_model",
    "is_recorded_source",
    "load_model",
    "load_retrofitted",
    "read_run_config",
    "retrofit_checkpoint",
    "retrofit_record",
    "run_preprocessing",
]
