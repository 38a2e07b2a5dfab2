"""DAN (Long et al., ICML 2015): multi-kernel MMD summed over the last fully connected layers (here: every
layer of the label predictor, logits included). Kernels: Gaussian with bandwidths multiplier x the median
squared distance, multipliers 1/4 ... 4, equal weights, averaged (losses/mmd.py).

Where this differs from the paper and from DeepDA (jindongwang/transferlearning, the authors' group's code):
- the paper's family is 2^-8 ... 2^8 x the median heuristic with weights beta learned by a quadratic program;
  here the five multipliers 1/4 ... 4 (DeepDA's five kernels around its bandwidth) with fixed equal weights;
- the paper uses the unbiased linear-time MMD estimate; here the biased quadratic one over the whole batch
  (lower variance at batch 32, and the one DeepDA computes);
- DeepDA sums its five kernels where this averages them: a DAN weight of 1.0 here is 0.2 there."""
from __future__ import annotations

from typing import Sequence

from da_bench.losses import MMD
from da_bench.methods.alignment import FeatureAlignment


class DAN(FeatureAlignment):
    def __init__(self, net, optimizer, lr_schedule=None, weight: float = 1.0, layers=(-3, -2, -1),
                 multipliers: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0), runner=None):
        super().__init__(net, optimizer, lr_schedule, weight, layers, runner)
        self.mmd = MMD(multipliers=multipliers)

    def discrepancy(self, f_s, f_t):
        return self.mmd(f_s, f_t)
