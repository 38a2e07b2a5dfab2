"""ADDA (Tzeng et al., CVPR 2017), both stages in one run.

Stage 1 (first pretrain_fraction of max_steps, or skipped when `source_checkpoint` points to a finished
source_only run): source encoder M_s and classifier C on labelled source, Adam 1e-3.
Stage 2: the untied target encoder M_t starts as a copy of M_s; M_s and C are frozen; the discriminator D
(fc500-fc500-1) and M_t play the inverted-label GAN game (Adam 2e-4, beta1 0.5) on the representation
r(x) = C(M(x)), the network's output layer, as the authors' code (`tools/train_adda.py` feeds the whole
LeNet's fc4 output to the adversary):
    min_D  -E_s[log D(r_s(x_s))] - E_t[log(1 - D(r_t(x_t)))]        min_Mt  -E_t[log D(r_t(x_t))]
`adversary_input=features` discriminates the encoder output M(x) instead (the paper's wording). On the DANN
MNIST net that is a 2,352-d ReLU map that D separates at once, and the mapping then switches the target
activations off (measured: MNIST -> MNIST-M at chance).
`adapt_classifier=true` makes the target model a copy of the whole network, classifier included, trained by
the mapping loss and used for the target images, as the authors' code does (its `target` scope holds LeNet's
fc4); the default keeps the paper's shared, frozen C (the deviation from that code: adapting C did not help
on MNIST -> USPS, results/survey/table.md).
Both are updated from the same forward pass in one optimiser step, as the authors' code does (one
global step per iteration, so max_steps counts iterations).
Other differences from the authors' code (tools/train.py, train_adda.py, models/lenet.py), kept because
LeNet and the input scaling are shared by every method on the USPS pairs; each is an override away:
- LeNet starts from PyTorch's init; the code's is TF-slim's Glorot-uniform, biases 0 (`net.init=glorot_uniform`);
- stage 1 has no L2 term; the code adds 2.5e-5 * ||w||^2 / 2 to the loss
  (`method.pretrain_optimizer.weight_decay=2.5e-5`, which decays the biases as well);
- images are scaled to [-1, 1] (the code: [0, 1], `data.normalize=unit`);
- D ends in one logit with a binary cross-entropy; the code's two logits with a softmax cross-entropy are
  the same family of classifiers. The code averages the mapping loss over source and target samples,
  which halves its gradient; Adam's step does not depend on that scale.
Measured with adapt_classifier and the three overrides above on the code's side (results/usps/table.md, 10k + 10k,
3 seeds): USPS -> MNIST .902, the paper's .901; MNIST -> USPS .815, below the default's .863 (paper .894).
Target test: C(M_t(x_t)); beside it, test/tgt_acc_stage1 = C(M_s(x_t)), the stage-1 source model on the
same target images.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from torchmetrics.classification import MulticlassAccuracy

from da_bench.checkpoints import checkpoint_file, read_checkpoint
from da_bench.methods.base import DAMethod, metric_key
from da_bench.nets import DomainDiscriminator

ADVERSARY_INPUTS = ("logits", "features")


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
                 source_checkpoint: str | None = None, adversary_input: str = "logits",
                 adapt_classifier: bool = False, runner=None):
        super().__init__(net, runner=runner)
        if adversary_input not in ADVERSARY_INPUTS:
            raise ValueError(f"method.adversary_input must be one of {ADVERSARY_INPUTS}, not {adversary_input!r}")
        self.pretrain_optimizer, self.adapt_optimizer = pretrain_optimizer, adapt_optimizer
        self.target_encoder = copy.deepcopy(net.encoder)
        self.target_classifier = copy.deepcopy(net.classifier) if adapt_classifier else None
        num_classes = net.classifier[-1].out_features
        width = num_classes if adversary_input == "logits" else net.feature_dim
        self.discriminator = DomainDiscriminator(width, discriminator_hidden)
        self.stage1_accuracy = torch.nn.ModuleDict({stage: MulticlassAccuracy(num_classes, average="micro")
                                                    for stage in ("val", "test")})
        self.register_buffer("target_ready", torch.tensor(False))
        self.adapting = False  # host copy of target_ready once stage 2 runs: no device read per step

    def side_model(self, target: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(encoder, classifier) of the target model M_t (with its own C when adapt_classifier) or the source one."""
        if not target:
            return self.net.encoder, self.net.classifier
        head = self.target_classifier if self.target_classifier is not None else self.net.classifier
        return self.target_encoder, head

    def represent(self, x: torch.Tensor, target: bool) -> torch.Tensor:
        """What the adversary reads: the logits C(M(x)) (default) or the encoder output M(x), of the source or
        the target model. Stage 2 names the model itself: encoder_for reads the target_ready buffer, a host
        sync on a GPU that no CUDA graph can hold."""
        encoder, classifier = self.side_model(target)
        features = encoder(x)
        return classifier(features) if self.hparams.adversary_input == "logits" else features

    @property
    def pretrain_steps(self) -> int:
        if self.hparams.source_checkpoint:
            return 0
        return round(self.hparams.pretrain_fraction * self.trainer.max_steps)

    def graph_phase(self):
        return self.global_step < self.pretrain_steps  # stage 1 and stage 2: one CUDA graph each

    def on_fit_start(self):
        if self.hparams.source_checkpoint and self.global_step == 0:
            self.net.load_state_dict(source_weights(self.hparams.source_checkpoint))

    def encoder_for(self, domain):
        return self.side_model(domain == "tgt" and bool(self.target_ready))[0]

    def classifier_for(self, domain):
        return self.side_model(domain == "tgt" and bool(self.target_ready))[1]

    def _evaluate(self, batch, dataloader_idx: int, stage: str) -> dict:
        outputs = super()._evaluate(batch, dataloader_idx, stage)
        if dataloader_idx == 1:  # the stage-1 model (M_s, C) on the same target images
            x, y = batch
            metric = self.stage1_accuracy[stage]
            metric.update(self.net(x), y)
            self.log(metric_key(stage, "tgt", "acc_stage1"), metric, on_step=False, on_epoch=True,
                     add_dataloader_idx=False)
        return outputs

    def configure_optimizers(self):
        source = self.pretrain_optimizer(params=self.net.parameters())
        adapted = [self.target_encoder, self.discriminator]
        if self.target_classifier is not None:
            adapted.append(self.target_classifier)
        adapt = self.adapt_optimizer(params=[p for module in adapted for p in module.parameters()])
        return [source, adapt]

    def update(self, batch):
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
        self.log_train({"train/loss_cls": loss})

    def _adapt(self, x_s, x_t):
        if not self.adapting:  # the first stage-2 step of this process (a resumed run's buffer may be set)
            if not self.target_ready:
                self.target_encoder.load_state_dict(self.net.encoder.state_dict())
                if self.target_classifier is not None:
                    self.target_classifier.load_state_dict(self.net.classifier.state_dict())
                self.target_ready.fill_(True)
            self.adapting = True
        opt = self.optimizers()[1]
        with torch.no_grad():
            f_s = self.represent(x_s, target=False)
        with frozen(self.net.classifier):  # the source C stays the stage-1 classifier; the gradient passes through
            f_t = self.represent(x_t, target=True)
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
        self.log_train({"train/loss_dom": loss_d, "train/loss_map": loss_map, "train/dom_acc": dom_acc})


def source_weights(path: str) -> dict:
    """The `net.*` weights of a finished source_only run (its directory or a .ckpt file)."""
    state = read_checkpoint(checkpoint_file(path))["state_dict"]
    return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
