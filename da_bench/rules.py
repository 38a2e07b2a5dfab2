"""The model-selection rules by name, and the number a run reports under its rule.

This module imports no torch: the config check, the command line and the tables read these names
before (or without) loading torch and Lightning. The validators' scores live in validators.py, whose
`VALIDATORS` names exactly `VALIDATOR_NAMES` (tests/test_validators.py checks it).
"""
from __future__ import annotations

LAST_STEP = "last_step"  # the papers' rule: no score, the weights at the last step
VALIDATOR_NAMES = ("src_acc", "src_loss", "iwcv", "dev", "entropy", "im", "bnm", "snd", "oracle")
SELECTION_RULES = (LAST_STEP, *VALIDATOR_NAMES)  # every name `selection=` accepts, in the order tables print them


def reported(metrics: dict) -> float:
    """The number a run reports: its target metric under its `selection` rule (the last step by default)."""
    rule, key = metrics.get("selection", LAST_STEP), metrics["target_metric"]
    return metrics[key] if rule == LAST_STEP else metrics["selections"][rule][key]


def objective(metrics: dict, rule: str) -> float | None:
    """What `main` returns to a Hydra sweeper (`optimized_metric`): the score of `rule`'s pick among the run's
    snapshots, on the val splits; never a test number. Only `oracle` reads target labels. None when the run
    has no score under the rule (no snapshots)."""
    pick = (metrics.get("selections") or {}).get(rule)
    return None if rule == LAST_STEP or not pick or pick.get("score") is None else float(pick["score"])
