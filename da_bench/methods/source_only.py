"""Source only: cross-entropy on labelled source images; the lower-bound row of every UDA table."""
from __future__ import annotations

import torch.nn.functional as F

from da_bench.methods.base import DAMethod


class SourceOnly(DAMethod):
    train_domain = "src"

    def update(self, batch):
        x, y = batch[f"{self.train_domain}_x"], batch[f"{self.train_domain}_y"]
        loss = F.cross_entropy(self.net(x), y)
        self.log_train({"train/loss_cls": loss})
        return loss
