"""DDC (Tzeng et al., "Deep Domain Confusion", 2014): MMD with a single Gaussian kernel on one adaptation
(bottleneck) layer, weight 0.25 as in the paper. Here the adaptation layer is the last hidden layer
(LeNet: its fc500 encoder output; DANN nets: the last fc of the label predictor)."""
from __future__ import annotations

from da_bench.losses import MMD
from da_bench.methods.alignment import FeatureAlignment


class DDC(FeatureAlignment):
    def __init__(self, net, optimizer, lr_schedule=None, weight: float = 0.25, layers=(-2,)):
        super().__init__(net, optimizer, lr_schedule, weight, layers)
        self.mmd = MMD(multipliers=(1.0,))

    def discrepancy(self, f_s, f_t):
        return self.mmd(f_s, f_t)
