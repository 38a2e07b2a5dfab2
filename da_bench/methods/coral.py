"""Deep CORAL (Sun & Saenko 2016): CE + weight * ||C_s - C_t||_F^2 / (4 d^2) on the last layer (logits), the
paper's placement; `layers` moves it. What the layer and the batch size do on MNIST -> MNIST-M:
results/survey/placement.md."""
from __future__ import annotations

from da_bench.losses import coral_loss
from da_bench.methods.alignment import FeatureAlignment


class DeepCORAL(FeatureAlignment):
    def __init__(self, net, optimizer, lr_schedule=None, weight: float = 1.0, layers=(-1,), runner=None):
        super().__init__(net, optimizer, lr_schedule, weight, layers, runner)

    def discrepancy(self, f_s, f_t):
        return coral_loss(f_s, f_t)
