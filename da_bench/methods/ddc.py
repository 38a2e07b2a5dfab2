"""DDC (Tzeng et al., "Deep Domain Confusion: Maximizing for Domain Invariance", 2014).

L = CE(C(E(x_s)), y_s) + weight * MMD(h(x_s), h(x_t)), with the paper's MMD (its Eq. 1): the squared
distance between the mean representations of the source and target batches on one low-dimensional
adaptation layer h (a linear kernel; losses/mmd.py `linear_mmd`), weight 0.25 as in the paper.

Deviation, by choice: the paper inserts a new bottleneck layer before the classifier and picks its width
(256 on AlexNet) and position by the MMD itself; here the adaptation layer is the net's existing last
hidden layer (layers=[-2]: the 100-d fc of the DANN nets, LeNet's 500-d fc), so that every method shares
one architecture. `layers` moves it.

Measured (results/survey.md): at weight 0.25 on the DANN MNIST net (N(0, .1) init) the linear MMD, which is
unbounded, swamps the classification loss in the first steps and the run collapses (source accuracy .11).
The weight has not been re-chosen for this net yet; `method.weight` sets it.
"""
from __future__ import annotations

from da_bench.losses import linear_mmd
from da_bench.methods.alignment import FeatureAlignment


class DDC(FeatureAlignment):
    def __init__(self, net, optimizer, lr_schedule=None, weight: float = 0.25, layers=(-2,)):
        super().__init__(net, optimizer, lr_schedule, weight, layers)

    def discrepancy(self, f_s, f_t):
        return linear_mmd(f_s, f_t)
