"""The digit / sign architectures of the papers, as one configurable conv net.

DANN (Ganin & Lempitsky 2015, appendix; conf/net/dann_*.yaml): MNIST conv5x5-32, pool 2, conv5x5-48, pool 2
-> fc100, fc100, fc10 (domain head fc100 -> 1); SVHN/SYN conv5x5-64, pool 3/2, conv5x5-64, pool 3/2,
conv5x5-128 -> fc3072, fc2048, fc10 (domain head fc1024, fc1024 -> 1); GTSRB conv5x5-96, pool 2,
conv3x3-144, pool 2, conv5x5-256, pool 2 -> fc512, fc43. LeNet (ADDA, conf/net/lenet.yaml): conv5x5-20,
pool 2, conv5x5-50, pool 2, fc500 | fc10.

`encoder` maps images to the features methods align (B x feature_dim); `classifier` maps features to logits.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

INITS = ("default", "tf_truncated_normal", "glorot_uniform")


def init_weights(module: nn.Module, scheme: str) -> None:
    """'default': PyTorch's own. 'tf_truncated_normal': the tf-dann initialisation, weights from
    N(0, 0.1) truncated at 2 sigma, biases 0.1 (the scale the paper's gain depends on).
    'glorot_uniform': TF-slim's default, the ADDA code's (weights U(-a, a), a = sqrt(6 / (fan_in + fan_out)),
    biases 0)."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, not {scheme!r}")
    if scheme == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "glorot_uniform":
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            else:
                nn.init.trunc_normal_(m.weight, std=0.1, a=-0.2, b=0.2)
                nn.init.constant_(m.bias, 0.1)


def mlp(in_features: int, hidden: Sequence[int], out_features: int | None = None) -> nn.Sequential:
    layers, width = [], in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """convs: [out_channels, kernel, pool_kernel, pool_stride] per block (pool_kernel 0: no pooling);
    padding: 'same' or 'valid'; encoder_fc: hidden layers that belong to the encoder (LeNet's fc500);
    head_fc: hidden layers of the label predictor; discriminator_hidden: the paper's domain-head widths
    for this architecture (used by methods that build a feature-level discriminator)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, convs: Sequence[Sequence[int]],
                 padding: str = "same", encoder_fc: Sequence[int] = (), head_fc: Sequence[int] = (),
                 discriminator_hidden: Sequence[int] = (100,), init: str = "default"):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
        layers, channels = [], in_channels
        for out, kernel, pool_k, pool_s in convs:
            layers += [nn.Conv2d(channels, out, kernel, padding=kernel // 2 if padding == "same" else 0),
                       nn.ReLU(inplace=True)]
            if pool_k:
                layers.append(nn.MaxPool2d(pool_k, pool_s, padding=(pool_k - 1) // 2 if padding == "same" else 0))
            channels = out
        layers.append(nn.Flatten())
        conv = nn.Sequential(*layers)
        with torch.no_grad():
            flat = conv(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.encoder = nn.Sequential(*conv, *mlp(flat, encoder_fc))
        self.feature_dim = encoder_fc[-1] if encoder_fc else flat
        self.classifier = mlp(self.feature_dim, head_fc, num_classes)
        self.discriminator_hidden = list(discriminator_hidden)
        self.init = init
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))

    def head_activations(self, features: torch.Tensor, classifier: nn.Sequential | None = None) -> list[torch.Tensor]:
        """The output of every fully connected layer of the classifier (hidden ones after ReLU), logits last;
        `classifier`: another head of the same shape (ADDA's adapted target copy), else the net's own."""
        classifier = self.classifier if classifier is None else classifier
        outputs, h = [], features
        for layer in classifier:
            h = layer(h)
            if isinstance(layer, nn.ReLU) or layer is classifier[-1]:
                outputs.append(h)
        return outputs
