"""Files: atomic writes, safe reading of checkpoints, the run-folder layout, output checks, one-line errors.

The floor every other part of senet stands on for file work: it imports only the standard library,
torch, safetensors and numpy, and no other senet package.

    >>> from senet.io import SUMMARY_FILE, atomic_write_text, find_weights, read_state_dict
    >>> atomic_write_text(run_dir / SUMMARY_FILE, text)      # the old file or the whole new one, never a part
    >>> state = read_state_dict("checkpoint.pth")            # a crafted pickle is refused before it runs
    >>> weights, run_dir = find_weights("runs/se_resnet20")   # final weights, else the newest checkpoint's
"""

from .atomic import atomic_path, atomic_save_tensors, atomic_write_bytes, atomic_write_text, fsync_dir, fsync_file
from .errors import UnsafeCheckpointError, one_line
from .folder import replace_folder
from .layout import (
    CHECKPOINT_FILES,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    LATEST_FILE,
    META_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_FILES,
    STATE_FILE,
    SUMMARY_FILE,
    checkpoint_name,
    checkpoint_position,
    find_weights,
    holds_run,
    is_complete,
    latest_checkpoint,
    list_checkpoints,
)
from .outputs import check_output_file, check_output_folder
from .pickled import WRAPPER_KEYS, safe_torch_load, unwrap_state_dict
from .safetensors_files import looks_like_safetensors, read_safetensors, safetensors_metadata
from .state_dict import read_state_dict

__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINT_FILES",
    "CONFIG_FILE",
    "LATEST_FILE",
    "META_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "RUN_FILES",
    "STATE_FILE",
    "SUMMARY_FILE",
    "WRAPPER_KEYS",
    "UnsafeCheckpointError",
    "atomic_path",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_file",
    "check_output_folder",
    "checkpoint_name",
    "checkpoint_position",
    "find_weights",
    "holds_run",
    "fsync_dir",
    "fsync_file",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "looks_like_safetensors",
    "one_line",
    "read_safetensors",
    "read_state_dict",
    "replace_folder",
    "safe_torch_load",
    "safetensors_metadata",
    "unwrap_state_dict",
]
