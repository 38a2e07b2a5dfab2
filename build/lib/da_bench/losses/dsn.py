"""The two DSN losses beyond the task and DANN terms (Bousmalis et al., NIPS 2016, Eq. 3 and 4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def scale_invariant_mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L_si_mse = 1/k ||x - x_hat||^2 - 1/k^2 (sum(x - x_hat))^2 per image (k pixels), averaged over the batch:
    penalises differences in shape, not a global shift of intensity. x, x_hat: B x C x H x W."""
    diff = (x - x_hat).flatten(1)
    k = diff.shape[1]
    return (diff.square().sum(1) / k - diff.sum(1).square() / (k * k)).mean()


def difference_loss(shared: torch.Tensor, private: torch.Tensor) -> torch.Tensor:
    """Soft subspace orthogonality ||H_c^T H_p||_F^2 between the shared and private codes of one domain
    (B x d_c and B x d_p), normalised as in the authors' code: rows centred and L2-normalised, and the
    mean over the d_c x d_p correlation matrix taken. 0 when no shared feature correlates with a private
    one over the batch. Computed through B x B Gram matrices: ||A^T B||_F^2 = sum((A A^T) * (B B^T))."""
    h_c = F.normalize(shared - shared.mean(0, keepdim=True), dim=1)
    h_p = F.normalize(private - private.mean(0, keepdim=True), dim=1)
    return ((h_c @ h_c.T) * (h_p @ h_p.T)).sum() / (shared.shape[1] * private.shape[1])
