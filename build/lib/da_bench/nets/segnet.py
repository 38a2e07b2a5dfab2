"""Fully convolutional nets for the digit-scene segmentation pairs (CLAN's setting at digit scale).

`SegNet` is DeepLab-shaped and small enough to train from scratch on a CPU: a trunk of 3x3 convs with two
stride-2 steps and a dilated last conv (output stride 4), then a 3x3 conv classifier giving class logits
at 1/4 resolution that `forward` upsamples bilinearly to the input size (DeepLab's `interp`).
    encoder:    B x C x H x W -> B x feature_dim x H/4 x W/4
    classifier: B x feature_dim x H/4 x W/4 -> B x num_classes x H/4 x W/4
`PixelDiscriminator` is CLAN's / AdaptSegNet's fully convolutional discriminator on a softmax map:
4x4 stride-2 convs with LeakyReLU(0.2), ending in one logit per patch (B x 1 x H/2^n x W/2^n).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def upsample(logits: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SegNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int] = (16, 32, 64), dilation: int = 2):
        super().__init__()
        w0, w1, w2 = widths
        layers = [(in_channels, w0, 1, 1), (w0, w1, 2, 1), (w1, w1, 1, 1), (w1, w2, 2, 1), (w2, w2, 1, dilation)]
        self.encoder = nn.Sequential(*(
            m for c_in, c_out, stride, dil in layers
            for m in (nn.Conv2d(c_in, c_out, 3, stride, padding=dil, dilation=dil), nn.ReLU(inplace=True))
        ))
        self.feature_dim = w2
        self.classifier = nn.Conv2d(w2, num_classes, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(self.classifier(self.encoder(x)), x.shape[-2:])


class PixelDiscriminator(nn.Module):
    """softmax map B x num_classes x H x W -> patch logits B x 1 x H/2^(n+1) x W/2^(n+1) (n = len(channels))."""

    def __init__(self, num_classes: int, channels: Sequence[int] = (32, 64, 128)):
        super().__init__()
        layers, width = [], num_classes
        for c in channels:
            layers += [nn.Conv2d(width, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            width = c
        layers.append(nn.Conv2d(width, 1, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, prob: torch.Tensor) -> torch.Tensor:
        return self.net(prob)
