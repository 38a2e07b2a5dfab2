"""Shared mechanics of the statistic-matching methods (DDC, DAN, Deep CORAL): one SGD step on
L = CE(C(E(x_s)), y_s) + weight * sum_l D(h_l(x_s), h_l(x_t)), where h_l are chosen layers of
[encoder features, classifier hidden layers..., logits] (negative indices count from the logits)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from da_bench.methods.base import DAMethod


class FeatureAlignment(DAMethod):
    def __init__(self, net, optimizer: Callable, lr_schedule: dict | None = None, weight: float = 1.0,
                 layers: Sequence[int] = (-1,), runner=None):
        super().__init__(net, optimizer, lr_schedule, runner)

    def discrepancy(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, batch):
        x_s, y_s, x_t = batch["src_x"], batch["src_y"], batch["tgt_x"]
        features = self.net.encoder(torch.cat([x_s, x_t]))
        activations = [features, *self.net.head_activations(features)]
        n = len(x_s)
        loss_cls = F.cross_entropy(activations[-1][:n], y_s)
        chosen = {max(i, -len(activations)) for i in self.hparams.layers}  # nets with fewer layers: clip
        loss_align = sum(self.discrepancy(activations[i][:n], activations[i][n:]) for i in sorted(chosen))
        self.log_train({"train/loss_cls": loss_cls, "train/loss_align": loss_align})
        return loss_cls + self.hparams.weight * loss_align
