"""The model zoo: every SE network of the paper and its follow-ups, with and without SE."""

from . import zoo  # noqa: F401  (importing the families registers them)
from .base import SENetModel, label_attention
from .registry import AttentionConfig, create_model, get_model_entry, list_models, register_model

__all__ = [
    "AttentionConfig",
    "SENetModel",
    "create_model",
    "get_model_entry",
    "label_attention",
    "list_models",
    "register_model",
]
