"""DANN (Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016).

One SGD step on  L = L_y(C(E(x_s)), y_s) + w * L_d(E(x_s), E(x_t))  where L_d is the domain-adversarial
loss behind a gradient reversal layer with lambda_p = 2 / (1 + exp(-gamma p)) - 1, and the learning rate
follows mu_0 / (1 + alpha p)^beta (both in conf/method/dann.yaml; p = step / max_steps).
The domain head's widths come from the architecture (net.discriminator_hidden: fc100 for MNIST,
fc1024-fc1024 for SVHN / GTSRB), initialised like the net.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from da_bench.losses import DomainAdversarialLoss, dann_lambda
from da_bench.methods.base import DAMethod
from da_bench.nets import DomainDiscriminator


class DANN(DAMethod):
    def __init__(self, net, optimizer: Callable, lr_schedule: dict | None = None, gamma: float = 10.0,
                 domain_loss_weight: float = 1.0, discriminator_hidden: Sequence[int] | None = None,
                 runner=None):
        super().__init__(net, optimizer, lr_schedule, runner)
        hidden = discriminator_hidden if discriminator_hidden is not None else net.discriminator_hidden
        self.domain_loss = DomainAdversarialLoss(DomainDiscriminator(net.feature_dim, hidden, init=net.init))

    def update(self, batch):
        x_s, y_s, x_t = batch["src_x"], batch["src_y"], batch["tgt_x"]
        features = self.net.encoder(torch.cat([x_s, x_t]))
        f_s, f_t = features[: len(x_s)], features[len(x_s):]
        loss_cls = F.cross_entropy(self.net.classifier(f_s), y_s)
        coeff = dann_lambda(self.schedule_progress, self.hparams.gamma)
        loss_dom, dom_acc = self.domain_loss(f_s, f_t, coeff)
        self.log_train({"train/loss_cls": loss_cls, "train/loss_dom": loss_dom, "train/dom_acc": dom_acc,
                       "train/grl_lambda": coeff})
        return loss_cls + self.hparams.domain_loss_weight * loss_dom
