"""DAAN (Yu et al., "Transfer Learning with Dynamic Adversarial Adaptation Network", ICDM 2019), as the
authors' code (DeepDA `loss_funcs/daan.py`) computes it.

L = CE(source) + weight * [(1 - omega) L_g + omega L_l], all behind one gradient reversal layer with
DANN's lambda_p (DANN's adversarial piece, `DomainAdversarialLoss`, reused for every discriminator):
- L_g = global_scale * BCE of a global domain discriminator on the features (both domains);
- L_l = local_scale * sum_c BCE_c, one local discriminator per class c fed with the features weighted by
  the predicted probability of class c;
- the dynamic factor omega = 1 - d_g / (d_g + d_l), from the proxy A-distances of the scaled losses,
  d_g = 2 (1 - 2 L_g) and d_l = 2 (1 - 2 L_l / C), averaged over the last `omega_interval` steps. So the
  global term's share 1 - omega = d_g / (d_g + d_l) is small when the domains are hard to tell apart
  globally. (The paper writes the mix the other way round; its author says in the code's repository that
  the paper swapped omega and 1 - omega and that the code is right.) omega starts at 0.5 and is logged.

global_scale 0.05 and local_scale 0.01 are the code's. Every local discriminator labels source 0 and target 1
behind the same GRL coefficient lambda_p: the authors' intended local labels. Their code passes the domain flag
where the class index belongs (`get_local_adversarial_result(x, logits, c, source, lamb)`), so there the local
discriminators label both domains 1 and reverse with coefficient 1.0; that is taken for a slip, not a method.
At the code's loss scales omega stays near 0.5 (within [0.500, 0.516] in the survey's runs, results/survey/), so the
dynamic mix is close to an even one.
Remaining deviations, by choice:
- omega is re-estimated every `omega_interval` steps (default 500) instead of once per epoch: epochs are
  not defined for the endless paired batches here (an MNIST epoch at batch 32 is 1,875 steps);
- the class probabilities that weight the local discriminators' inputs are detached: they select which
  discriminator sees a sample, they are not trained through the adversarial loss;
- the local discriminators are narrower than the global one by default (local_hidden: fc100 -> 1): with
  43 GTSRB classes, 43 copies of the fc1024-fc1024 head would hold over 300M weights.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from da_bench.losses import DomainAdversarialLoss, dann_lambda
from da_bench.methods.base import DAMethod
from da_bench.nets import DomainDiscriminator


def proxy_a_distance(loss):
    """d = 2 (1 - 2 loss), the authors' code's proxy A-distance from a discriminator's (scaled) loss, kept
    >= 0 (the code does not clip; at its loss scales d stays near 2 and the clip never acts, but unscaled
    losses near log 2 would give negative distances and an omega outside [0, 1]). A float or a tensor."""
    d = 2 * (1 - 2 * loss)
    return d.clamp_min(0.0) if torch.is_tensor(d) else max(0.0, d)


def dynamic_factor(d_global, d_local):
    """omega = 1 - d_g / (d_g + d_l): the local (conditional) term's share; 0.5 when both distances are 0.
    Floats or tensors (computed on the device, without reading them back)."""
    total = d_global + d_local
    if torch.is_tensor(total):
        return torch.where(total == 0, 0.5, 1 - d_global / total.clamp_min(torch.finfo(total.dtype).tiny))
    return 0.5 if total == 0 else 1 - d_global / total


class DAAN(DAMethod):
    def __init__(self, net, optimizer: Callable, lr_schedule: dict | None = None, gamma: float = 10.0,
                 weight: float = 1.0, global_scale: float = 0.05, local_scale: float = 0.01,
                 discriminator_hidden: Sequence[int] | None = None, local_hidden: Sequence[int] = (100,),
                 omega_interval: int = 500, runner=None):
        super().__init__(net, optimizer, lr_schedule, runner)
        hidden = discriminator_hidden if discriminator_hidden is not None else net.discriminator_hidden
        self.num_classes = net.classifier[-1].out_features
        self.global_loss = DomainAdversarialLoss(DomainDiscriminator(net.feature_dim, hidden, init=net.init))
        self.local_losses = nn.ModuleList(
            DomainAdversarialLoss(DomainDiscriminator(net.feature_dim, local_hidden, init=net.init))
            for _ in range(self.num_classes))
        self.register_buffer("omega", torch.tensor(0.5))
        self.register_buffer("distance_sums", torch.zeros(3))  # d_g, d_l, steps since the last estimate

    def update(self, batch):
        x_s, y_s, x_t = batch["src_x"], batch["src_y"], batch["tgt_x"]
        features = self.net.encoder(torch.cat([x_s, x_t]))
        logits = self.net.classifier(features)
        n = len(x_s)
        loss_cls = F.cross_entropy(logits[:n], y_s)
        coeff = dann_lambda(self.schedule_progress, self.hparams.gamma)
        loss_g = self.hparams.global_scale * self.global_loss(features[:n], features[n:], coeff)[0]
        probs = logits.softmax(1).detach()
        loss_l = self.hparams.local_scale * sum(
            loss_fn(probs[:n, c : c + 1] * features[:n], probs[n:, c : c + 1] * features[n:], coeff)[0]
            for c, loss_fn in enumerate(self.local_losses))
        omega = self.omega.clone()  # this step's factor; a re-estimate below changes the buffer in place
        self._accumulate(loss_g.detach(), loss_l.detach())
        self.log_train({"train/loss_cls": loss_cls, "train/loss_global": loss_g, "train/loss_local": loss_l,
                       "train/omega": omega, "train/grl_lambda": coeff})
        return loss_cls + self.hparams.weight * ((1 - omega) * loss_g + omega * loss_l)

    def graph_phase(self):
        return self._estimates_omega()  # the steps that re-estimate omega replay a CUDA graph of their own

    def _estimates_omega(self) -> bool:
        return (self.global_step + 1) % self.hparams.omega_interval == 0

    def _accumulate(self, loss_g: torch.Tensor, loss_l: torch.Tensor) -> None:
        """Sums the proxy A-distances on the device; every omega_interval steps (the step counter restarts
        with the sums, so it is the global step modulo the interval) omega becomes the dynamic factor of
        their means, computed on the device too: no update reads a value back to the host."""
        self.distance_sums += torch.stack([proxy_a_distance(loss_g), proxy_a_distance(loss_l / self.num_classes),
                                           torch.ones_like(loss_g)])
        if self._estimates_omega():
            d_g, d_l, steps = self.distance_sums.unbind()
            self.omega.copy_(dynamic_factor(d_g / steps, d_l / steps))
            self.distance_sums.zero_()
