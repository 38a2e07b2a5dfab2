"""Finished runs (metrics.json files) -> result tables: mean +- std over seeds, n, the paper's number.

One table per model-selection rule found in the runs, each labelled with it; missing cells are printed
as missing, never filled in. Paper numbers come from da_bench/paper_numbers.yaml.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

from da_bench.run_dir import measured_overrides
from da_bench.rules import LAST_STEP, SELECTION_RULES

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


def find_runs(paths) -> list[dict]:
    """Every metrics.json under the given directories (or the files themselves)."""
    runs = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(p.rglob("metrics.json"))
        for f in files:
            run = json.loads(f.read_text())
            run["_path"] = str(f)
            runs.append(run)
    return runs


def paper_numbers(table: str | None) -> tuple[dict, str]:
    """{(data, method): accuracy} of `table` (all tables merged when it is None), and the citation."""
    tables = OmegaConf.to_container(OmegaConf.load(PAPER_NUMBERS))
    chosen = [tables[table]] if table in tables else list(tables.values())
    cells = {(d, m): v for t in reversed(chosen) for d, row in t["cells"].items() for m, v in row.items()}
    return cells, "; ".join(t["citation"] for t in chosen)


TABLE_PRESETS = Path(__file__).resolve().parent / "conf" / "table"


@lru_cache(maxsize=None)
def preset_keys(table: str | None) -> frozenset:
    """The keys a table preset sweeps or sets (e.g. trainer.max_steps for table=adda): part of its recipe."""
    path = TABLE_PRESETS / f"{table}.yaml"
    if not table or not path.exists():
        return frozenset()
    params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params") or {}
    return frozenset(params.keys())


def canonical(override: str) -> str:
    """key=value with a number written one way (method.weight=.1, =0.1 and =1e-1 are one variant; 10 and 10.0
    too), so that runs of one setting land in one row; anything else as it was given."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    text = repr(number)
    return f"{key}{sep}{text[:-2] if text.endswith('.0') else text}"


def extra_overrides(run: dict) -> list[str]:
    """The run's measured overrides beyond its table preset's recipe (e.g. data.normalize=unit), numbers
    written canonically."""
    keys = preset_keys(run.get("table"))
    return [canonical(o) for o in measured_overrides(run.get("overrides", [])) if o.split("=", 1)[0] not in keys]


def shared_overrides(runs: list[dict]) -> frozenset:
    """Overrides every run of a table has (e.g. one shortened schedule for all): the table's recipe, stated once
    in its header, not a variant."""
    sets = [set(extra_overrides(r)) for r in runs]
    return frozenset(set.intersection(*sets)) if sets else frozenset()


def variant(run: dict, shared: frozenset = frozenset()) -> str:
    """The run's own overrides (beyond the preset and the overrides all runs share): runs that differ in
    them are not averaged together."""
    return ",".join(o for o in extra_overrides(run) if o not in shared)


def row_name(run: dict, shared: frozenset = frozenset()) -> str:
    v = variant(run, shared)
    return f"{run['method']} [{v}]" if v else run["method"]


def run_metric(run: dict) -> str:
    """The number a run reports: its method's target_metric (test/tgt_acc, or test/tgt_miou for segmentation)."""
    return run.get("target_metric", "test/tgt_acc")


STAGE1 = "test/tgt_acc_stage1"  # ADDA's stage-1 source model on the target test set
STAGE1_ROW = " [stage 1: its source model]"


def selected_values(run: dict, key: str) -> dict[str, float]:
    """{rule: the run's `key` under that rule}: last_step from the run's own test numbers, every validator's
    pick from `selections` (da_bench/snapshots.py)."""
    values = {LAST_STEP: run[key]} if key in run else {}
    for rule, pick in (run.get("selections") or {}).items():
        if rule != LAST_STEP and key in pick:
            values[rule] = pick[key]
    return values


def aggregate(runs: list[dict], metric: str | None = None) -> dict:
    """{selection rule: {(data, row name): [values over seeds]}}; the row name is the method plus its variant.
    An ADDA run also fills the row of its own stage-1 model, right under it (last step)."""
    out: dict = defaultdict(lambda: defaultdict(list))
    shared = shared_overrides(runs)
    for r in runs:
        key = metric or run_metric(r)
        for rule, value in selected_values(r, key).items():
            out[rule][(r["data"], row_name(r, shared))].append(value)
        if key == "test/tgt_acc" and STAGE1 in r:
            out[LAST_STEP][(r["data"], row_name(r, shared) + STAGE1_ROW)].append(r[STAGE1])
    return out


def order(items, preferred):
    """`preferred` first (a method's variants right after it), then the rest sorted."""
    rank = {p: i for i, p in enumerate(preferred)}
    return sorted(items, key=lambda x: (rank.get(x.split(" [")[0], len(rank)), x))


METHOD_ORDER = ["source_only", "dann", "adda", "ddc", "dan", "coral", "wdgrl", "dsn", "daan", "target_only",
                "seg_source_only", "seg_adv", "clan", "seg_target_only"]
METRIC_NAMES = {"test/tgt_acc": "Target-domain test accuracy", "test/tgt_miou": "Target-domain test mIoU"}


def cell(values: list[float]) -> tuple[str, float | None, float | None]:
    if not values:
        return "missing", None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {std:.4f} (n={len(values)})", mean, std


def build_tables(runs: list[dict], table: str | None = None, metric: str | None = None) -> dict[str, list[dict]]:
    """{selection: rows}; a row per (method, data) with mean, std, n, paper and the seeds used."""
    paper, _ = paper_numbers(table)
    if metric not in (None, "test/tgt_acc"):  # the papers' numbers are target accuracies
        paper = {}
    # a paper table's grid is shown whole (cells nobody ran say "missing"); other grids show what ran
    grid = set(paper) if table in OmegaConf.load(PAPER_NUMBERS) else set()
    result = {}
    for selection, cells in aggregate(runs, metric).items():
        datas = order({d for d, _ in cells} | {d for d, _ in grid}, [])
        methods = order({m for _, m in cells} | {m for _, m in grid}, METHOD_ORDER)
        rows = []
        for m in methods:
            for d in datas:
                values = cells.get((d, m), [])
                if not values and (d, m) not in grid:  # a paper cell nobody ran stays, as missing
                    continue
                text, mean, std = cell(values)
                paper_row = "source_only" if m.endswith(STAGE1_ROW) else m.split(" [")[0]
                rows.append({"method": m, "data": d, "mean": mean, "std": std, "n": len(values),
                             "paper": paper.get((d, paper_row)), "text": text})
        result[selection] = rows
    return result


def render(rows: list[dict], fmt: str) -> str:
    """A method x pair grid as 'md', 'csv' or 'tex'."""
    datas = order({r["data"] for r in rows}, [])
    methods = order({r["method"] for r in rows}, METHOD_ORDER)
    by = {(r["method"], r["data"]): r for r in rows}

    def text(m, d, tex=False):
        r = by.get((m, d))
        if r is None:
            return "—"
        paper = f" [paper {r['paper']:.3f}]" if r["paper"] is not None else ""
        body = r["text"].replace("±", r"$\pm$") if tex else r["text"]
        return body + paper

    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["method", "data", "mean", "std", "n", "paper"])
        for r in rows:
            w.writerow([r["method"], r["data"], *(None if v is None else round(v, 6) for v in (r["mean"], r["std"])),
                        r["n"], r["paper"]])
        return buf.getvalue()
    if fmt == "tex":
        lines = [r"\begin{tabular}{l" + "c" * len(datas) + "}", " & ".join(["method", *datas]).replace("_", r"\_")
                 + r" \\", r"\hline"]
        lines += [" & ".join([m.replace("_", r"\_"), *(text(m, d, True) for d in datas)]) + r" \\" for m in methods]
        return "\n".join(lines + [r"\end{tabular}"]) + "\n"
    head = "| method | " + " | ".join(datas) + " |\n|---|" + "---|" * len(datas) + "\n"
    return head + "".join(f"| {m} | " + " | ".join(text(m, d) for d in datas) + " |\n" for m in methods)


def describe(runs: list[dict]) -> str:
    """Provenance lines: commits, devices, seeds, steps, the overrides of the runs."""
    def values(key):
        return ", ".join(sorted({str(r.get(key)) for r in runs}))

    shared = shared_overrides(runs)
    collapsed = [f"{r['data']}/{row_name(r, shared)}/seed{r.get('seed')}" for r in runs if r.get("collapsed")]
    return (f"- runs: {len(runs)}; seeds: {values('seed')}; steps: {values('steps')}\n"
            f"- commits: {values('commit')}; devices: {values('device')}\n"
            + (f"- overrides shared by every run: {', '.join(sorted(shared))}\n" if shared else "")
            + (f"- collapsed (source val accuracy near chance, averaged in all the same): {', '.join(collapsed)}\n"
               if collapsed else ""))


def order_rules(rules) -> list[str]:
    """last_step first, then the validators in VALIDATORS' order (the oracle last), then anything else."""
    rank = {rule: i for i, rule in enumerate(SELECTION_RULES)}
    return sorted(rules, key=lambda r: (rank.get(r, len(rank)), r))


def write_tables(runs: list[dict], out_dir: Path, name: str, table: str | None = None, header: str = "",
                 metric: str | None = None, rules: list[str] | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, citation = paper_numbers(table)
    metrics = [metric] if metric else sorted({run_metric(r) for r in runs}) or ["test/tgt_acc"]
    what = " / ".join(METRIC_NAMES.get(m, m) for m in metrics)
    md = [f"# {name}\n\n", header.strip() + "\n\n" if header.strip() else "", f"{what}, mean ± std over seeds (n runs); "
          f"[paper: {citation}].\n", describe(runs)]
    tables = build_tables(runs, table, metric)
    if rules:
        tables = {r: rows for r, rows in tables.items() if r in rules}
    for selection in order_rules(tables):
        rows = tables[selection]
        suffix = "" if len(tables) == 1 else f"_{selection}"
        label = " (reads target labels: an upper bound, not a result)" if selection == "oracle" else ""
        md += [f"\n## Model selection: {selection}{label}\n\n", render(rows, "md")]
        (out_dir / f"{name}{suffix}.csv").write_text(render(rows, "csv"))
        (out_dir / f"{name}{suffix}.tex").write_text(render(rows, "tex"))
    path = out_dir / f"{name}.md"
    path.write_text("".join(md))
    return path
