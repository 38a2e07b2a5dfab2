"""DDC (Tzeng et al., "Deep Domain Confusion: Maximizing for Domain Invariance", 2014).

L = CE(C(E(x_s)), y_s) + weight * MMD(h(x_s), h(x_t)), with the paper's MMD (its Eq. 1): the squared
distance between the mean representations of the source and target batches on one low-dimensional
adaptation layer h (a linear kernel; losses/mmd.py `linear_mmd`).

Deviation, by choice: the paper inserts a new bottleneck layer before the classifier and picks its width
(256 on AlexNet) and position by the MMD itself; here the adaptation layer is the net's existing last
hidden layer (layers=[-2]: the 100-d fc of the DANN nets, LeNet's 500-d fc), so that every method shares
one architecture. `layers` moves it; what the layer and the batch size do: results/survey/placement.md.

Weight: 0.1, not the paper's 0.25. On the DANN MNIST net (N(0, .1) init) the unbounded linear MMD at 0.25
swamps the classification loss in the first steps and MNIST -> MNIST-M collapses (source accuracy .11,
results/survey/table.md). 0.1 is chosen by the rule that reads no target label (da_bench/selection.py, as WDGRL's):
per pair the largest weight whose source val accuracy stays within 2 points of weight 0's, then the smallest
pick over the pairs: MNIST -> MNIST-M 0.1 (0.25 collapses), MNIST -> USPS 0.25
(results/validators/ddc_weight_source_rule.md; 2,000-step sweep, seed 0, `table=validators method=ddc
method.weight=0,0.01,0.03,0.1,0.25`).
"""
from __future__ import annotations

from da_bench.losses import linear_mmd
from da_bench.methods.alignment import FeatureAlignment


class DDC(FeatureAlignment):
    def __init__(self, net, optimizer, lr_schedule=None, weight: float = 0.1, layers=(-2,), runner=None):
        super().__init__(net, optimizer, lr_schedule, weight, layers, runner)

    def discrepancy(self, f_s, f_t):
        return linear_mmd(f_s, f_t)
