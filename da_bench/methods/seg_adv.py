"""Output-space adversarial segmentation (Tsai et al. 2018, AdaptSegNet; CLAN's global-alignment baseline),
and the update rule CLAN (clan.py) refines.

Generator G = encoder + heads, discriminator D on the softmax output map (fully convolutional, its patch
logits upsampled to pixel size). One iteration, manual optimisation, as the official code:
    G:  L_seg + damping * lambda_adv * BCE(D(softmax p_t), source)  [* per-pixel weight, clan]
        + damping * regulariser                                      [clan: its weight discrepancy]
    D:  1/2 BCE(D(softmax p_s), source) + 1/2 BCE(D(softmax p_t), target)   [target term weighted, clan]
L_seg = CE(p_s, y_s) here (`segmentation_loss`; clan: each head's CE).
p = the sum of the heads' logits; damping = 1 - i/N when `damping` (CLAN's code), else 1.
Source label 0, target label 1 (the official code's).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from da_bench.losses.clan import weighted_bce_with_logits
from da_bench.methods.segmentation import SegMethod
from da_bench.nets.segnet import PixelDiscriminator, upsample

SOURCE, TARGET = 0.0, 1.0


class SegAdversarial(SegMethod):
    def __init__(self, net, optimizer: Callable, discriminator_optimizer: Callable, lambda_adv: float = 0.001,
                 discriminator_channels: Sequence[int] = (32, 64, 128), damping: bool = False,
                 poly_power: float | None = 0.9, num_heads: int = 1, grid_images: int = 8,
                 warmup_fraction: float = 0.0, head_lr_multiplier: float = 1.0, runner=None):
        super().__init__(net, optimizer, poly_power, num_heads, grid_images, warmup_fraction, head_lr_multiplier,
                         runner=runner)
        self.discriminator_optimizer = discriminator_optimizer
        self.discriminator = PixelDiscriminator(self.num_classes, discriminator_channels)

    def configure_optimizers(self):
        gen = self.optimizer(params=self.generator_parameters())
        disc = self.discriminator_optimizer(params=self.discriminator.parameters())
        return [gen, disc], [{"scheduler": self.poly_scheduler(o), "interval": "step"} for o in (gen, disc)]

    def pixel_weight(self, target_logits: list[torch.Tensor]) -> torch.Tensor | None:
        """Per-pixel weight of the target adversarial terms (B x H x W), None = unweighted. It may carry a
        gradient into the generator; the discriminator's step uses it detached."""
        return None

    def segmentation_loss(self, source_logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """The supervised term on source scenes: CE of the prediction p = the sum of the heads' logits."""
        return F.cross_entropy(torch.stack(source_logits).sum(0), labels)

    def generator_regularizer(self) -> torch.Tensor | None:
        """An extra generator loss, already multiplied by its coefficient (CLAN: the weight discrepancy)."""
        return None

    def domain_logits(self, prob: torch.Tensor) -> torch.Tensor:
        return upsample(self.discriminator(prob), prob.shape[-2:])

    def update(self, batch):
        opt_g, opt_d = self.optimizers()
        damping = 1.0 - self.schedule_progress if self.hparams.damping else 1.0
        x_s, y_s, x_t = batch["src_x"], batch["src_y"].long(), batch["tgt_x"]

        self.toggle_optimizer(opt_g)
        logits_s, logits_t = self.head_logits(x_s), self.head_logits(x_t)
        p_s, p_t = torch.stack(logits_s).sum(0), torch.stack(logits_t).sum(0)
        weight = self.pixel_weight(logits_t)
        loss_seg = self.segmentation_loss(logits_s, y_s)
        loss_adv = weighted_bce_with_logits(self.domain_logits(F.softmax(p_t, 1)), SOURCE, weight)
        loss_g = loss_seg + damping * self.hparams.lambda_adv * loss_adv
        regularizer = self.generator_regularizer()
        if regularizer is not None:
            loss_g = loss_g + damping * regularizer
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        d_s = self.domain_logits(F.softmax(p_s.detach(), 1))
        d_t = self.domain_logits(F.softmax(p_t.detach(), 1))
        weight = weight.detach() if weight is not None else None
        loss_d = 0.5 * (weighted_bce_with_logits(d_s, SOURCE) + weighted_bce_with_logits(d_t, TARGET, weight))
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.optimizer.step()  # raw step: Lightning's global step counts iterations (one G step each)
        self.untoggle_optimizer(opt_d)

        dom_acc = 0.5 * ((d_s < 0).float().mean() + (d_t > 0).float().mean())
        self.log_train({"train/loss_seg": loss_seg, "train/loss_adv": loss_adv, "train/loss_d": loss_d,
                       "train/dom_acc": dom_acc})
