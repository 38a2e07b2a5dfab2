"""Deep CORAL (Sun & Saenko, ECCV 2016 workshops, Eq. 1): l_CORAL = ||C_s - C_t||_F^2 / (4 d^2), with C the
(unbiased) feature covariance of each batch. f_s: B_s x d, f_t: B_t x d -> a scalar >= 0."""
from __future__ import annotations

import torch


def covariance(f: torch.Tensor) -> torch.Tensor:
    centred = f - f.mean(0, keepdim=True)
    return centred.T @ centred / (len(f) - 1)


def coral_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    d = f_s.shape[1]
    return (covariance(f_s) - covariance(f_t)).square().sum() / (4 * d * d)
