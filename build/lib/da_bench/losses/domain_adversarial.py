"""The domain-adversarial loss of DANN (Ganin & Lempitsky 2015, Eq. 10 with the GRL of Sec. 3.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from da_bench.losses.grl import grad_reverse


class DomainAdversarialLoss(nn.Module):
    """L_d(f_s, f_t) = BCE(D(R(f_s)), 1) + BCE(D(R(f_t)), 0), averaged over the 2B samples, where R is the
    gradient reversal layer with coefficient `coeff`. f_s: B_s x d, f_t: B_t x d -> (loss, domain accuracy).
    Minimising it trains D to tell the domains apart and, through R, the features to confuse D."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor, coeff: float = 1.0):
        logits = self.discriminator(grad_reverse(torch.cat([f_s, f_t]), coeff))
        domain = torch.cat([logits.new_ones(len(f_s)), logits.new_zeros(len(f_t))])
        loss = F.binary_cross_entropy_with_logits(logits, domain)
        accuracy = ((logits > 0).float() == domain).float().mean()
        return loss, accuracy
