"""Experiments built from many training runs: the paper's ablations (``ablate``) and its CIFAR results
(``reproduce``), each trained over several seeds, resumable run by run, and reported beside the paper's
own numbers."""

from __future__ import annotations

from .ablate import ablate
from .grid import Setting, run_grid
from .protocols import PROTOCOLS, Protocol
from .reproduce import reproduce
from .vary import VARY_KEYS, Vary, parse_vary

__all__ = ["PROTOCOLS", "VARY_KEYS", "Protocol", "Setting", "Vary", "ablate", "parse_vary", "reproduce", "run_grid"]
