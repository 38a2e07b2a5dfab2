"""Unsupervised validators: scores of one set of weights computed on the held-out val splits, higher = better.

Each validator is a small function of what it needs from a `Snapshot` (source val logits / labels / features,
target val logits / features; target val labels only for the oracle). `VALIDATORS` names them; `score_all`
runs every one. Only `oracle` reads target labels (`Validator.uses_target_labels`), and it is never a default.

    >>> logits = torch.zeros(8, 10)                       # a uniform prediction over C = 10 classes
    >>> round(-target_entropy(Snapshot(tgt_logits=logits)), 4) == round(math.log(10), 4)
    True

Shapes: logits N x C, labels N (int), features N x D (the layer before the logits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass
class Snapshot:
    """What the validators may read, for one set of weights."""
    src_logits: torch.Tensor | None = None
    src_labels: torch.Tensor | None = None
    src_features: torch.Tensor | None = None
    tgt_logits: torch.Tensor | None = None
    tgt_features: torch.Tensor | None = None
    tgt_labels: torch.Tensor | None = None  # the oracle's alone


def source_accuracy(s: Snapshot) -> float:
    """Source val accuracy: DomainBed's training-domain validation (Gulrajani & Lopez-Paz, ICLR 2021)."""
    return (s.src_logits.argmax(1) == s.src_labels).float().mean().item()


def source_loss(s: Snapshot) -> float:
    """Minus the source val cross-entropy (the risk that IWCV and DEV re-weight)."""
    return -F.cross_entropy(s.src_logits.float(), s.src_labels).item()


def domain_weights(src_features: torch.Tensor, tgt_features: torch.Tensor, iterations: int = 100,
                   weight_decay: float = 1e-3) -> torch.Tensor:
    """Importance weights w(x) = p_t(x) / p_s(x) of the source samples, N_s (about 1 on average, not normalised:
    DEV's control variate needs the estimate's own mean): a logistic-regression domain classifier fitted
    (L-BFGS) on the standardised source and target val features, w = n_s/n_t * p(t|x)/p(s|x). The same
    classifier for every method, so that adversarial methods are not judged by their own discriminator."""
    x = torch.cat([src_features, tgt_features]).double()
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.cat([torch.zeros(len(src_features)), torch.ones(len(tgt_features))]).double()
    w = torch.zeros(x.shape[1], dtype=torch.double, requires_grad=True)
    b = torch.zeros((), dtype=torch.double, requires_grad=True)
    balance = math.log(len(tgt_features) / len(src_features))
    optimizer = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b + balance, y) + weight_decay * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return torch.exp(x[: len(src_features)] @ w + b).float()  # the log-odds less the class-balance term


def iwcv(s: Snapshot) -> float:
    """Importance-weighted source val accuracy (IWCV: Sugiyama et al., JMLR 2007), self-normalised, with
    `domain_weights`. Equal domains give w = 1 and plain source accuracy."""
    w = domain_weights(s.src_features, s.tgt_features)
    correct = (s.src_logits.argmax(1) == s.src_labels).float()
    return ((w * correct).sum() / w.sum()).item()


def dev_risk(weights: torch.Tensor, errors: torch.Tensor) -> float:
    """mean(w l) + eta mean(w) - eta with eta = -Cov(w l, w) / Var(w): the importance-weighted risk with a control
    variate (E[w] = 1), which cancels the noise of the weights' own estimate. Constant errors e give e exactly."""
    weighted = weights * errors
    var = weights.var()
    eta = 0.0 if var < 1e-12 else -(torch.cov(torch.stack([weighted, weights]))[0, 1] / var).item()
    return (weighted.mean() + eta * weights.mean() - eta).item()


def dev(s: Snapshot) -> float:
    """1 - the Deep Embedded Validation risk (You et al., ICML 2019) of the 0/1 error, weights by `domain_weights`."""
    errors = (s.src_logits.argmax(1) != s.src_labels).float()
    return 1.0 - dev_risk(domain_weights(s.src_features, s.tgt_features), errors)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def target_entropy(s: Snapshot) -> float:
    """Minus the mean entropy of the target predictions (Morerio et al., ICLR 2018: confident = better)."""
    return -_entropy(s.tgt_logits.float().softmax(1)).mean().item()


def information_maximization(s: Snapshot) -> float:
    """IM: H(mean prediction) - mean H(prediction) on the target (Krause et al., NeurIPS 2010; SHOT, ICML 2020):
    confident and diverse predictions score high; putting every sample in one class scores 0 diversity."""
    p = s.tgt_logits.float().softmax(1)
    return (_entropy(p.mean(0)) - _entropy(p).mean()).item()


def batch_nuclear_norm(s: Snapshot) -> float:
    """BNM: ||P||_* / N for the N x C target prediction matrix P (Cui et al., CVPR 2020): high when the
    predictions are confident and spread over many classes."""
    p = s.tgt_logits.float().softmax(1)
    return (torch.linalg.svdvals(p).sum() / len(p)).item()


def soft_neighborhood_density(s: Snapshot, temperature: float = 0.05, max_samples: int = 2000) -> float:
    """SND (Saito et al., ICCV 2021): the mean entropy of each target sample's softmax-weighted similarity to the
    others (L2-normalised softmax predictions, temperature 0.05, self excluded). High when target samples sit
    in dense neighbourhoods of similar predictions. At most `max_samples` (the first ones) for an N^2 matrix."""
    p = F.normalize(s.tgt_logits[:max_samples].float().softmax(1), dim=1)
    sim = p @ p.T
    sim.fill_diagonal_(float("-inf"))
    return _entropy((sim / temperature).softmax(1)).mean().item()


def oracle(s: Snapshot) -> float:
    """Target val accuracy, read with the target labels: the upper bound the others are measured against."""
    return (s.tgt_logits.argmax(1) == s.tgt_labels).float().mean().item()


@dataclass(frozen=True)
class Validator:
    score: Callable[[Snapshot], float]
    uses_target_labels: bool = False


VALIDATORS: dict[str, Validator] = {
    "src_acc": Validator(source_accuracy),
    "src_loss": Validator(source_loss),
    "iwcv": Validator(iwcv),
    "dev": Validator(dev),
    "entropy": Validator(target_entropy),
    "im": Validator(information_maximization),
    "bnm": Validator(batch_nuclear_norm),
    "snd": Validator(soft_neighborhood_density),
    "oracle": Validator(oracle, uses_target_labels=True),
}


def score_all(snapshot: Snapshot, rules=None) -> dict[str, float]:
    """{rule: score}; the target labels are handed to the rules that declare they read them, and to no other."""
    blind = Snapshot(**{**snapshot.__dict__, "tgt_labels": None})
    return {name: VALIDATORS[name].score(snapshot if VALIDATORS[name].uses_target_labels else blind)
            for name in (rules or VALIDATORS)}
