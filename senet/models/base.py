"""The interface every model of the zoo shares, so that analysis and retrofit tools need no special cases.

A model is ``forward_features`` (stem and stages, (N, 3, H, W) -> (N, num_features, h, w)) followed by
``forward_head`` (pooling, dropout, classifier). Attention modules are labelled with the paper's names:
``SE_<stage>_<block>``, the stem being stage 1, so ResNet-50's conv2_x..conv5_x are stages 2..5 and
``SE_2_3`` is the third block of conv2_x (the paper's Fig. 6 naming).
"""

from __future__ import annotations

from torch import Tensor, nn

ATTENTION_LABEL = "attention_label"


def label_attention(module: nn.Module | None, stage: int, block: int) -> nn.Module | None:
    """Tags an attention module with its paper-style name ``SE_<stage>_<block>`` (both 1-based).

    Args:
        module: The attention module, or ``None`` (then nothing happens).
        stage: The paper's stage number (the stem is stage 1).
        block: The block's position within its stage, starting at 1.

    Returns:
        ``module``, for chaining in a constructor.
    """
    if module is not None:
        setattr(module, ATTENTION_LABEL, f"SE_{stage}_{block}")
    return module


class SENetModel(nn.Module):
    """Base class of every model in the zoo.

    Subclasses build ``self.num_features`` and implement ``forward_features`` and ``forward_head``;
    they keep their classifier in ``self.fc`` (a ``nn.Linear`` or ``nn.Identity``) unless they
    override ``get_classifier`` and ``reset_classifier``.
    """

    num_features: int
    num_classes: int
    drop_rate: float = 0.0
    # The natural input (C, H, W): set by ``create_model`` from the registry ((3, 32, 32) for the CIFAR
    # networks); ``senet.profile`` uses it when given no ``input_size``.
    default_input_size: tuple[int, int, int] = (3, 224, 224)

    def forward_features(self, x: Tensor) -> Tensor:
        """Runs the stem and all stages: (N, in_chans, H, W) -> (N, num_features, h, w)."""
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pooling, dropout and the classifier: (N, num_features, h, w) -> (N, classes).

        Args:
            x: The output of ``forward_features``.
            pre_logits: Return the pooled features (N, num_features) instead of the logits.
        """
        x = x.mean((2, 3)) if x.dim() == 4 else x
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """Returns the final classification layer."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the classifier by a new one for ``num_classes`` classes (0: identity, features out).

        Raises:
            ValueError: If ``num_classes`` is negative.
        """
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def attention_modules(self) -> dict[str, nn.Module]:
        """Returns the model's attention modules by paper-style name, in forward order.

        Returns:
            ``{'SE_2_1': module, 'SE_2_2': module, ...}``; empty when the model has no attention.
        """
        return {
            getattr(m, ATTENTION_LABEL): m for m in self.modules() if hasattr(m, ATTENTION_LABEL)
        }

    def attention_paths(self) -> dict[str, str]:
        """Returns the ``state_dict`` prefix of each attention module, by paper-style name."""
        return {
            getattr(m, ATTENTION_LABEL): path for path, m in self.named_modules() if hasattr(m, ATTENTION_LABEL)
        }
