"""Choosing a hyperparameter without target labels.

`largest_within_source_tolerance`: among runs of one method that differ only in one hyperparameter (e.g.
WDGRL's `method.weight`, with 0 = the same recipe without the adaptation loss), keep, per pair, the largest
value whose *source validation* accuracy (val/src_acc) is within `tolerance` of the value-0 run's; the
default for every pair is the smallest of those picks. A weight that wrecks the source task (features
driven to zero, source accuracy at chance) is therefore never chosen, and no target label is read.
"""
from __future__ import annotations

from collections import defaultdict

SCORE = "val/src_acc"


def override_value(run: dict, key: str) -> float | None:
    for o in run.get("overrides", []):
        name, _, value = o.lstrip("+~").partition("=")
        if name == key:
            return float(value)
    return None


def largest_within_source_tolerance(runs: list[dict], key: str = "method.weight", tolerance: float = 0.02) -> dict:
    """{'per_pair': {data: {'scores': {value: val/src_acc}, 'baseline': score at 0, 'pick': value}},
    'default': the smallest pick}. Runs are averaged per value when several seeds are given."""
    scores: dict = defaultdict(lambda: defaultdict(list))
    for r in runs:
        value = override_value(r, key)
        if value is not None and SCORE in r:
            scores[r["data"]][value].append(r[SCORE])
    per_pair = {}
    for data, by_value in sorted(scores.items()):
        mean = {v: sum(s) / len(s) for v, s in sorted(by_value.items())}
        if 0.0 not in mean:
            raise ValueError(f"{data}: no run with {key}=0 to compare the source validation accuracy with")
        ok = [v for v, s in mean.items() if s >= mean[0.0] - tolerance]
        per_pair[data] = {"scores": mean, "baseline": mean[0.0], "pick": max(ok)}
    if not per_pair:
        raise ValueError(f"no runs with a {key}=... override and {SCORE}")
    return {"per_pair": per_pair, "default": min(p["pick"] for p in per_pair.values())}
