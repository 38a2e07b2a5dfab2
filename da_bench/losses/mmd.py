"""Maximum mean discrepancy: DDC's linear MMD (Tzeng et al. 2014) and DAN's multi-kernel MMD with Gaussian
kernels (Long et al., ICML 2015, Eq. 3 with the kernel family of Sec. 3.1).

Linear (DDC, Eq. 1): MMD(f_s, f_t) = || mean_i f_s[i] - mean_j f_t[j] ||^2, the squared distance between the
domains' mean representations (a linear kernel). Gaussian:

MMD^2(f_s, f_t) = sum_u beta_u [ mean k_u(s, s') + mean k_u(t, t') - 2 mean k_u(s, t) ]   (biased estimate)
k_u(a, b) = exp(-||a - b||^2 / (m_u * sigma^2)), sigma^2 the median squared distance of the pooled batch
(detached), m_u the multipliers. f_s: B_s x d, f_t: B_t x d -> a scalar >= 0.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def linear_mmd(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """||mean(f_s) - mean(f_t)||^2 for f_s: B_s x d, f_t: B_t x d -> a scalar >= 0.

    >>> linear_mmd(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([[0.0, 3.0]]))
    tensor(10.)
    """
    return (f_s.mean(0) - f_t.mean(0)).square().sum()


def pooled_sq_distances(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    x = torch.cat([f_s, f_t])
    return torch.cdist(x, x).square()


def off_diagonal(square: torch.Tensor) -> torch.Tensor:
    """The N(N-1) off-diagonal entries of an N x N matrix, by a reshape (a boolean mask would need a
    host sync to size its result, which a CUDA graph cannot capture).

    >>> off_diagonal(torch.arange(9.0).view(3, 3))
    tensor([1., 2., 3., 5., 6., 7.])
    """
    n = len(square)
    return square.flatten()[1:].view(n - 1, n + 1)[:, :-1].flatten()


class MMD(nn.Module):
    def __init__(self, multipliers: Sequence[float] = (1.0,), weights: Sequence[float] | None = None):
        super().__init__()
        self.multipliers = list(multipliers)
        self.weights = list(weights) if weights is not None else [1.0 / len(self.multipliers)] * len(self.multipliers)
        if len(self.weights) != len(self.multipliers):
            raise ValueError("one weight per kernel")
        # on the module's device: a tensor built from the list at each call would be a host-to-device copy
        self.register_buffer("kernel_weights", torch.tensor(self.weights), persistent=False)

    def per_kernel(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """The single-kernel MMD^2 terms (one per multiplier), before weighting."""
        d2 = pooled_sq_distances(f_s, f_t)
        n = len(f_s)
        bandwidth = off_diagonal(d2).median().detach().clamp_min(1e-8)
        terms = []
        for m in self.multipliers:
            k = torch.exp(-d2 / (m * bandwidth))
            terms.append(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())
        return torch.stack(terms)

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        terms = self.per_kernel(f_s, f_t)
        return (self.kernel_weights.to(terms.dtype) * terms).sum()
