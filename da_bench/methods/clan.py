"""CLAN (Luo et al., CVPR 2019): category-level adversaries through co-training.

The update rule of seg_adv.py with two classifier heads C1, C2 on the shared encoder E (p = p1 + p2) and:
- the weight discrepancy loss lambda_weight * (cos(vec C1, vec C2) + 1), keeping the two heads different;
- the self-adaptive adversarial loss: each target pixel's BCE (in G's adversarial term and in D's target
  term) weighted by lambda_local * (1 - cos(softmax p1, softmax p2)) + epsilon; during the first
  preheat_fraction of training the plain BCE is used, and adversarial and weight losses are damped by
  (1 - i/N), as in the official code.
The weight map is treated as a constant (detached): it scales the adversarial term, it is not itself
optimised. Paper defaults: lambda_weight 0.01, lambda_adv 0.001, lambda_local 40, epsilon 0.4.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from da_bench.losses.clan import disagreement_weight, weight_discrepancy
from da_bench.methods.seg_adv import SegAdversarial


class CLAN(SegAdversarial):
    def __init__(self, net, optimizer: Callable, discriminator_optimizer: Callable, lambda_adv: float = 0.001,
                 lambda_weight: float = 0.01, lambda_local: float = 40.0, epsilon: float = 0.4,
                 preheat_fraction: float = 0.05, discriminator_channels: Sequence[int] = (32, 64, 128),
                 damping: bool = True, poly_power: float | None = 0.9, grid_images: int = 8):
        super().__init__(net, optimizer, discriminator_optimizer, lambda_adv, discriminator_channels, damping,
                         poly_power, num_heads=2, grid_images=grid_images)

    def pixel_weight(self, target_logits):
        if self.progress < self.hparams.preheat_fraction:
            return None
        p1, p2 = (F.softmax(logits.detach(), 1) for logits in target_logits)
        weight = disagreement_weight(p1, p2, self.hparams.lambda_local, self.hparams.epsilon)
        self.log("train/weight_mean", weight.mean())
        return weight

    def generator_regularizer(self) -> torch.Tensor:
        loss = weight_discrepancy(self.heads[0].parameters(), self.heads[1].parameters())
        self.log("train/loss_weight", loss)
        return self.hparams.lambda_weight * loss
