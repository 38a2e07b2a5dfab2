"""Choosing a hyperparameter, and judging the validators, without target labels.

`validator_gaps` / `render_validator_table`: per method x pair, how far each validator's pick falls below the
oracle's (target val labels) and above the last step, and which validator wins most often.
`hyperparameter_picks`: each validator picks a hyperparameter value (and a snapshot) among a sweep's runs.

`largest_within_source_tolerance`: among runs of one method that differ only in one hyperparameter (e.g.
WDGRL's `method.weight`, with 0 = the same recipe without the adaptation loss), keep, per pair, the largest
value whose *source validation* accuracy (val/src_acc) is within `tolerance` of the value-0 run's; the
default for every pair is the smallest of those picks. A weight that wrecks the source task (features
driven to zero, source accuracy at chance) is therefore never chosen, and no target label is read.
"""
from __future__ import annotations

from collections import defaultdict

from da_bench.rules import LAST_STEP
from da_bench.tables import order_rules, row_name, shared_overrides

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


def validator_gaps(runs: list[dict], rows_of=None) -> dict:
    """How much each rule loses against the oracle's pick, per (data, method) over seeds.

    For every run with `selections`: gap_to_oracle = rule's target metric - the oracle pick's, gap_to_last =
    rule's - the last step's (positive: the rule beat the last step); the winner(s) of a run are the rules
    without target labels whose pick scores best on target test. Returns {'cells': {(data, row): {rule:
    {'oracle': [gaps], 'last': [gaps]}}}, 'wins': {rule: count}, 'runs': n}. `rows_of(run)` names a run's row
    (default: its method)."""
    rows_of = rows_of or (lambda r: r["method"])
    cells: dict = defaultdict(lambda: defaultdict(lambda: {"oracle": [], "last": []}))
    wins: dict = defaultdict(int)
    counted = 0
    for r in runs:
        sel, key = r.get("selections") or {}, r.get("target_metric", "test/tgt_acc")
        if "oracle" not in sel or LAST_STEP not in sel:
            continue
        counted += 1
        value = {rule: round(pick[key], 6) for rule, pick in sel.items() if key in pick}  # float32 vs float64
        blind = {rule: v for rule, v in value.items() if not sel[rule].get("uses_target_labels")}
        for rule, v in value.items():
            cells[(r["data"], rows_of(r))][rule]["oracle"].append(v - value["oracle"])
            cells[(r["data"], rows_of(r))][rule]["last"].append(v - value[LAST_STEP])
        best = max(blind.values())
        for rule, v in blind.items():
            wins[rule] += v == best
    return {"cells": cells, "wins": dict(wins), "runs": counted}


def render_validator_table(gaps: dict) -> str:
    """Markdown: one row per rule, one column per (data, method) with the mean gap to the oracle pick in points,
    then the mean over cells of the gap to the oracle and to the last step, and the wins."""
    cells = gaps["cells"]
    columns = sorted(cells)
    rules = order_rules({rule for c in cells.values() for rule in c})
    mean = lambda xs: 100 * sum(xs) / len(xs) if xs else float("nan")
    head = ("| rule | " + " | ".join(f"{m} {d}" for d, m in columns) + " | mean gap to oracle | mean gain over last step "
            "| wins |\n|---|" + "---|" * (len(columns) + 3) + "\n")
    lines = []
    for rule in rules:
        per = [mean(cells[c][rule]["oracle"]) for c in columns if rule in cells[c]]
        last = [mean(cells[c][rule]["last"]) for c in columns if rule in cells[c]]
        label = f"{rule} (reads target labels)" if rule == "oracle" else rule
        lines.append(f"| {label} | " + " | ".join(
            f"{mean(cells[c][rule]['oracle']):+.2f} (n={len(cells[c][rule]['oracle'])})" if rule in cells[c] else "—"
            for c in columns) + f" | {sum(per) / len(per):+.2f} | {sum(last) / len(last):+.2f} | "
            + ("—" if rule == "oracle" else str(gaps["wins"].get(rule, 0))) + " |")
    return head + "\n".join(lines) + "\n"


def swept_value(run: dict, key: str):
    """The run's value of `key`, or of comma-separated keys as a tuple (a search over several, e.g. Optuna's)."""
    values = tuple(override_value(run, k) for k in key.split(","))
    return None if None in values else values[0] if len(values) == 1 else values


def _shown(value) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in value) + ")" if isinstance(value, tuple) else f"{value:g}"


def hyperparameter_picks(runs: list[dict], key: str) -> dict:
    """Each rule picks a hyperparameter value and a snapshot at once: among the runs of one method, pair and seed
    that differ in `key`, the run whose pick scores highest under the rule. {"<method> <data>": {rule: [(value,
    target metric of that pick), one per seed]}}; the oracle's is the upper bound. last_step has no score."""
    groups: dict = defaultdict(list)
    for r in runs:
        value = swept_value(r, key)
        if value is not None and r.get("selections"):
            groups[(f"{r['method']} {r['data']}", str(r.get("seed")))].append((value, r))
    picks: dict = defaultdict(lambda: defaultdict(list))
    for (column, _), members in sorted(groups.items()):
        rules = set.intersection(*(set(r["selections"]) for _, r in members)) - {LAST_STEP}
        for rule in rules:
            value, run = max(members, key=lambda m: m[1]["selections"][rule]["score"])
            picks[column][rule].append((value, run["selections"][rule][run.get("target_metric", "test/tgt_acc")]))
    return picks


def render_hyperparameter_picks(picks: dict, key: str, objective: str | None = None) -> str:
    """`objective`: the rule the sweep optimised (metrics.json `optimized_metric`), marked as the sweeper's pick."""
    columns = sorted(picks)
    rules = order_rules({rule for per in picks.values() for rule in per})
    head = "| rule | " + " | ".join(f"{c}: {key} / target test" for c in columns) + " |\n|---|" + "---|" * len(columns)
    lines = []
    for rule in rules:
        texts = []
        for c in columns:
            chosen = picks[c].get(rule, [])
            values = ", ".join(_shown(v) for v, _ in chosen)
            texts.append(f"{values} / {sum(a for _, a in chosen) / len(chosen):.4f} (n={len(chosen)})" if chosen else "—")
        notes = [note for note, applies in (("the sweep's objective", rule == objective),
                                            ("reads target labels", rule == "oracle")) if applies]
        label = rule + (f" ({', '.join(notes)})" if notes else "")
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    return head + "\n" + "\n".join(lines) + "\n"


VALIDATOR_HEADER = """
## Validators against the oracle

Each run scores its snapshots with every rule on the val splits (da_bench/snapshots.py); a rule's pick is the
snapshot it ranks best. Cells: the pick's target test metric minus the oracle pick's (target *val* labels), in
points, mean over seeds (n). 'mean gain over last step': the pick minus the last step's weights (positive = the
rule beat the papers' last-step rule). 'wins': runs where the rule's pick was the best of the rules that read no
target labels (ties count for each).

"""
SWEEP_HEADER = """
## Hyperparameter chosen by each rule

Among the sweep's runs of one pair and seed, each rule picks the run (and snapshot) it scores highest; cells: the
values picked, one per seed, / the mean target test metric of those picks. The oracle row reads target val labels.
The row marked as the sweep's objective (`optimized_metric`) is the pick a Hydra sweeper (hparams_search) makes.

"""


def validator_sections(runs: list[dict], validators: bool, sweep: str | None) -> str:
    """The markdown appended to a results table: the validator table and / or a sweep's picks per rule."""
    text = ""
    if validators:
        shared = shared_overrides(runs)
        gaps = validator_gaps(runs, rows_of=lambda r: row_name(r, shared))
        if not gaps["runs"]:
            raise ValueError("--validators: no run has snapshot selections (metrics.json 'selections')")
        text += VALIDATOR_HEADER + render_validator_table(gaps)
    if sweep:
        picks = hyperparameter_picks(runs, sweep)
        if not picks:
            raise ValueError(f"--sweep {sweep}: no run with a {sweep}=... override and snapshot selections")
        objectives = {r.get("optimized_metric") for r in runs} - {None}
        text += SWEEP_HEADER + render_hyperparameter_picks(picks, sweep, objectives.pop() if len(objectives) == 1 else None)
    return text
