"""CLAN (Luo et al., CVPR 2019): category-level adversaries through co-training, as the official
`CLAN_train.py` trains it.

The update rule of seg_adv.py with two classifier heads C1, C2 on the shared encoder E (prediction
p = p1 + p2; D reads softmax(p1 + p2)) and:
- the segmentation loss of each head on its own, CE(p1, y) + CE(p2, y), so each head is a classifier;
- the weight discrepancy loss 2 * lambda_weight * (cos(vec C1, vec C2) + 1) (the code doubles it);
- the self-adaptive adversarial loss: each target pixel's BCE (in G's adversarial term and in D's target
  term) weighted by lambda_local * (1 - cos(softmax p1, softmax p2)) + epsilon. In G's term the map keeps
  its gradient, as in the code (the heads also learn from where they disagree); D's step uses it detached;
- a preheat: for the first preheat_fraction of training the plain BCE is used and the learning rates of
  G and D warm up linearly from 0; afterwards the poly decay. Adversarial and weight losses are damped
  by (1 - i/N); the heads train at 10x the trunk's learning rate.
Paper defaults: lambda_weight 0.01, lambda_adv 0.001, lambda_local 40, epsilon 0.4.

Remaining deviations: G uses Adam 1e-3 instead of SGD 2.5e-4 (that rate fine-tunes an ImageNet DeepLab;
this net trains from scratch, see conf/method/seg_source_only.yaml), and D's two terms are averaged
(AdaptSegNet's 1/2) where the code sums them; with Adam a constant factor on D's loss hardly matters.
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
                 damping: bool = True, poly_power: float | None = 0.9, grid_images: int = 8,
                 head_lr_multiplier: float = 10.0, weight_map_gradient: bool = True, runner=None):
        super().__init__(net, optimizer, discriminator_optimizer, lambda_adv, discriminator_channels, damping,
                         poly_power, num_heads=2, grid_images=grid_images, warmup_fraction=preheat_fraction,
                         head_lr_multiplier=head_lr_multiplier, runner=runner)

    def graph_phase(self):
        return self._preheating()  # pixel_weight's branch: one CUDA graph each side

    def _preheating(self) -> bool:
        return self.progress < self.hparams.preheat_fraction

    def segmentation_loss(self, source_logits, labels):
        return sum(F.cross_entropy(logits, labels) for logits in source_logits)

    def pixel_weight(self, target_logits):
        if self._preheating():
            return None
        if not self.hparams.weight_map_gradient:
            target_logits = [logits.detach() for logits in target_logits]
        p1, p2 = (F.softmax(logits, 1) for logits in target_logits)
        weight = disagreement_weight(p1, p2, self.hparams.lambda_local, self.hparams.epsilon)
        self.log_train({"train/weight_mean": weight.detach().mean()}, prog_bar=False)
        return weight

    def generator_regularizer(self) -> torch.Tensor:
        loss = weight_discrepancy(self.heads[0].parameters(), self.heads[1].parameters())
        self.log_train({"train/loss_weight": loss}, prog_bar=False)
        return 2 * self.hparams.lambda_weight * loss
