"""DSN's private encoder and shared decoder (Bousmalis et al., NIPS 2016), as the authors' code builds them
(tensorflow/models research/domain_adaptation/domain_separation/models.py: `default_encoder`, `small_decoder`,
the code's defaults). Every layer but the decoder's last is followed by batch norm and ReLU; 'same' padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class PrivateEncoder(nn.Module):
    """conv5x5-32, pool 2, conv5x5-64, pool 2, fc(code_dim): images B x C x H x W -> private code B x code_dim."""

    def __init__(self, channels: int, image_size: int, code_dim: int):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(channels, 32, 5), nn.MaxPool2d(2), conv_bn(32, 64, 5), nn.MaxPool2d(2),
                                   nn.Flatten())
        flat = 64 * (image_size // 4) ** 2
        self.code = nn.Sequential(nn.Linear(flat, code_dim, bias=False), nn.BatchNorm1d(code_dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.convs(x))


class SmallDecoder(nn.Module):
    """fc300 -> 3 x 10 x 10 -> conv3x3-16, conv3x3-16 -> resize (nearest) to image_size -> conv3x3-16 ->
    conv3x3-channels: code B x code_dim -> image B x channels x image_size x image_size."""

    def __init__(self, code_dim: int, channels: int, image_size: int):
        super().__init__()
        self.image_size = image_size
        self.fc = nn.Sequential(nn.Linear(code_dim, 300, bias=False), nn.BatchNorm1d(300), nn.ReLU(inplace=True))
        self.low = nn.Sequential(conv_bn(3, 16, 3), conv_bn(16, 16, 3))
        self.high = nn.Sequential(conv_bn(16, 16, 3), nn.Conv2d(16, channels, 3, padding=1))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        low = self.low(self.fc(code).view(-1, 3, 10, 10))
        return self.high(F.interpolate(low, size=(self.image_size, self.image_size), mode="nearest"))
