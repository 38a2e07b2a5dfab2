from da_bench.losses.grl import GradientReversal, annealed_lr_factor, dann_lambda, grad_reverse

__all__ = ["GradientReversal", "grad_reverse", "dann_lambda", "annealed_lr_factor"]
from da_bench.losses.domain_adversarial import DomainAdversarialLoss

__all__ += ["DomainAdversarialLoss"]
from da_bench.losses.coral import coral_loss
from da_bench.losses.mmd import MMD, linear_mmd

__all__ += ["MMD", "linear_mmd", "coral_loss"]
from da_bench.losses.dsn import difference_loss, scale_invariant_mse
from da_bench.losses.wasserstein import gradient_penalty, wasserstein_estimate

__all__ += ["gradient_penalty", "wasserstein_estimate", "difference_loss", "scale_invariant_mse"]
from da_bench.losses.clan import disagreement_weight, weight_discrepancy, weighted_bce_with_logits

__all__ += ["disagreement_weight", "weight_discrepancy", "weighted_bce_with_logits"]
