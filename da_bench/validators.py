"""Unsupervised validators: scores of one set of weights computed on the held-out val splits, higher = better.

Each validator is a small function of what it needs from a `Snapshot` (source val logits / labels / features,
target val logits / features, the features of a fixed sample of each training split; target val labels only
for the oracle). `VALIDATORS` names them; `score_all`
runs every one. Only `oracle` reads target labels (`Validator.uses_target_labels`), and it is never a default.

    >>> logits = torch.zeros(8, 10)                       # a uniform prediction over C = 10 classes
    >>> round(-target_entropy(Snapshot(tgt_logits=logits)), 4) == round(math.log(10), 4)
    True

Shapes: logits N x C, labels N (int), features N x D (the layer before the logits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    src_train_features: torch.Tensor | None = None  # a fixed sample of each training split (DEV, IWCV)
    tgt_train_features: torch.Tensor | None = None
    source_weights: torch.Tensor | None = field(default=None, repr=False)  # snapshot_weights, once per snapshot


def source_accuracy(s: Snapshot) -> float:
    """Source val accuracy: DomainBed's training-domain validation (Gulrajani & Lopez-Paz, ICLR 2021)."""
    return (s.src_logits.argmax(1) == s.src_labels).float().mean().item()


def source_loss(s: Snapshot) -> float:
    """Minus the source val cross-entropy (the risk that IWCV and DEV re-weight)."""
    return -F.cross_entropy(s.src_logits.float(), s.src_labels).item()


DECAYS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)  # DEV's code's grid for its classifier


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, decay: float, balance: float, start=None, iterations: int = 100):
    """(w, b) of an L2-regularised logistic regression (L-BFGS) on standardised features x (double): mean
    log-loss + decay / (2 n) ||w||^2, the scale of sklearn's `alpha`, which DEV's code's grid is for. `start`:
    the (w, b) to begin from (the fit at the next stronger decay: the path converges in far fewer steps)."""
    w0, b0 = start if start is not None else (torch.zeros(x.shape[1], dtype=torch.double), torch.zeros((), dtype=torch.double))
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    # stop when the loss changes by < 1e-6: on separable features (a few dozen rows) the weakly regularised
    # optimum runs off to infinity and would use every iteration; weights move by a few per cent at most
    optimizer = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_change=1e-6)

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b + balance, y) + decay / (2 * len(x)) * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return w.detach(), b.detach()


def domain_weights(src_train: torch.Tensor, tgt_train: torch.Tensor, src_val: torch.Tensor,
                   split_seed: int = 0, decays: tuple[float, ...] = DECAYS) -> torch.Tensor:
    """Importance weights w(x) = p_t(x) / p_s(x) of the source val samples, N_s_val (about 1 on average, not
    normalised: DEV's control variate needs the estimate's own mean), as DEV's protocol computes them (You et
    al., ICML 2019; thuml/Deep-Embedded-Validation): a domain classifier fitted on features of the *training*
    splits (source train vs target), its weight decay chosen among `decays` (DEV's nine) by accuracy on a held-out
    20 % of those features, then applied to the held-out source val features: w = N_s/N_t p(t|x) / p(s|x).
    The same classifier for every method, so that adversarial methods are not judged by their own discriminator.

    Deviation: the classifier is linear (logistic regression, L-BFGS, on standardised features) where DEV's code
    fits an MLP with hidden layers (d, d, 2): nine MLP fits per snapshot on LeNet's 500-d features would cost
    minutes on a CPU at each of a run's 20 snapshots.
    On the digit nets' features the weights come out heavy-tailed under this protocol too (effective sample
    sizes of a few per cent of source val; `scripts/dev_weights.py`, results/selection/table.md)."""
    x = torch.cat([src_train, tgt_train]).double()
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = (x - mean) / std
    y = torch.cat([torch.zeros(len(src_train)), torch.ones(len(tgt_train))]).double()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    fit, held = order[: int(0.8 * len(x))], order[int(0.8 * len(x)):]
    targets = y[fit].sum().item()
    balance = math.log(targets / (len(fit) - targets))  # the fitted rows' prior odds: w is then N_s/N_t p(t|x)/p(s|x)

    def held_out_accuracy(params):
        w, b = params
        return ((x[held] @ w + b + balance > 0).double() == y[held]).double().mean().item()

    fits = []
    for decay in sorted(decays, reverse=True):  # strongest first: each fit starts from the one before
        fits.append(_fit_logistic(x[fit], y[fit], decay, balance, fits[-1] if fits else None))
    w, b = max(fits, key=held_out_accuracy)  # the first of equals: the strongest decay
    return torch.exp(((src_val.double() - mean) / std) @ w + b).float()  # log-odds less the class-balance term


def snapshot_weights(s: Snapshot) -> torch.Tensor:
    """`domain_weights` of the snapshot's source val samples, fitted once and kept (IWCV and DEV share them)."""
    if s.source_weights is None:
        s.source_weights = domain_weights(s.src_train_features, s.tgt_train_features, s.src_features)
    return s.source_weights


def iwcv(s: Snapshot) -> float:
    """Importance-weighted source val accuracy (IWCV: Sugiyama et al., JMLR 2007), self-normalised, with the
    weights of `domain_weights`. Equal domains give w ~ 1 and plain source accuracy."""
    w = snapshot_weights(s)
    correct = (s.src_logits.argmax(1) == s.src_labels).float()
    return ((w * correct).sum() / w.sum()).item()


def dev_risk(weights: torch.Tensor, errors: torch.Tensor) -> float:
    """mean(w l) + eta mean(w) - eta with eta = -Cov(w l, w) / Var(w): the importance-weighted risk with a control
    variate (E[w] = 1), which cancels the noise of the weights' own estimate. Constant errors e give e exactly."""
    weighted = weights * errors
    var = weights.var()
    eta = 0.0 if var < 1e-12 else -(torch.cov(torch.stack([weighted, weights]))[0, 1] / var).item()
    return (weighted.mean() + eta * weights.mean() - eta).item()


def dev(s: Snapshot, error: str = "ce") -> float:
    """Minus the Deep Embedded Validation risk (You et al., ICML 2019) with `domain_weights`. The error of a
    source val sample is its cross-entropy by default (pytorch-adapt's and skada's DEV), or with error="01" its
    0/1 error (DEV's code's example)."""
    if error == "ce":
        errors = F.cross_entropy(s.src_logits.float(), s.src_labels, reduction="none")
    elif error == "01":
        errors = (s.src_logits.argmax(1) != s.src_labels).float()
    else:
        raise ValueError(f"error must be 'ce' or '01', not {error!r}")
    return -dev_risk(snapshot_weights(s), errors)


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
    uses_training_features: bool = False  # reads src_train_features / tgt_train_features


VALIDATORS: dict[str, Validator] = {
    "src_acc": Validator(source_accuracy),
    "src_loss": Validator(source_loss),
    "iwcv": Validator(iwcv, uses_training_features=True),
    "dev": Validator(dev, uses_training_features=True),
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
