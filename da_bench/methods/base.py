"""One base for every method: `Method` holds the net, a task object (methods/tasks.py: Classification or
Segmentation) that owns the metrics and the evaluation, training progress, and the val / test steps:
curves on the held-out val splits (val/src_*, and the oracle curve val/tgt_*_oracle: target labels, watched,
never used by a method), test/* once after training, and the features / logits the snapshot validators score
(da_bench/snapshots.py).

`DAMethod` is the classification base: a method subclasses it and writes `training_step` (its one update
rule); evaluation calls `classify(x, domain)` = classifier_for(domain)(encoder_for(domain)(x)), and a
method whose target domain has its own encoder or head (ADDA) overrides `encoder_for` / `classifier_for`.
Its optimiser can follow DANN's annealing mu_p = mu_0 / (1 + alpha p)^beta. Segmentation methods subclass `SegMethod` (methods/segmentation.py).
The reported numbers are the papers' rule, the weights at the last step; each validator's pick among the
snapshots is reported beside them.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from da_bench.callbacks import logs_this_step
from da_bench.losses.grl import annealed_lr_factor
from da_bench.methods.tasks import DOMAINS, Classification, metric_key  # noqa: F401  (re-exported)

OPTIMIZER_ARGS = ("optimizer", "pretrain_optimizer", "adapt_optimizer", "critic_optimizer")


class Method(pl.LightningModule):
    uses_target_labels = False  # only the oracle reads target labels; the datamodule hides them otherwise

    def __init__(self, net: nn.Module, task: nn.Module, optimizer: Callable | None = None):
        super().__init__()
        # optimiser factories stay out of hparams: checkpoints then load with torch.load(weights_only=True)
        self.save_hyperparameters(ignore=["net", "task", *OPTIMIZER_ARGS], logger=False)
        self.net, self.task, self.optimizer = net, task, optimizer

    @property
    def target_metric(self) -> str:
        """The number a table reports: test/tgt_acc, or test/tgt_miou for segmentation."""
        return self.task.target_metric

    @property
    def progress(self) -> float:
        """Training progress p in [0, 1]: global step / max_steps (restored with the step on resume)."""
        return min(1.0, self.global_step / max(1, self.trainer.max_steps))

    def log_train(self, values: dict, prog_bar: bool = True) -> None:
        """A method's train/* values, handed to Lightning only on the steps it writes to the loggers (every
        trainer.log_every_n_steps). `self.log` costs about a millisecond of Python per call,
        and a progress-bar value a host sync: paid every step, that alone is several per cent of a CPU step.
        FiniteGuard checks these values on the same steps."""
        if logs_this_step(self.trainer):
            self.log_dict(values, prog_bar=prog_bar)

    def embed(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) that the snapshot validators score, as the task defines them."""
        return self.task.embed(self, x, domain)

    def _evaluate(self, batch, dataloader_idx: int, stage: str) -> dict:
        x, y = batch
        return self.task.evaluate(self, x, y, DOMAINS[dataloader_idx], stage)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        return self._evaluate(batch, dataloader_idx, "val")  # the snapshot callback reads these outputs

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self._evaluate(batch, dataloader_idx, "test")

    def on_validation_epoch_end(self):
        self.task.end_epoch(self, "val")

    def on_test_epoch_end(self):
        self.task.end_epoch(self, "test")


class DAMethod(Method):
    def __init__(self, net: nn.Module, optimizer: Callable | None = None, lr_schedule: dict | None = None):
        if not isinstance(getattr(net, "classifier", None), nn.Sequential):
            raise ValueError(f"{type(self).__name__} classifies images; {type(net).__name__} is not a classification "
                             "net. On segmentation pairs use method=seg_source_only, seg_adv or clan")
        super().__init__(net, Classification(net.classifier[-1].out_features), optimizer)

    def encoder_for(self, domain: str) -> nn.Module:
        """The encoder that represents `domain`'s images; ADDA's target domain has its own."""
        return self.net.encoder

    def classifier_for(self, domain: str) -> nn.Sequential:
        """The classifier head for `domain`'s images; ADDA's `adapt_classifier` gives the target its own."""
        return self.net.classifier

    def classify(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.classifier_for(domain)(self.encoder_for(domain)(x))

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
