"""The reproduction protocols of ``senet reproduce`` as data: the networks (each trained without and with
SE), the recipe, the epochs and the seeds.

``paper`` is the paper's CIFAR protocol (Tables 4-5 of arXiv:1709.01507) for ResNet-110, ResNet-164 and
WRN-16-8; ``quick`` trains ResNet-20 and SE-ResNet-20 on the full CIFAR-10 for as many epochs as fit in
about an hour on 2 CPU cores, three seeds each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._validation import did_you_mean
from .grid import Setting


@dataclass(frozen=True)
class Network:
    """One network of a protocol, trained without and with SE.

    Attributes:
        key: Its name on the command line (``--models``) and in the paper's numbers (``PAPER_CIFAR``).
        label: As the paper names it.
        plain: The registered network without SE.
        se: Its SE twin.
        changes: ``TrainConfig`` fields this network trains with beyond the protocol's recipe.
    """

    key: str
    label: str
    plain: str
    se: str
    changes: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Protocol:
    """A reproduction protocol.

    Attributes:
        name: 'paper' or 'quick'.
        description: One paragraph for the report: what it trains and where it departs from the paper.
        networks: The networks, each trained without and with SE.
        recipe: The training recipe (``senet.train.recipes``); ``Network.changes`` override it.
        seeds: Runs per network and variant unless ``--seeds`` says otherwise.
        needs_gpu: On a CPU, start only when confirmed (``yes``), after the estimate.
        eval_every: Evaluate on the test set every this many epochs.
    """

    name: str
    description: str
    networks: tuple[Network, ...]
    recipe: str
    seeds: int
    needs_gpu: bool
    eval_every: int = 1


# He et al. 2016 (Sec. 4.2) warm ResNet-110 up at lr 0.01 for about 400 iterations (one epoch at batch 128);
# here a linear warm-up over the first epoch. Zagoruyko & Komodakis train WRNs for 200 epochs with Nesterov
# momentum, weight decay 5e-4 and the lr multiplied by 0.2 at epochs 60, 120 and 160.
_WARMUP = (("warmup_epochs", 1.0),)
_WRN = (("epochs", 200), ("weight_decay", 5e-4), ("nesterov", True), ("milestones", (0.3, 0.6, 0.8)))

# The quick protocol's epochs: 6 runs (2 networks x 3 seeds) in about an hour on 2 CPU cores. Measured on
# the 2-core development machine (docs/results.md): a training step of batch 128 takes 0.28-0.29 s (median;
# ResNet-20 and SE-ResNet-20 alike), an epoch of 50,000 images about 111 s, a test pass about 6 s:
# 6 runs x 5 epochs x ~117 s = 58 min, plus the final evaluations.
QUICK_EPOCHS = 5

PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol(
        name="paper",
        description=(
            "The paper's CIFAR protocol (Tables 4-5): each network's own recipe, SE with r = 16. ResNet-110 and "
            "ResNet-164: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 50% and 75% of "
            "164 epochs, a one-epoch warm-up. WRN-16-8: 200 epochs, Nesterov momentum, weight decay 5e-4, lr 0.1 "
            "lowered at 30%, 60% and 80% of training, by 10 each time (the WRN paper: by 5; the step schedule "
            "here has one factor). Flips and 4-pixel pad-and-crop."
        ),
        networks=(
            Network("resnet110", "ResNet-110", "cifar_resnet110", "se_cifar_resnet110", _WARMUP),
            Network("resnet164", "ResNet-164", "preact_resnet164", "se_preact_resnet164", _WARMUP),
            Network("wrn16_8", "WRN-16-8", "wrn16_8", "se_wrn16_8", _WRN),
        ),
        recipe="paper_cifar",
        seeds=1,
        needs_gpu=True,
    ),
    "quick": Protocol(
        name="quick",
        description=(
            f"A CPU-sized protocol: ResNet-20 and SE-ResNet-20 (r = 16) on the full training set, recipe "
            f"quick_cifar (one-cycle lr 0.2, Nesterov, weight decay 5e-4, batch 128) for {QUICK_EPOCHS} epochs, "
            "3 seeds: about an hour on 2 CPU cores. Far from convergence (the paper's networks train for 164 "
            "epochs), so the errors are higher than any published number; the question it answers is whether "
            "SE's gain shows above the seed-to-seed spread under one budget."
        ),
        networks=(
            Network("resnet20", "ResNet-20", "cifar_resnet20", "se_cifar_resnet20", (("epochs", QUICK_EPOCHS),)),
        ),
        recipe="quick_cifar",
        seeds=3,
        needs_gpu=False,
    ),
}


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``.

    Raises:
        ValueError: On an unknown name, listing the valid ones.
    """
    if name not in PROTOCOLS:
        hint = did_you_mean(name, PROTOCOLS, n=1)
        raise ValueError(f"unknown protocol {name!r}{hint} (valid: {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def select_networks(protocol: Protocol, models: Sequence[str] | None) -> tuple[Network, ...]:
    """The protocol's networks named by ``models`` (keys or registered names), in the protocol's order; all
    for ``None``.

    Raises:
        ValueError: On a name that is not one of the protocol's networks, or a repeated one.
    """
    if not models:
        return protocol.networks
    names = {n.key: n for n in protocol.networks}
    names.update({model: n for n in protocol.networks for model in (n.plain, n.se)})
    chosen = []
    for model in models:
        if model not in names:
            valid = ", ".join(n.key for n in protocol.networks)
            raise ValueError(f"--models: the {protocol.name} protocol has no network {model!r}"
                             f"{did_you_mean(model, list(names), n=2)} (its networks: {valid})")  # fmt: skip
        chosen.append(names[model])
    if len(set(chosen)) < len(chosen):
        raise ValueError(f"--models names a network twice: {', '.join(models)}")
    return tuple(n for n in protocol.networks if n in chosen)


def protocol_settings(networks: Sequence[Network], overridden: Sequence[str] = ()) -> list[Setting]:
    """Two settings per network (without and with SE); the ``overridden`` options (those the user gave, e.g.
    ``epochs``) keep the base configuration's value instead of the protocol's."""
    settings = []
    for net in networks:
        changes = tuple((k, v) for k, v in net.changes if k not in overridden)
        settings.append(Setting(f"{net.key}-plain", net.label, changes=(("model", net.plain), *changes)))
        settings.append(Setting(f"{net.key}-se", f"SE-{net.label}", changes=(("model", net.se), *changes)))
    return settings
