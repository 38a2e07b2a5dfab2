"""What every method shares: evaluation, training progress, the optimiser with DANN's annealing, and logging
keys: train/...; curves on the held-out val splits, val/src_acc and the oracle curve val/tgt_acc_oracle
(target labels: watched, never used by a method); test/{src,tgt}_acc once, after training.

A method subclasses `DAMethod` and writes `training_step` (its one update rule). Evaluation calls
`classify(x, domain)` = classifier(encoder_for(domain)(x)); a method whose target domain has its own encoder
(ADDA) overrides `encoder_for`.
The reported numbers are the papers' rule, the weights at the last step; the snapshot callback
(da_bench/snapshots.py) also scores 20 snapshots with every unsupervised validator and reports each rule's pick.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics.classification import MulticlassAccuracy

from da_bench.losses.grl import annealed_lr_factor

DOMAINS = ("src", "tgt")


def metric_key(stage: str, domain: str, name: str) -> str:
    """'val/src_acc', 'test/tgt_acc', ...; a curve on the target val split reads target labels, so it is named
    as the oracle's: 'val/tgt_acc_oracle'."""
    return f"{stage}/{domain}_{name}" + ("_oracle" if (stage, domain) == ("val", "tgt") else "")
OPTIMIZER_ARGS = ("optimizer", "pretrain_optimizer", "adapt_optimizer", "critic_optimizer")


class DAMethod(pl.LightningModule):
    uses_target_labels = False  # only the oracle reads target labels; the datamodule hides them otherwise
    target_metric = "test/tgt_acc"  # the number a table reports

    def __init__(self, net: nn.Module, optimizer: Callable | None = None, lr_schedule: dict | None = None):
        super().__init__()
        # optimiser factories stay out of hparams: checkpoints then load with torch.load(weights_only=True)
        self.save_hyperparameters(ignore=["net", *OPTIMIZER_ARGS], logger=False)
        self.net = net
        self.optimizer = optimizer
        if not isinstance(getattr(net, "classifier", None), nn.Sequential):
            raise ValueError(f"{type(self).__name__} classifies images; {type(net).__name__} is not a classification "
                             "net. On segmentation pairs use method=seg_source_only, seg_adv or clan")
        num_classes = net.classifier[-1].out_features
        self.accuracy = nn.ModuleDict({
            f"{stage}_{dom}": MulticlassAccuracy(num_classes, average="micro")
            for stage in ("val", "test") for dom in DOMAINS
        })

    @property
    def progress(self) -> float:
        """Training progress p in [0, 1]: global step / max_steps (restored with the step on resume)."""
        return min(1.0, self.global_step / max(1, self.trainer.max_steps))

    def encoder_for(self, domain: str) -> nn.Module:
        """The encoder that represents `domain`'s images; ADDA's target domain has its own."""
        return self.net.encoder

    def classify(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.net.classifier(self.encoder_for(domain)(x))

    def embed(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits): the classifier's last hidden layer (the encoder output for a one-layer head), B x D,
        and the logits, B x C. What the validators read (da_bench/snapshots.py)."""
        features = self.encoder_for(domain)(x)
        activations = [features, *self.net.head_activations(features)]
        return activations[-2], activations[-1]

    def _evaluate(self, batch, dataloader_idx: int, stage: str) -> dict:
        x, y = batch
        domain = DOMAINS[dataloader_idx]
        features, logits = self.embed(x, domain)
        metric = self.accuracy[f"{stage}_{domain}"]
        metric.update(logits, y)
        self.log(metric_key(stage, domain, "acc"), metric, on_step=False, on_epoch=True, add_dataloader_idx=False)
        return {"features": features, "logits": logits}  # the snapshot validators' input (snapshots.py)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        return self._evaluate(batch, dataloader_idx, "val")

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self._evaluate(batch, dataloader_idx, "test")

    def make_optimizer(self, factory: Callable, params, lr_schedule: dict | None):
        """factory(params=...) (a Hydra `_partial_`), with mu_p = mu_0 / (1 + alpha p)^beta per step if asked."""
        optimizer = factory(params=params)
        if not lr_schedule:
            return optimizer
        total = max(1, self.trainer.max_steps)
        factor = partial(_annealing, total=total, **lr_schedule)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}

    def configure_optimizers(self):
        return self.make_optimizer(self.optimizer, self.parameters(), self.hparams.lr_schedule)


def _annealing(step: int, total: int, alpha: float, beta: float) -> float:
    return annealed_lr_factor(min(1.0, step / total), alpha, beta)
