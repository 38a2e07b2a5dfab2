"""The segmentation base (seg_source_only, seg_adv, clan): a `Method` with the Segmentation task (mIoU, per-class
IoU, pixel accuracy, predictions.png; methods/tasks.py), the classifier heads, and the poly learning rate of
DeepLab.

A batch is the classification one with masks for labels: src_x B x C x H x W, src_y B x H x W (uint8
class ids, 10 = background on digit scenes). `heads` holds the net's classifier and, for co-training
methods, fresh copies of it; the prediction is the sum of the heads' logits (CLAN: p = p1 + p2).
The snapshot validators score `pixels_per_image` fixed pixels of each val scene as samples (features =
logits; src_acc and oracle are pixel accuracies there); each pick reports test mIoU.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from da_bench.methods.base import Method
from da_bench.methods.tasks import Segmentation
from da_bench.nets.segnet import upsample


class SegMethod(Method):
    def __init__(self, net: nn.Module, optimizer: Callable | None = None, poly_power: float | None = 0.9,
                 num_heads: int = 1, grid_images: int = 8, warmup_fraction: float = 0.0,
                 head_lr_multiplier: float = 1.0, pixels_per_image: int = 16, runner=None):
        if not isinstance(getattr(net, "classifier", None), nn.Conv2d):
            raise ValueError(f"{type(self).__name__} segments scenes; {type(net).__name__} has no per-pixel classifier. "
                             "Use data=mnist_mnistm_seg or usps_mnist_seg")
        num_classes = net.classifier.out_channels
        super().__init__(net, Segmentation(num_classes, pixels_per_image, grid_images), optimizer, runner)
        extra = [copy.deepcopy(net.classifier) for _ in range(num_heads - 1)]
        for head in extra:
            head.reset_parameters()  # the co-training heads start apart
        self.heads = nn.ModuleList([net.classifier, *extra])
        self.num_classes = num_classes

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each head's logits at pixel resolution: [B x K x H x W] * num_heads."""
        features = self.net.encoder(x)
        return [upsample(head(features), x.shape[-2:]) for head in self.heads]

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.head_logits(x)).sum(0)

    def lr_factor(self, i: int) -> float:
        """lr_i / lr_0: a linear warm-up i / W over the first warmup_fraction of training (CLAN's code, W its
        preheat), then (1 - i / max_steps)^power (DeepLab / CLAN); constant when poly_power is None."""
        power, total = self.hparams.poly_power, max(1, self.trainer.max_steps)
        warmup = round(self.hparams.warmup_fraction * total)
        if i < warmup:
            return i / warmup
        return 1.0 if power is None else max(0.0, 1 - i / total) ** power

    def poly_scheduler(self, optimizer) -> LambdaLR:
        """lr_factor for every param group; the generator's heads group (the last) x head_lr_multiplier."""
        groups = len(optimizer.param_groups)
        return LambdaLR(optimizer, [
            (lambda i, m=(self.hparams.head_lr_multiplier if g == 1 else 1.0): m * self.lr_factor(i))
            for g in range(groups)])

    def generator_parameters(self) -> list[dict]:
        """Two param groups, each parameter once: the trunk (encoder), then every head (heads[0] is
        net.classifier; a parameter listed twice would get two optimiser steps per iteration)."""
        heads = {id(p) for p in self.heads.parameters()}
        return [{"params": [p for p in self.net.parameters() if id(p) not in heads]},
                {"params": list(self.heads.parameters())}]

    def configure_optimizers(self):
        optimizer = self.optimizer(params=self.generator_parameters())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.poly_scheduler(optimizer), "interval": "step"}}

