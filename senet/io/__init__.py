# TEMPORARY stub in the lead's branch: replaced by the io branch at merge.
from typing import Any


def find_weights(path: Any) -> Any:
    from ..train.run import find_weights as f

    return f(path)


def atomic_save_tensors(*args: Any, **kwargs: Any) -> Any:
    from ..train.checkpoint import atomic_save_tensors as f

    return f(*args, **kwargs)
