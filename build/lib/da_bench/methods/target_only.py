"""Train on target (the oracle, "train on target" in DANN's Table 2): the same network and schedule,
cross-entropy on labelled *target* training images. The only method that reads target labels."""
from __future__ import annotations

from da_bench.methods.source_only import SourceOnly


class TargetOnly(SourceOnly):
    uses_target_labels = True
    train_domain = "tgt"
