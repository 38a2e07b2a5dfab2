"""CLAN's two losses (Luo et al., CVPR 2019, Sec. 3; the official code's forms).

- `disagreement_weight`: the self-adaptive weight of each target pixel's adversarial term,
      w = lambda_local * M(p1, p2) + epsilon,   M = 1 - cos(p1, p2) over the class axis,
  p1, p2: B x K x H x W softmax maps of the two classifiers -> B x H x W. Equal maps give epsilon,
  orthogonal ones lambda_local + epsilon: pixels whose category is not aligned yet are pushed harder.
- `weight_discrepancy`: cos(vec(W1), vec(W2)) + 1 over the flattened parameters of the two classifiers
  (the official code adds 1 to keep the loss positive): 2 for equal, 1 for orthogonal, 0 for opposite.
- `weighted_bce_with_logits`: the per-pixel BCE against a constant domain label, times an optional weight.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F


def disagreement_weight(p1: torch.Tensor, p2: torch.Tensor, lambda_local: float, epsilon: float) -> torch.Tensor:
    return lambda_local * (1 - F.cosine_similarity(p1, p2, dim=1)) + epsilon


def weight_discrepancy(params1: Iterable[torch.Tensor], params2: Iterable[torch.Tensor]) -> torch.Tensor:
    w1 = torch.cat([p.reshape(-1) for p in params1])
    w2 = torch.cat([p.reshape(-1) for p in params2])
    return F.cosine_similarity(w1, w2, dim=0) + 1


def weighted_bce_with_logits(logits: torch.Tensor, label: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """logits B x 1 x H x W, a domain label (0 / 1), weight B x H x W or None -> the mean weighted BCE."""
    loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="none")
    if weight is not None:
        loss = loss * weight.unsqueeze(1)
    return loss.mean()
