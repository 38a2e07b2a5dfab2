"""Feature-level domain discriminators."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from da_bench.nets.convnet import init_weights, mlp


class DomainDiscriminator(nn.Module):
    """MLP: features (B x in_features) -> one domain logit per sample (B); source = 1, target = 0.

    DANN's domain classifier (fc100 -> 1 for MNIST, fc1024, fc1024 -> 1 otherwise) and ADDA's
    adversary (fc500, fc500 -> 1) are both of this shape.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (500, 500), init: str = "default"):
        super().__init__()
        self.net = mlp(in_features, hidden, 1)
        init_weights(self, init)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)
