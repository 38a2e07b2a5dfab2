"""WDGRL's critic objective (Shen et al., AAAI 2018, Eq. 3-5).

W(h_s, h_t) = mean f(h_s) - mean f(h_t) estimates the Wasserstein-1 distance when the critic f is
1-Lipschitz; the gradient penalty (||grad f(h_hat)||_2 - 1)^2 on random interpolates h_hat of the two
batches keeps it so. h_s: B x d, h_t: B' x d (the first min(B, B') rows are paired for interpolation).
"""
from __future__ import annotations

import torch
from torch import nn


def wasserstein_estimate(critic: nn.Module, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
    return critic(h_s).mean() - critic(h_t).mean()


def gradient_penalty(critic: nn.Module, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
    n = min(len(h_s), len(h_t))
    alpha = torch.rand(n, 1, device=h_s.device, dtype=h_s.dtype)
    h_hat = (alpha * h_s[:n] + (1 - alpha) * h_t[:n]).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(h_hat).sum(), h_hat, create_graph=True)
    return (grad.norm(2, dim=1) - 1).square().mean()
