"""How an attention module enters a network it was not written into: a hook on one of its modules.

The user's ``forward`` runs unchanged; a forward hook replaces a module's output u by A(u) (or a
forward pre-hook replaces its input), A being the attention module. A stays an ordinary registered child
(of the residual block, or of the hooked layer), so it is in ``state_dict``, ``named_modules``,
``.to()``, the profiler and the optimiser, and no existing ``state_dict`` key moves.

The hook holds the *owner* of A and A's attribute name, not A itself, and is a plain picklable object:
``copy.deepcopy`` and ``pickle`` carry it along with the model and point it at the copied owner, and
replacing ``owner.<name>`` (e.g. by ``to_paper_gate``) changes what the hook applies.

What would break it: a tracer that skips module hooks (``torch.jit.trace``, ``torch.compile``,
``torch.export`` and, in torch 2.13, ``torch.fx.symbolic_trace`` keep them), ``torch.jit.script`` (hooks
must be scripted functions), and a conv-BN fusion that drops the hooked BN.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class Fold:
    """Where the factor 2 of a doubled gate can go when returning to the paper's gate, exactly.

    Attributes:
        module: The layer to scale by 2.
        side: 'output': the attended tensor u is ``module``'s output, possibly through a positively
            homogeneous activation (ReLU): scale its weight and bias, so the attention sees 2u and its
            first layer is halved. 'input': the attention's output feeds ``module`` (a convolution):
            scale its weight only.
    """

    module: nn.Module
    side: str


class AttentionHook:
    """Applies ``getattr(owner, name)`` to a module's output (``side='output'``) or first input ('input').

    Args:
        owner: The module holding the attention module as a child.
        name: The attention module's attribute name on ``owner``.
        side: 'output' (a forward hook) or 'input' (a forward pre-hook).
        fold: Where ``to_paper_gate`` puts the factor 2, or ``None`` when no layer can take it exactly.
        layout: 'channels_first' (N, C, ...), or 'channels_last' (N, ..., C): the tensor is permuted to
            channels-first for the attention module and back (timm's ConvNeXt MLP output).
    """

    def __init__(
        self, owner: nn.Module, name: str, side: str, fold: Fold | None, layout: str = "channels_first"
    ) -> None:
        self.owner = owner
        self.name = name
        self.side = side
        self.fold = fold
        self.layout = layout

    @property
    def attention(self) -> nn.Module:
        return getattr(self.owner, self.name)

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any = None) -> Any:
        if self.side == "input":
            return (self.attention(args[0]), *args[1:])
        if getattr(self, "layout", "channels_first") == "channels_last":
            last = output.dim() - 1
            attended = self.attention(output.permute(0, last, *range(1, last)))  # (N, C, H, W)
            return attended.permute(0, *range(2, last + 1), 1)  # (N, H, W, C)
        return self.attention(output)


def attach(module: nn.Module, hook: AttentionHook) -> None:
    """Installs ``hook`` on ``module``: first among its hooks, so that later hooks see the attended tensor."""
    if hook.side == "input":
        module.register_forward_pre_hook(hook, prepend=True)
    else:
        module.register_forward_hook(hook, prepend=True)


def attention_hooks(model: nn.Module) -> Iterator[tuple[nn.Module, AttentionHook]]:
    """Every ``AttentionHook`` installed in ``model``, with the module it is installed on."""
    for module in model.modules():
        for hook in (*module._forward_pre_hooks.values(), *module._forward_hooks.values()):
            if isinstance(hook, AttentionHook):
                yield module, hook
