import torch

import senet


def test_se_block_keeps_shape_and_counts_parameters():
    se = senet.SqueezeExcite(256, reduction=16)
    x = torch.randn(2, 256, 5, 5)
    assert se(x).shape == x.shape
    assert sum(p.numel() for p in se.parameters()) == 2 * 256 * 16 + 16 + 256 == 8464
