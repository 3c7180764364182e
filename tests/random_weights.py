"""Random weights for tests that move tensors between models and files."""

import torch


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The model with its own initialisation of the weights (re-drawn from ``seed``) and random BatchNorm
    statistics and affine parameters, so that a tensor loaded in the wrong place shows. Weights keep their
    He-style scale: a network with arbitrary weights collapses to an output that hardly depends on its input.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:  # convolutions and linear layers: same scale as their initialisation, new draw
                t.copy_(torch.randn(t.shape, generator=gen) * t.std().clamp_min(1e-3))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("weight"):
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=gen))
            else:  # biases and running means
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
    return model.eval()
