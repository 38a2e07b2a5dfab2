"""Gradient reversal layer (Ganin & Lempitsky, ICML 2015, Sec. 3.3).

Forward: R(x) = x. Backward: dR/dx = -lambda I, so the feature extractor below it *maximises* the domain
classifier's loss while the classifier itself minimises it (Eq. 9-10 become one SGD step).
"""
from __future__ import annotations

import math

import torch


class GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity on x (any shape); multiplies the gradient flowing back by -coeff."""
    return GradientReversal.apply(x, coeff)


def dann_lambda(progress: float | torch.Tensor, gamma: float = 10.0) -> float | torch.Tensor:
    """The GRL coefficient schedule lambda_p = 2 / (1 + exp(-gamma p)) - 1, p in [0, 1] (0 -> 1); a float, or
    a tensor for a tensor p (the CUDA-graph fast path)."""
    exp = torch.exp if torch.is_tensor(progress) else math.exp
    return 2.0 / (1.0 + exp(-gamma * progress)) - 1.0


def annealed_lr_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """DANN's learning-rate annealing mu_p / mu_0 = 1 / (1 + alpha p)^beta."""
    return (1.0 + alpha * progress) ** -beta
