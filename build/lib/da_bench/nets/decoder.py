"""A small convolutional decoder: code (B x code_dim) -> image (B x channels x size x size), size % 4 == 0."""
from __future__ import annotations

import torch
from torch import nn


class ImageDecoder(nn.Module):
    def __init__(self, code_dim: int, channels: int, image_size: int, width: int = 64):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ImageDecoder needs an image size divisible by 4, not {image_size}")
        self.width, self.start = width, image_size // 4
        self.fc = nn.Linear(code_dim, width * self.start * self.start)
        self.net = nn.Sequential(
            nn.ReLU(inplace=True), nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True), nn.Upsample(scale_factor=2), nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(code).view(-1, self.width, self.start, self.start))
