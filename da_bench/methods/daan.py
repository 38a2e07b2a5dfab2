"""DAAN (Yu et al., "Transfer Learning with Dynamic Adversarial Adaptation Network", ICDM 2019).

L = CE(source) + w * [(1 - omega) L_g + omega * (1/C) sum_c L_l^c], all behind one gradient reversal
layer with DANN's lambda_p. L_g: a global domain discriminator on the features; L_l^c: one local
discriminator per class fed with the features weighted by the predicted probability of class c
(both domains). The dynamic factor omega = d_g / (d_g + d_l) weighs marginal vs conditional alignment,
with the proxy A-distances d = 2 (1 - 2 err) (clipped to [0, 2]) from each discriminator's error over the
last `omega_interval` steps (the paper re-estimates it each epoch); it starts at 0.5 and is logged.
The local discriminators are narrower than the global one by default (local_hidden: fc100 -> 1): with 43
GTSRB classes, 43 copies of the fc1024-fc1024 head would hold over 300M weights.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from da_bench.losses import DomainAdversarialLoss, dann_lambda
from da_bench.methods.base import DAMethod
from da_bench.nets import DomainDiscriminator


def dynamic_factor(global_error: float, local_error: float) -> float:
    """omega from the global and (mean) local discriminator errors; always in [0, 1]."""
    d_g = min(max(2 * (1 - 2 * global_error), 0.0), 2.0)
    d_l = min(max(2 * (1 - 2 * local_error), 0.0), 2.0)
    return 0.5 if d_g + d_l == 0 else d_g / (d_g + d_l)


class DAAN(DAMethod):
    def __init__(self, net, optimizer: Callable, lr_schedule: dict | None = None, gamma: float = 10.0,
                 weight: float = 1.0, discriminator_hidden: Sequence[int] | None = None,
                 local_hidden: Sequence[int] = (100,), omega_interval: int = 500):
        super().__init__(net, optimizer, lr_schedule)
        hidden = discriminator_hidden if discriminator_hidden is not None else net.discriminator_hidden
        classes = net.classifier[-1].out_features
        self.global_loss = DomainAdversarialLoss(DomainDiscriminator(net.feature_dim, hidden, init=net.init))
        self.local_losses = nn.ModuleList(
            DomainAdversarialLoss(DomainDiscriminator(net.feature_dim, local_hidden, init=net.init))
            for _ in range(classes))
        self.register_buffer("omega", torch.tensor(0.5))
        self.register_buffer("error_sums", torch.zeros(3))  # global error, mean local error, steps

    def training_step(self, batch, batch_idx):
        x_s, y_s, x_t = batch["src_x"], batch["src_y"], batch["tgt_x"]
        features = self.net.encoder(torch.cat([x_s, x_t]))
        logits = self.net.classifier(features)
        n = len(x_s)
        loss_cls = F.cross_entropy(logits[:n], y_s)
        coeff = dann_lambda(self.progress, self.hparams.gamma)
        loss_g, acc_g = self.global_loss(features[:n], features[n:], coeff)
        probs = logits.softmax(1).detach()
        local = [loss_fn(probs[:n, c : c + 1] * features[:n], probs[n:, c : c + 1] * features[n:], coeff)
                 for c, loss_fn in enumerate(self.local_losses)]
        loss_l = torch.stack([l for l, _ in local]).mean()
        acc_l = torch.stack([a for _, a in local]).mean()
        self._update_omega(1 - acc_g.item(), 1 - acc_l.item())
        omega = self.omega.item()
        self.log_dict({"train/loss_cls": loss_cls, "train/loss_global": loss_g, "train/loss_local": loss_l,
                       "train/omega": omega, "train/grl_lambda": coeff}, prog_bar=True)
        return loss_cls + self.hparams.weight * ((1 - omega) * loss_g + omega * loss_l)

    def _update_omega(self, global_error: float, local_error: float) -> None:
        self.error_sums += torch.tensor([global_error, local_error, 1.0], device=self.error_sums.device)
        if self.error_sums[2] >= self.hparams.omega_interval:
            g, l, steps = self.error_sums.tolist()
            self.omega.fill_(dynamic_factor(g / steps, l / steps))
            self.error_sums.zero_()
