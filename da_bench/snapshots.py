"""Model selection over snapshots: every validator scores the weights at each in-training validation.

Each in-training validation (every trainer.val_check_interval steps: by default max_steps // snapshots, with
`snapshots: 20` in conf/train.yaml) is a snapshot: the callback takes the features and logits that the
method's validation_step returns on the source and target val splits (no second pass over the data), scores
them with every rule of `da_bench.validators` and logs select/<rule>. If the last step was not validated it
is scored at the end of training. The weights of the snapshots some rule currently ranks best stay in memory
(one copy per distinct step; they travel in the checkpoint, so a resumed run keeps its picks). After training,
`selections` reads the test sets once per picked snapshot (the last one was tested already) and returns, per rule,

    {"step": s, "score": v, "test/tgt_acc": a, "test/src_acc": b, "uses_target_labels": bool}

and, with callbacks.snapshots.save_dir=<dir>, writes each rule's picked weights to <dir>/pick_<rule>.pt.

Only `oracle` reads target labels. Segmentation methods are scored on a fixed sample of pixels per val scene
(methods/tasks.py: Segmentation.sample_pixels) and their picks report test mIoU. Ties keep the earlier snapshot.
"""
from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch

from da_bench.errors import NonFiniteError
from da_bench.rules import LAST_STEP
from da_bench.validators import VALIDATORS, Snapshot, score_all

log = logging.getLogger(__name__)
SAME_AS_MODEL = "the checkpoint's model weights"


@torch.no_grad()
def outputs(method, loader, domain: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, logits, labels) of a whole eval loader, on the CPU."""
    feats, logits, labels = [], [], []
    for x, y in loader:
        f, z = method.embed(x.to(method.device), domain)
        feats.append(f.float().cpu()), logits.append(z.float().cpu())
        labels.append(method.task.snapshot_labels(y.to(method.device)).cpu())
    return torch.cat(feats), torch.cat(logits), torch.cat(labels).long()


def evaluate(trainer: pl.Trainer, method, loaders) -> Snapshot:
    """The method (eval mode, the trainer's precision context) on [source loader, target loader]."""
    was_training = method.training
    method.eval()
    precision = getattr(trainer, "precision_plugin", None)
    try:
        with precision.forward_context() if precision is not None else nullcontext():
            src, tgt = (outputs(method, loader, domain) for loader, domain in zip(loaders, ("src", "tgt")))
    finally:
        method.train(was_training)
    return Snapshot(src_features=src[0], src_logits=src[1], src_labels=src[2],
                    tgt_features=tgt[0], tgt_logits=tgt[1], tgt_labels=tgt[2])


class SnapshotSelection(pl.Callback):
    def __init__(self, rules: Sequence[str] | None = None, save_dir: str | None = None):
        unknown = sorted(set(rules or ()) - set(VALIDATORS))
        if unknown:
            raise ValueError(f"callbacks.snapshots.rules: unknown {unknown}; known: {sorted(VALIDATORS)}")
        self.rules, self.save_dir = list(rules or VALIDATORS), save_dir
        self.history: list[dict] = []  # [{"step": s, rule: score, ...}]
        self.best: dict[str, dict] = {}  # rule -> {"step", "score"}
        self.weights: dict[int, dict] = {}  # step -> state_dict, for the steps some rule picks
        self.pending: dict | None = None

    def on_validation_epoch_start(self, trainer, pl_module):
        during_fit = trainer.state.fn == "fit" and not trainer.sanity_checking
        self.pending = {"src": [], "tgt": []} if during_fit else None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self.pending is not None:
            self.pending[("src", "tgt")[dataloader_idx]].append(
                (outputs["features"].float().cpu(), outputs["logits"].float().cpu(), outputs["labels"].cpu()))

    def on_validation_epoch_end(self, trainer, pl_module):
        if self.pending:
            (fs, zs, ys), (ft, zt, yt) = ([torch.cat(parts) for parts in zip(*self.pending[d])] for d in ("src", "tgt"))
            self.record(trainer, pl_module, Snapshot(src_features=fs, src_logits=zs, src_labels=ys.long(),
                                                     tgt_features=ft, tgt_logits=zt, tgt_labels=yt.long()))
        self.pending = None

    def on_train_end(self, trainer, pl_module):
        if not self.history or self.history[-1]["step"] != trainer.global_step:
            self.record(trainer, pl_module, evaluate(trainer, pl_module, trainer.datamodule.val_dataloader()))

    def record(self, trainer: pl.Trainer, pl_module, snapshot: Snapshot) -> None:
        step = trainer.global_step
        if any(VALIDATORS[rule].uses_training_features for rule in self.rules):  # DEV's domain classifier fits on them
            train = evaluate(trainer, pl_module, trainer.datamodule.train_sample_dataloaders())
            snapshot = replace(snapshot, src_train_features=train.src_features, tgt_train_features=train.tgt_features)
        inputs = {"source features": snapshot.src_features, "source logits": snapshot.src_logits,
                  "target features": snapshot.tgt_features, "target logits": snapshot.tgt_logits,
                  "training features": torch.cat([f for f in (snapshot.src_train_features,
                                                               snapshot.tgt_train_features) if f is not None]
                                                  or [torch.zeros(0)])}
        if bad := [name for name, values in inputs.items() if not torch.isfinite(values).all()]:
            # the weights diverged between the guard's checks: no validator can score this (BNM's SVD raises)
            raise NonFiniteError(f"non-finite {', '.join(bad)} at the snapshot of step {step}")
        scores = score_all(snapshot, self.rules)
        self.history.append({"step": step, **scores})
        for logger in trainer.loggers:
            logger.log_metrics({f"select/{rule}": v for rule, v in scores.items()}, step=step)
        # a score that is not finite (DEV's weights overflow when its domain classifier separates the domains)
        # ranks nothing: as a first score it would otherwise stay the pick, since nothing compares above NaN
        improved = [r for r, v in scores.items()
                    if math.isfinite(v) and (r not in self.best or v > self.best[r]["score"])]
        for rule in improved:
            self.best[rule] = {"step": step, "score": scores[rule]}
        if improved:
            self.weights[step] = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        picked = {b["step"] for b in self.best.values()}
        self.weights = {s: w for s, w in self.weights.items() if s in picked}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        """A pick taken at the checkpoint's own step is the weights the checkpoint holds already: it is stored as
        a reference, not as a second copy of the net (the SVHN net's is 125 MB)."""
        weights = checkpoint["callbacks"][self.state_key]["weights"]
        if trainer.global_step in weights:
            weights[trainer.global_step] = SAME_AS_MODEL

    def on_train_start(self, trainer, pl_module):
        self._resolve(pl_module)

    def _resolve(self, pl_module) -> None:
        """The restored model's weights in place of a reference (they are the checkpoint step's: nothing has
        trained since the restore)."""
        for step, weights in self.weights.items():
            if isinstance(weights, str):
                self.weights[step] = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def selections(self, method, test_loaders, last: dict) -> dict[str, dict]:
        """{rule: pick} with test metrics of each picked snapshot, plus 'last_step' from `last` (the test metrics
        the run already computed at the last step, i.e. for the last snapshot's weights, which the method holds
        now: not tested again). The method's own weights are restored afterwards."""
        final = self.history[-1]["step"] if self.history else None
        result = {LAST_STEP: {"step": final, "score": None, **last, "uses_target_labels": False}}
        if not self.best:
            return result
        self._resolve(method)  # a run resumed at max_steps trains no step, so on_train_start never came
        current = {k: v.detach().clone() for k, v in method.state_dict().items()}
        tested = {final: last}  # the last snapshot holds the method's current weights, already tested
        try:
            for step in sorted({b["step"] for b in self.best.values()} - {final}):
                method.load_state_dict(self.weights[step])
                tested[step] = test_scores(method, test_loaders)
        finally:
            method.load_state_dict(current)
        for rule, pick in self.best.items():
            result[rule] = {**pick, **tested[pick["step"]],
                            "uses_target_labels": VALIDATORS[rule].uses_target_labels}
            if self.save_dir:  # asked for: one file per rule, the picked weights (a method state_dict)
                Path(self.save_dir).mkdir(parents=True, exist_ok=True)
                torch.save(self.weights[pick["step"]], Path(self.save_dir) / f"pick_{rule}.pt")
        return result

    def state_dict(self) -> dict:
        return {"history": self.history, "best": self.best, "weights": dict(self.weights)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history, self.best = state_dict["history"], state_dict["best"]
        self.weights = {int(s): w for s, w in state_dict["weights"].items()}


def test_scores(method, loaders) -> dict[str, float]:
    """The task's test metrics (accuracy, or mIoU) of the method's current weights, in eval mode."""
    was_training = method.training
    method.eval()
    try:
        return method.task.test_scores(method, loaders)
    finally:
        method.train(was_training)


def find(callbacks) -> SnapshotSelection | None:
    return next((c for c in callbacks if isinstance(c, SnapshotSelection)), None)

