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


def randomize_attention(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial values everywhere in a small module, in place (default inits leave BN at identity and some
    biases at 0): parameters N(0, 0.5^2), BN running means N(0, 0.3^2), running variances in [0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=g, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=b.dtype))
    return module
