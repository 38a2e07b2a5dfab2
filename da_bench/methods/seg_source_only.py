"""Segmentation source only: per-pixel cross-entropy on labelled source scenes (the lower-bound row of
CLAN's tables). `SegTargetOnly` trains the same net on labelled target scenes (the oracle row)."""
from __future__ import annotations

import torch.nn.functional as F

from da_bench.methods.segmentation import SegMethod


class SegSourceOnly(SegMethod):
    train_domain = "src"

    def update(self, batch):
        x, y = batch[f"{self.train_domain}_x"], batch[f"{self.train_domain}_y"]
        loss = F.cross_entropy(self.segment(x), y.long())
        self.log_train({"train/loss_seg": loss})
        return loss


class SegTargetOnly(SegSourceOnly):
    uses_target_labels = True
    train_domain = "tgt"
