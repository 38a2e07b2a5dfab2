"""ADDA (Tzeng et al., CVPR 2017), both stages in one run.

Stage 1 (first pretrain_fraction of max_steps, or skipped when `source_checkpoint` points to a finished
source_only run): source encoder M_s and classifier C on labelled source, Adam 1e-3.
Stage 2: the untied target encoder M_t starts as a copy of M_s; M_s and C are frozen; the discriminator D
(fc500-fc500-1 on encoder features) and M_t play the inverted-label GAN game (Adam 2e-4, beta1 0.5):
    min_D  -E_s[log D(M_s(x_s))] - E_t[log(1 - D(M_t(x_t)))]        min_Mt  -E_t[log D(M_t(x_t))]
Both are updated from the same forward pass in one optimiser step, as the authors' code does (one
Lightning step per iteration, so max_steps counts iterations). Target test: C(M_t(x_t)).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from da_bench.methods.base import DAMethod
from da_bench.nets import DomainDiscriminator


@contextmanager
def frozen(module: torch.nn.Module):
    """Parameters of `module` get no gradient inside the block."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class ADDA(DAMethod):
    def __init__(self, net, pretrain_optimizer: Callable, adapt_optimizer: Callable,
                 discriminator_hidden: Sequence[int] = (500, 500), pretrain_fraction: float = 0.5,
                 source_checkpoint: str | None = None):
        super().__init__(net)
        self.pretrain_optimizer, self.adapt_optimizer = pretrain_optimizer, adapt_optimizer
        self.automatic_optimization = False
        self.target_encoder = copy.deepcopy(net.encoder)
        self.discriminator = DomainDiscriminator(net.feature_dim, discriminator_hidden)
        self.register_buffer("target_ready", torch.tensor(False))

    @property
    def pretrain_steps(self) -> int:
        if self.hparams.source_checkpoint:
            return 0
        return round(self.hparams.pretrain_fraction * self.trainer.max_steps)

    def on_fit_start(self):
        if self.hparams.source_checkpoint and self.global_step == 0:
            self.net.load_state_dict(source_weights(self.hparams.source_checkpoint))

    def classify(self, x, domain):
        encoder = self.target_encoder if domain == "tgt" and self.target_ready else self.net.encoder
        return self.net.classifier(encoder(x))

    def configure_optimizers(self):
        source = self.pretrain_optimizer(params=self.net.parameters())
        adapt = self.adapt_optimizer(
            params=[*self.target_encoder.parameters(), *self.discriminator.parameters()])
        return [source, adapt]

    def training_step(self, batch, batch_idx):
        if self.global_step < self.pretrain_steps:
            self._pretrain(batch["src_x"], batch["src_y"])
        else:
            self._adapt(batch["src_x"], batch["tgt_x"])

    def _pretrain(self, x_s, y_s):
        opt = self.optimizers()[0]
        loss = F.cross_entropy(self.net(x_s), y_s)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train/loss_cls", loss, prog_bar=True)

    def _adapt(self, x_s, x_t):
        if not self.target_ready:
            self.target_encoder.load_state_dict(self.net.encoder.state_dict())
            self.target_ready.fill_(True)
        opt = self.optimizers()[1]
        with torch.no_grad():
            f_s = self.net.encoder(x_s)
        f_t = self.target_encoder(x_t)
        d_s, d_t = self.discriminator(f_s), self.discriminator(f_t.detach())
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(d_s, torch.ones_like(d_s))
                        + F.binary_cross_entropy_with_logits(d_t, torch.zeros_like(d_t)))
        opt.zero_grad()
        self.manual_backward(loss_d)
        with frozen(self.discriminator):
            d_mapped = self.discriminator(f_t)
            loss_map = F.binary_cross_entropy_with_logits(d_mapped, torch.ones_like(d_mapped))
            self.manual_backward(loss_map)
        opt.step()
        dom_acc = 0.5 * ((d_s > 0).float().mean() + (d_t <= 0).float().mean())
        self.log_dict({"train/loss_dom": loss_d, "train/loss_map": loss_map, "train/dom_acc": dom_acc},
                      prog_bar=True)


def source_weights(path: str) -> dict:
    """The `net.*` weights of a finished source_only run (its directory or a .ckpt file)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.exists():
        raise FileNotFoundError(f"ADDA source_checkpoint: no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
