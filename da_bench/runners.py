"""How a method's updates run (issue #31): the update runner.

A method writes its update rule, `Method.update(batch)`; a runner runs it. For each update, on every path,
the runner writes the training progress that the update's schedules read (`Method.schedule_progress`) before
it and steps every lr scheduler once after it. For each Lightning training_step it runs K = updates_per_step
updates, one per batch of the group the datamodule hands over (the last call may run fewer, so that the run
stops at max_steps), and hands the train/* values of the step's last update (`Method.log_train`) to Lightning
once, on the steps the loggers write.

`EagerUpdates` runs each update as Python calls it. `da_bench.fast_path.GraphedUpdates` is its CUDA-graph
variant (captured once, replayed). The recipe builds the runner from `runner=` (conf/runner/) with K and
hands it to the method's constructor; the datamodule gets the same K. A method never asks which runner it has.
"""
from __future__ import annotations

import torch

from da_bench.compat import logs_this_step


class EagerUpdates:
    def __init__(self, updates_per_step: int = 1):
        if updates_per_step < 1:
            raise ValueError(f"updates_per_step={updates_per_step}: must be >= 1")
        self.updates_per_step = updates_per_step
        self.values: dict[str, tuple[torch.Tensor, bool]] = {}  # train/* name -> (value, prog_bar), last update

    @property
    def grouped(self) -> bool:
        """Whether each training_step gets a list of K batches rather than one batch."""
        return self.updates_per_step > 1

    def progress(self, method) -> float | torch.Tensor:
        """p in [0, 1] for this update's schedules."""
        return method.progress

    def keep(self, values: dict, prog_bar: bool) -> None:
        """Train values of the running update, logged by `training_step` if this step writes to the loggers."""
        self.values.update({name: (value, prog_bar) for name, value in values.items()})

    def training_step(self, method, batch: dict | list[dict]) -> None:
        batches = batch if self.grouped else [batch]
        for one in batches[: max(1, method.trainer.max_steps - method.global_step)]:
            self.values = {}
            self.update(method, one)
            method.step_lr_schedulers()
        if logs_this_step(method.trainer):
            for prog_bar in (True, False):  # one log_dict per flag: self.log costs ~1 ms of Python a call
                if values := {name: value for name, (value, bar) in self.values.items() if bar is prog_bar}:
                    method.log_dict(values, prog_bar=prog_bar)
            method.log_update_axis(method.global_step - 1)
            method.log_dict(method.learning_rates(), prog_bar=False)

    def update(self, method, batch: dict) -> None:
        method.run_update(batch)

    # Lightning's hooks, relayed by the method: nothing to do when updates run eagerly
    def on_train_start(self, method) -> None:
        pass

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        pass

    def on_train_end(self, method) -> None:
        pass
