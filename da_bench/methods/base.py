"""One base for every method: `Method` holds the net, a task object (methods/tasks.py: Classification or
Segmentation) that owns the metrics and the evaluation, training progress, and the val / test steps:
curves on the held-out val splits (val/src_*, and the oracle curve val/tgt_*_oracle: target labels, watched,
never used by a method), test/* once after training, and the features / logits the snapshot validators score
(da_bench/snapshots.py).

Training: a method writes `update(batch)`, its one update rule. A single-optimiser method returns its loss
and the base takes the step (zero_grad, backward, step); a method with several optimisers (ADDA, WDGRL,
seg_adv, CLAN) steps them itself and returns None. What every update needs besides its rule (the progress its
schedules read, `schedule_progress`; the lr schedulers stepped after it; K = updates_per_step updates per
Lightning training_step; the train values, `log_train`, logged once per step) is done by the update runner
the method is built with (da_bench/runners.py: eager by default, or the CUDA-graph runner of
da_bench/fast_path.py). Optimisation is manual for every method, so that one training_step can run several
updates; `max_steps` still counts updates (the global step), and K=1 is the plain loop. The same batches
reach the same updates whatever K (tests/test_updates_per_step.py: identical weights). A method names the
phases of its update rule that differ in what they compute in `graph_phase` (one CUDA graph each).

`DAMethod` is the classification base; evaluation calls `classify(x, domain)` =
classifier_for(domain)(encoder_for(domain)(x)), and a method whose target domain has its own encoder or
head (ADDA) overrides `encoder_for` / `classifier_for`. Its optimiser can follow DANN's annealing
mu_p = mu_0 / (1 + alpha p)^beta, or a staircase decay mu_0 decay^floor(step / every) (DSN's code). Segmentation methods subclass `SegMethod` (methods/segmentation.py).
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

from da_bench.losses.grl import annealed_lr_factor
from da_bench.methods.tasks import DOMAINS, Classification, metric_key  # noqa: F401  (re-exported)
from da_bench.runners import EagerUpdates


class Method(pl.LightningModule):
    uses_target_labels = False  # only the oracle reads target labels; the datamodule hides them otherwise

    def __init__(self, net: nn.Module, task: nn.Module, optimizer: Callable | None = None,
                 runner: EagerUpdates | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "task", "runner"], logger=False)
        # every callable argument (the optimiser factories, whatever a method names them) stays out of the
        # checkpoint: a resume loads it with torch.load(weights_only=True), which refuses pickled callables
        self.remove_ignored_hparams([name for name, value in self.hparams.items() if callable(value)])
        self.net, self.task, self.optimizer = net, task, optimizer
        self.runner = runner if runner is not None else EagerUpdates()
        self.automatic_optimization = False  # the runner runs the updates; see the module docstring

    @property
    def target_metric(self) -> str:
        """The number a table reports: test/tgt_acc, or test/tgt_miou for segmentation."""
        return self.task.target_metric

    @property
    def progress(self) -> float:
        """Training progress p in [0, 1]: global step / max_steps (restored with the step on resume)."""
        return min(1.0, self.global_step / max(1, self.trainer.max_steps))

    @property
    def schedule_progress(self) -> float | torch.Tensor:
        """p for the schedules an update computes (GRL lambda, damping), as the runner provides it: `progress`,
        or on the CUDA-graph runner a 0-d device tensor written before each update (a replay reads this step's p)."""
        return self.runner.progress(self)

    def graph_phase(self):
        """Which CUDA graph an update replays: one per value (ADDA: its stage; CLAN: the preheat)."""
        return None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "training_step" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: write the update rule as update(batch); Method.training_step runs it")

    def update(self, batch: dict) -> torch.Tensor | None:
        """One update on one batch (src_x, src_y, tgt_x[, tgt_y]): return the loss for the base's optimiser
        step, or step the method's own optimisers and return None."""
        raise NotImplementedError

    def training_step(self, batch: dict | list[dict], batch_idx: int) -> None:
        self.runner.training_step(self, batch)

    def on_train_start(self):
        self.runner.on_train_start(self)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.runner.on_save_checkpoint(checkpoint)

    def on_train_end(self):
        self.runner.on_train_end(self)

    def learning_rates(self) -> dict:
        """lr-<optimiser class>[-i] of every optimiser (its first param group), on the logged steps and the
        update axis of the train values (Lightning's LearningRateMonitor counts training_step calls)."""
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        names, rates = [], {}
        for optimizer in optimizers:
            name = f"lr-{type(optimizer.optimizer).__name__}"
            rates[name if name not in names else f"{name}-{names.count(name)}"] = optimizer.param_groups[0]["lr"]
            names.append(name)
        return rates

    def run_update(self, batch: dict) -> None:
        """`update`, and the base's optimiser step when it returns a loss."""
        loss = self.update(batch)
        if loss is not None:
            self.optimizer_step_on(loss)

    def log_update_axis(self, step: int) -> None:
        """With several updates per training_step, the loggers' x axis is still the update (Lightning's own
        would count training_step calls); with one, Lightning's step is already the update's."""
        if self.runner.grouped:
            self.log("step", float(step), prog_bar=False)

    def optimizer_step_on(self, loss: torch.Tensor, optimizer=None) -> None:
        """A step of `optimizer` (default: the method's single one) on `loss`; the runner steps the lr
        schedulers after the update."""
        optimizer = self.optimizers() if optimizer is None else optimizer
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def step_lr_schedulers(self) -> None:
        """One step of every lr scheduler, which the runner takes after each update. Outside the update rule:
        written inside a captured update, an lr would be replayed unchanged."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    def log_train(self, values: dict, prog_bar: bool = True) -> None:
        """A method's train/* values. The runner hands them to Lightning only on the steps it writes to the
        loggers (every trainer.log_every_n_steps) and, of several updates per step, from the last: `self.log`
        costs about a millisecond of Python per call, and a progress-bar value a host sync; paid every step,
        that alone is several per cent of a CPU step. FiniteGuard checks these values on the same steps."""
        self.runner.keep(values, prog_bar)

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
        self.log_update_axis(self.global_step - (self.trainer.state.fn == "fit"))  # Lightning's steps at K=1

    def on_test_epoch_end(self):
        self.task.end_epoch(self, "test")
        self.log_update_axis(self.global_step)


class DAMethod(Method):
    def __init__(self, net: nn.Module, optimizer: Callable | None = None, lr_schedule: dict | None = None,
                 runner: EagerUpdates | None = None):
        if not isinstance(getattr(net, "classifier", None), nn.Sequential):
            raise ValueError(f"{type(self).__name__} classifies images; {type(net).__name__} is not a classification "
                             "net. On segmentation pairs use method=seg_source_only, seg_adv or clan")
        super().__init__(net, Classification(net.classifier[-1].out_features), optimizer, runner)

    def encoder_for(self, domain: str) -> nn.Module:
        """The encoder that represents `domain`'s images; ADDA's target domain has its own."""
        return self.net.encoder

    def classifier_for(self, domain: str) -> nn.Sequential:
        """The classifier head for `domain`'s images; ADDA's `adapt_classifier` gives the target its own."""
        return self.net.classifier

    def classify(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.classifier_for(domain)(self.encoder_for(domain)(x))

    def make_optimizer(self, factory: Callable, params, lr_schedule: dict | None):
        """factory(params=...) (a Hydra `_partial_`), with the lr schedule per step if asked: {alpha, beta}
        mu_p = mu_0 / (1 + alpha p)^beta, and / or {decay, every} mu_0 decay^floor(step / every); null keys
        are not used."""
        optimizer = factory(params=params)
        if not lr_schedule or all(v is None for v in lr_schedule.values()):
            return optimizer
        total = max(1, self.trainer.max_steps)
        factor = partial(_lr_factor, total=total, **lr_schedule)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}

    def configure_optimizers(self):
        return self.make_optimizer(self.optimizer, self.parameters(), self.hparams.lr_schedule)


def _lr_factor(step: int, total: int, alpha: float | None = None, beta: float | None = None,
               decay: float | None = None, every: int | None = None) -> float:
    factor = annealed_lr_factor(min(1.0, step / total), alpha, beta) if alpha is not None else 1.0
    return factor * decay ** (step // every) if decay is not None else factor
