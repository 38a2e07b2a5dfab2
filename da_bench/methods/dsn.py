"""DSN, Domain Separation Networks (Bousmalis et al., NIPS 2016), with the DANN similarity loss, as the paper
and the authors' code (tensorflow/models research/domain_adaptation/domain_separation) build it.

Shared encoder E_c: the net's encoder and its first fully connected layer, so that the shared code h_c is the
code's `fc3` (dann_mnist: 100-d; dann_svhn 3072, dann_gtsrb 512; LeNet's encoder already ends with its fc500);
the rest of the net's classifier C maps h_c to logits, so the classifier tested is the net itself. Private
encoders E_p^s, E_p^t and the shared decoder D: nets/decoder.py (the code's `default_encoder`, `small_decoder`),
D's input h_c + h_p. One SGD step (momentum .9, weight decay 1e-6, lr .01 x .95 every 20,000 steps: the code's)
on

  L = CE(C(h_c^s), y_s) + [step >= da_start_step] (alpha sum_d L_recon^d + beta sum_d L_diff^d + gamma L_DANN)

with L_recon the paper's scale-invariant MSE of x_d and D(h_c^d + h_p^d), L_diff = ||H_c^T H_p||_F^2 (both in
losses/dsn.py) and L_DANN the domain classifier's loss on h_c^s, h_c^t behind a gradient reversal of constant
coefficient 1 (the code's GRL op; no lambda_p ramp) with the code's domain head fc100 -> 1. Before
da_start_step the DA terms are not computed at all (the code multiplies them by 1e-10 and, from the start step,
by 1: the paper's "we activate any additional domain adaptation loss after 10,000 steps").
Loss weights alpha .01, beta .075, gamma .25: fungtion/DSN's, a public re-implementation reported near 77% on
MNIST -> MNIST-M; the paper's own are in its supplementary material, which is not public, and the code's flag
defaults (1e-6) are placeholders.

Deviations, by choice:
- da_start_step 5,000 instead of the paper's 10,000: that count belongs to runs many times longer (fungtion/DSN
  trains 100 epochs); within the survey's shared 10,000-step schedule a 10,000 start would leave no adaptation.
  `method.da_start_step=10000` with a longer `trainer.max_steps` is the paper's.
- the reconstruction is the paper's scale-invariant MSE; the code's `mean_pairwise_squared_error` is twice it per
  image and fungtion/DSN uses a plain MSE, so alpha is on the paper's scale;
- inputs are the pair's normalisation (pixel mean), as for every method here, not the paper's [-1, 1].
At the end of training (once the DA terms ran) a PNG of reconstructions from the shared code only, the private
code only, and both, is written to the run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from da_bench.losses import DomainAdversarialLoss, difference_loss, scale_invariant_mse
from da_bench.methods.base import DAMethod
from da_bench.nets import DomainDiscriminator
from da_bench.nets.decoder import PrivateEncoder, SmallDecoder


def code_layer_count(classifier: nn.Sequential) -> int:
    """How many of the classifier's modules belong to the shared encoder: its first Linear + ReLU when it has
    a hidden layer (DANN's nets), none when the encoder already ends with a fully connected layer (LeNet)."""
    return 2 if len(classifier) > 1 else 0


class DSN(DAMethod):
    def __init__(self, net, optimizer: Callable, lr_schedule: dict | None = None, alpha: float = 0.01,
                 beta: float = 0.075, gamma: float = 0.25, da_start_step: int = 5000, grl_coeff: float = 1.0,
                 image_size: int = 28, channels: int = 3, runner=None):
        super().__init__(net, optimizer, lr_schedule, runner)
        self.code_layers = code_layer_count(net.classifier)
        code_dim = net.classifier[0].out_features if self.code_layers else net.feature_dim
        self.private = nn.ModuleDict({d: PrivateEncoder(channels, image_size, code_dim) for d in ("src", "tgt")})
        self.decoder = SmallDecoder(code_dim, channels, image_size)
        self.domain_loss = DomainAdversarialLoss(DomainDiscriminator(code_dim, [100], init=net.init))
        self.examples = {}

    def shared_code(self, x: torch.Tensor) -> torch.Tensor:
        """h_c: B x code_dim."""
        return self.net.classifier[: self.code_layers](self.net.encoder(x))

    @property
    def separating(self) -> bool:
        """Whether this update adds the DA terms (the global step has reached da_start_step)."""
        return self.global_step >= self.hparams.da_start_step

    def graph_phase(self):
        return self.separating  # before and after the start step: one CUDA graph each

    def update(self, batch):
        x = {"src": batch["src_x"], "tgt": batch["tgt_x"]}
        n = len(x["src"])
        codes = self.shared_code(torch.cat([x["src"], x["tgt"]]))
        shared = {"src": codes[:n], "tgt": codes[n:]}
        loss_cls = F.cross_entropy(self.net.classifier[self.code_layers:](shared["src"]), batch["src_y"])
        if not self.separating:
            self.log_train({"train/loss_cls": loss_cls})
            return loss_cls
        private = {d: self.private[d](x[d]) for d in x}
        loss_recon = sum(scale_invariant_mse(x[d], self.decoder(shared[d] + private[d])) for d in x)
        loss_diff = sum(difference_loss(shared[d], private[d]) for d in x)
        loss_dom, _ = self.domain_loss(shared["src"], shared["tgt"], self.hparams.grl_coeff)
        h = self.hparams
        self.log_train({"train/loss_cls": loss_cls, "train/loss_recon": loss_recon, "train/loss_diff": loss_diff,
                        "train/loss_dom": loss_dom})
        self.examples = {d: v[:8].detach() for d, v in x.items()}
        return loss_cls + h.alpha * loss_recon + h.beta * loss_diff + h.gamma * loss_dom

    @torch.no_grad()
    def on_train_end(self):
        """reconstructions.png: per domain, rows = input, shared only, private only, shared + private."""
        super().on_train_end()
        from torchvision.utils import save_image

        if not self.examples or not self.trainer.is_global_zero:
            return
        was_training = self.training
        self.eval()  # batch norm on its running statistics
        dm, rows = self.trainer.datamodule, []
        for d, x in self.examples.items():
            shared, private = self.shared_code(x), self.private[d](x)
            rows += [x, self.decoder(shared), self.decoder(private), self.decoder(shared + private)]
        self.train(was_training)
        images = torch.cat(rows) * dm.std.to(x.device) + dm.mean.to(x.device)
        path = Path(self.trainer.default_root_dir) / "reconstructions.png"
        save_image(images.clamp(0, 1).float().cpu(), path, nrow=len(x))
