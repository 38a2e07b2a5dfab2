"""DSN, Domain Separation Networks (Bousmalis et al., NIPS 2016), with the DANN similarity loss.

Shared encoder E_c (the net's encoder) and classifier C; private encoders E_p^s, E_p^t (same architecture,
own weights); a shared decoder D. One SGD step on
  L = CE(C(E_c(x_s)), y_s) + alpha * sum_d SI-MSE(x_d, D(E_c(x_d) + E_p^d(x_d)))
      + beta * sum_d ||E_c(x_d)^T E_p^d(x_d)||_F^2 + gamma * L_DANN(E_c(x_s), E_c(x_t))
(losses/dsn.py, losses/domain_adversarial.py). At the end of training a PNG of reconstructions from the
shared code only, the private code only, and both, is written to the run directory.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from da_bench.losses import DomainAdversarialLoss, dann_lambda, difference_loss, scale_invariant_mse
from da_bench.methods.base import DAMethod
from da_bench.nets import DomainDiscriminator
from da_bench.nets.convnet import init_weights
from da_bench.nets.decoder import ImageDecoder


def fresh_copy(module: torch.nn.Module, init: str) -> torch.nn.Module:
    clone = copy.deepcopy(module)
    for m in clone.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    init_weights(clone, init)
    return clone


class DSN(DAMethod):
    def __init__(self, net, optimizer: Callable, lr_schedule: dict | None = None, alpha: float = 0.1,
                 beta: float = 0.05, gamma: float = 0.25, grl_gamma: float = 10.0, decoder_width: int = 64,
                 image_size: int = 28, channels: int = 3):
        super().__init__(net, optimizer, lr_schedule)
        self.private = torch.nn.ModuleDict({d: fresh_copy(net.encoder, net.init) for d in ("src", "tgt")})
        self.decoder = ImageDecoder(net.feature_dim, channels, image_size, decoder_width)
        self.domain_loss = DomainAdversarialLoss(DomainDiscriminator(net.feature_dim, net.discriminator_hidden,
                                                                     init=net.init))
        self.examples = {}

    def update(self, batch):
        x = {"src": batch["src_x"], "tgt": batch["tgt_x"]}
        shared = {d: self.net.encoder(x[d]) for d in x}
        private = {d: self.private[d](x[d]) for d in x}
        loss_cls = F.cross_entropy(self.net.classifier(shared["src"]), batch["src_y"])
        loss_recon = sum(scale_invariant_mse(x[d], self.decoder(shared[d] + private[d])) for d in x)
        loss_diff = sum(difference_loss(shared[d], private[d]) for d in x)
        coeff = dann_lambda(self.schedule_progress, self.hparams.grl_gamma)
        loss_dom, _ = self.domain_loss(shared["src"], shared["tgt"], coeff)
        h = self.hparams
        self.log_train({"train/loss_cls": loss_cls, "train/loss_recon": loss_recon, "train/loss_diff": loss_diff,
                       "train/loss_dom": loss_dom})
        self.examples = {d: v[:8].detach() for d, v in x.items()}
        return loss_cls + h.alpha * loss_recon + h.beta * loss_diff + h.gamma * loss_dom

    @torch.no_grad()
    def on_train_end(self):
        """reconstructions.png: per domain, rows = input, shared only, private only, shared + private."""
        from torchvision.utils import save_image

        if not self.examples or not self.trainer.is_global_zero:
            return
        dm = self.trainer.datamodule
        rows = []
        for d, x in self.examples.items():
            shared, private = self.net.encoder(x), self.private[d](x)
            rows += [x, self.decoder(shared), self.decoder(private), self.decoder(shared + private)]
        images = torch.cat(rows) * dm.std.to(x.device) + dm.mean.to(x.device)
        path = Path(self.trainer.default_root_dir) / "reconstructions.png"
        save_image(images.clamp(0, 1).float().cpu(), path, nrow=len(x))
