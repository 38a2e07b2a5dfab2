import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from da_bench.run_dir import measured_overrides, run_suffix
from da_bench.tables import find_runs, write_tables
from da_bench.train import train
from tests.helpers import REPO, make_cfg, run_cli

DATA = Path(__file__).parent / "data"


def test_make_tables_matches_the_golden_files(tmp_path):
    result = subprocess.run(["da-bench-tables", str(DATA / "runs"), "--table", "dann",
                             "--name", "dann", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for suffix in ("md", "csv", "tex"):
        assert (tmp_path / f"dann.{suffix}").read_text() == (DATA / "golden" / f"dann.{suffix}").read_text()


def test_tables_never_invent_cells_and_keep_variants_apart(tmp_path):
    text = write_tables(find_runs([DATA / "runs"]), tmp_path, "t", "dann").read_text()
    assert "| target_only | missing [paper 0.960]" in text
    assert "0.7200 ± 0.0200 (n=3)" in text  # the 3 default dann seeds, not the minus_half variant
    assert "| dann [data.normalize=minus_half] | 0.6000 ± 0.0000 (n=1)" in text
    assert "## Model selection: last_step" in text and "commits: abc1234" in text


def test_run_suffix_is_stable_and_ignores_where_things_go():
    a = run_suffix(["method=dann", "seed=1", "trainer.max_steps=5", "paths.data_dir=/x", "launcher=per_gpu"])
    assert a == run_suffix(["trainer.max_steps=5", "paths.log_dir=/y"]) == "trainer.max_steps-5"
    assert run_suffix(["trainer.devices=4", "b=x,y"]) == "b-x+y+trainer.devices-4"  # no "=" or ",": pasteable
    # a deletion stays one in tables and run dirs (the NCHW run is not labelled as the channels-last one)
    assert measured_overrides(["~callbacks.channels_last", "+a=1", "~callbacks.progress_bar"]) == [
        "a=1", "~callbacks.channels_last"]
    assert run_suffix([]) == "defaults"
    long = [f"method.optimizer.lr={i}" for i in range(20)]
    assert run_suffix(long).startswith("h") and run_suffix(long) != run_suffix(long[:-1])


def test_smoke_table_runs_in_parallel_then_a_relaunch_skips_done_runs(fixture_data, tmp_path):
    from da_bench.devices import host_has_gpus

    common = ["-m", "table=smoke", f"paths.data_dir={fixture_data}", f"paths.log_dir={tmp_path}"]
    first = run_cli(common + ["launcher=per_gpu", "gpu_slots=2"])
    assert first.returncode == 0, first.stderr[-3000:]
    runs = find_runs([tmp_path / "runs"])
    assert len(runs) == 4 and {(r["method"], r["seed"]) for r in runs} == {
        (m, s) for m in ("source_only", "dann") for s in (0, 1)}
    assert {r["table"] for r in runs} == {"smoke"}
    if host_has_gpus():
        assert {r["visible_devices"] for r in runs} == {"0", "1"}  # two workers, one GPU slot each
    else:  # nothing to claim: each job says so and runs on the CPU
        assert {r["visible_devices"] for r in runs} == {None}
        assert "this host has no NVIDIA GPU" in first.stdout + first.stderr
    assert {r["threads"] for r in runs} == {max(1, (os.cpu_count() or 1) // 2)}  # the cores shared by 2 workers
    stamps = {r["_path"]: Path(r["_path"]).stat().st_mtime_ns for r in runs}

    # the table's one command: the grid again (every run already done), then its table
    second = run_cli(["smoke", *common[2:], "--out", str(tmp_path / "results")], command=("da-bench-reproduce",))
    assert second.returncode == 0, second.stderr[-3000:]
    assert (second.stdout + second.stderr).count("already done, skipping") == 4
    assert {p: Path(p).stat().st_mtime_ns for p in stamps} == stamps
    assert "(n=2)" in (tmp_path / "results" / "smoke" / "table.md").read_text()


def test_wandb_offline_run_per_job(fixture_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}"
        train(make_cfg(fixture_data, out, ["logger=csv_wandb", f"seed={seed}", "table_name=smoke"]))
        offline = list((out / "wandb").glob("offline-run-*"))
        assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
    import wandb

    assert wandb.run is None  # each job closed its run


def test_wandb_gets_the_results_not_only_the_curves(fixture_data, tmp_path, monkeypatch):
    """The offline run's record log (protobuf: its keys are stored as plain strings) holds the picks' summary,
    the paper's number, metrics.json as an artifact, the run's PNG, the run directory's name and, outside a
    table, the group adhoc; the CSV holds the lr curve."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(make_cfg(fixture_data, tmp_path, ["logger=csv_wandb", "method=dsn", "method.da_start_step=2",
                                            "trainer.log_every_n_steps=2"]))
    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    keys = (b"selections/im/score", b"selections/oracle/test/tgt_acc", b"paper/test/tgt_acc", b"collapsed",
            b"images/reconstructions", b"metrics-", b"mnist_mnistm/dsn/seed0/", b"adhoc")
    deadline = time.monotonic() + 120  # W&B's service process may still be writing the log after finish() returns
    while not all(key in log.read_bytes() for key in keys) and time.monotonic() < deadline:
        time.sleep(1)
    records = log.read_bytes()
    for key in keys:
        assert key in records, key
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        assert [float(r["lr-SGD"]) for r in csv.DictReader(f) if r.get("lr-SGD")]


def test_wandb_summary_names_every_pick_and_the_paper():
    from da_bench.loggers import wandb_summary

    metrics = {"target_metric": "test/tgt_acc", "selection": "im", "collapsed": False, "test/tgt_acc": 0.7,
               "selections": {"last_step": {"step": 10, "score": None, "test/tgt_acc": 0.7, "uses_target_labels": False},
                              "im": {"step": 6, "score": 1.5, "test/tgt_acc": 0.75, "uses_target_labels": False}}}
    summary = wandb_summary(metrics, paper=0.7666)
    assert summary["selections/im/step"] == 6 and summary["selections/im/test/tgt_acc"] == 0.75
    assert "selections/last_step/score" not in summary and summary["reported"] == 0.75
    assert summary["paper/test/tgt_acc"] == 0.7666 and summary["collapsed"] is False


def test_wandb_logger_config_tags_and_group(fixture_data, tmp_path):
    cfg = make_cfg(fixture_data, tmp_path, ["logger=wandb", "method=adda", "data=mnist_usps", "seed=2",
                                            "table_name=adda"])
    node = cfg.logger.wandb
    assert node.group == "adda" and node.name == "mnist_usps/adda/seed2/debug-fast" and node.mode == os.environ.get(
        "WANDB_MODE", "offline")
    assert set(node.tags) == {"method:adda", "data:mnist_usps", "seed:2", "table:adda"}
    adhoc = make_cfg(fixture_data, tmp_path, ["logger=wandb", "method.weight=.1", "method=ddc"]).logger.wandb
    assert adhoc.group == "adhoc" and adhoc.name == "mnist_mnistm/ddc/seed0/debug-fast+method.weight-.1"


@pytest.mark.parametrize("launcher, target", [("per_gpu", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_presets_compose(fixture_data, tmp_path, launcher, target):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher" if launcher == "per_gpu"
                        else "hydra_plugins.hydra_submitit_launcher")
    cfg = make_cfg(fixture_data, tmp_path, [f"launcher={launcher}", "gpu_slots=4"], debug=None)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "per_gpu":
        assert cfg.hydra.launcher.n_jobs == 4
        packed = make_cfg(fixture_data, tmp_path, ["launcher=per_gpu", "gpu_slots=1", "jobs_per_gpu=8"], debug=None)
        assert packed.hydra.launcher.n_jobs == 8
    else:
        assert cfg.hydra.launcher.gpus_per_node == 1


def test_ddp_on_cpu_with_two_processes(fixture_data, tmp_path):
    result = run_cli(["method=dann", "data=usps_mnist", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                      f"paths.data_dir={fixture_data}", f"paths.log_dir={tmp_path}", "debug=fast"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr
    (metrics,) = find_runs([tmp_path / "runs"])
    assert metrics["steps"] == 6 and metrics["device"].startswith("cpu x2")


def test_segmentation_runs_report_their_miou(tmp_path):
    base = {"data": "mnist_mnistm_seg", "selection": "last_step", "table": "clan", "commit": "abc", "device": "cpu",
            "steps": 10, "target_metric": "test/tgt_miou", "test/tgt_acc_unused": 0.99}
    runs = [{**base, "method": "clan", "seed": s, "test/tgt_miou": v} for s, v in ((0, 0.2), (1, 0.3))]
    runs.append({**base, "method": "seg_source_only", "seed": 0, "test/tgt_miou": 0.1})
    text = write_tables(runs, tmp_path, "clan", "clan").read_text()
    assert "Target-domain test mIoU, mean" in text
    assert "| clan | 0.2500 ± 0.0707 (n=2) |" in text and "| seg_source_only | 0.1000 ± 0.0000 (n=1) |" in text
    assert text.index("seg_source_only") < text.index("| clan |")


def test_overrides_every_run_shares_are_the_tables_recipe_not_a_variant(tmp_path):
    base = {"data": "mnist_usps", "selection": "last_step", "table": "survey", "commit": "abc", "device": "cpu",
            "steps": 2000}
    runs = [{**base, "method": "dann", "seed": s, "test/tgt_acc": 0.7, "overrides": ["trainer.max_steps=2000"]}
            for s in (0, 1)]
    runs.append({**base, "method": "dann", "seed": 0, "test/tgt_acc": 0.5,
                 "overrides": ["trainer.max_steps=2000", "method.weight=0.1"]})
    text = write_tables(runs, tmp_path, "s", "survey").read_text()
    assert "overrides shared by every run: trainer.max_steps=2000" in text
    assert "| dann | missing [paper 0.767] | 0.7000 ± 0.0000 (n=2)" in text
    assert "| dann [method.weight=0.1] | — | 0.5000 ± 0.0000 (n=1)" in text


def test_adda_tables_show_its_stage1_model_beside_it(tmp_path):
    from da_bench.tables import build_tables

    base = {"data": "mnist_usps", "selection": "last_step", "target_metric": "test/tgt_acc", "table": "adda"}
    runs = [{**base, "method": "adda", "seed": s, "test/tgt_acc": 0.9 + s / 100, "test/tgt_acc_stage1": 0.7}
            for s in range(2)]
    rows = {r["method"]: r for r in build_tables(runs, "adda")["last_step"] if r["data"] == "mnist_usps"}
    stage1 = rows["adda [stage 1: its source model]"]
    assert stage1["mean"] == pytest.approx(0.7) and stage1["n"] == 2
    assert stage1["paper"] == pytest.approx(0.752) and rows["adda"]["paper"] == pytest.approx(0.894)


def test_weight_rule_keeps_the_largest_weight_that_spares_the_source_task():
    from da_bench.selection import largest_within_source_tolerance

    def run(data, weight, src, tgt):
        return {"data": data, "overrides": [f"method.weight={weight}"], "val/src_acc": src, "test/tgt_acc": tgt}

    runs = [run("a", 0.0, 0.98, 0.5), run("a", 0.1, 0.97, 0.6), run("a", 0.3, 0.965, 0.7), run("a", 1.0, 0.11, 0.1),
            run("b", 0.0, 0.95, 0.7), run("b", 0.1, 0.94, 0.8), run("b", 0.3, 0.90, 0.9), run("b", 1.0, 0.12, 0.1)]
    choice = largest_within_source_tolerance(runs, tolerance=0.02)
    assert choice["per_pair"]["a"]["pick"] == 0.3 and choice["per_pair"]["b"]["pick"] == 0.1
    assert choice["default"] == 0.1
    # the target numbers do not move the choice
    flipped = [{**r, "test/tgt_acc": 1 - r["test/tgt_acc"]} for r in runs]
    assert largest_within_source_tolerance(flipped)["default"] == 0.1
    with pytest.raises(ValueError, match="no run with method.weight=0"):
        largest_within_source_tolerance([r for r in runs if "=0.0" not in r["overrides"][0]])


def test_collapsed_runs_are_named_in_the_table_header(tmp_path):
    from da_bench.tables import describe

    base = {"data": "mnist_mnistm", "selection": "last_step", "method": "wdgrl", "test/tgt_acc": 0.1, "steps": 10}
    text = describe([{**base, "seed": 0, "collapsed": True}, {**base, "seed": 1, "collapsed": False}])
    assert "collapsed (source val accuracy near chance" in text and "mnist_mnistm/wdgrl/seed0" in text
    assert "seed1" not in text.split("collapsed")[1]


def test_a_run_directory_parses_as_a_command_line_value():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    suffix = run_suffix(["trainer.max_steps=2000", "method.weight=-0.1", "data.batch_size=8"])
    path = f"logs/runs/mnist_mnistm/wdgrl/seed0/{suffix}"
    assert OverridesParser.create().parse_override(f"ckpt_path={path}").value() == path


def test_disk_errors_and_divergence_are_one_line():
    import errno

    from da_bench.errors import NonFiniteError
    from da_bench.report import one_line

    message, code = one_line(OSError(errno.ENOSPC, "No space left on device", "/runs/x/last.ckpt"))
    assert code == 4 and message == "disk error: No space left on device: /runs/x/last.ckpt"
    # the CLI's path for any one-line error is tested end to end in test_reliability; this is the code
    assert one_line(NonFiniteError("non-finite train/loss_cls at step 3")) == (
        "training diverged: non-finite train/loss_cls at step 3", 3)
    assert one_line(RuntimeError("a bug")) is None  # bugs keep their traceback


def selection_run(data, method, seed, picks, last, weight=None):
    """A finished run whose validators picked snapshots with these target accuracies: picks = {rule: (score, acc)}."""
    sel = {rule: {"step": 100, "score": score, "test/tgt_acc": acc, "uses_target_labels": rule == "oracle"}
           for rule, (score, acc) in picks.items()}
    sel["last_step"] = {"step": 200, "score": None, "test/tgt_acc": last, "uses_target_labels": False}
    return {"data": data, "method": method, "seed": seed, "selection": "last_step", "target_metric": "test/tgt_acc",
            "test/tgt_acc": last, "selections": sel, "table": "selection",
            "overrides": [f"method.weight={weight}"] if weight is not None else []}


def test_one_table_per_rule_and_the_validator_table(tmp_path):
    from da_bench.selection import render_validator_table, validator_gaps

    runs = [selection_run("mnist_usps", "dann", 0, {"snd": (1.0, 0.80), "src_acc": (0.9, 0.70), "oracle": (0.9, 0.85)}, 0.75),
            selection_run("mnist_usps", "dann", 1, {"snd": (1.0, 0.70), "src_acc": (0.9, 0.74), "oracle": (0.9, 0.80)}, 0.72)]
    text = write_tables(runs, tmp_path, "t").read_text()
    sections = [line for line in text.splitlines() if line.startswith("## Model selection")]
    assert sections == ["## Model selection: last_step", "## Model selection: src_acc", "## Model selection: snd",
                        "## Model selection: oracle (reads target labels: an upper bound, not a result)"]
    assert "0.7500 ± 0.0707 (n=2)" in text.split("## Model selection: snd")[1]  # snd's picks: .80, .70
    gaps = validator_gaps(runs)
    cell = gaps["cells"][("mnist_usps", "dann")]
    assert cell["snd"]["oracle"] == pytest.approx([-0.05, -0.10]) and cell["snd"]["last"] == pytest.approx([0.05, -0.02])
    assert gaps["wins"] == {"snd": 1, "src_acc": 1, "last_step": 0}  # seed 0: snd .80; seed 1: src_acc .74
    table = render_validator_table(gaps)
    assert "| snd | -7.50 (n=2) | -7.50 | +1.50 | 1 |" in table and "| oracle (reads target labels) |" in table


def test_each_rule_picks_a_hyperparameter_and_the_oracle_is_labelled():
    from da_bench.selection import hyperparameter_picks, render_hyperparameter_picks

    runs = [selection_run("mnist_usps", "wdgrl", 0, {"snd": (s, a), "oracle": (a, a)}, a, weight=w)
            for w, s, a in ((0.0, 2.0, 0.70), (0.1, 3.0, 0.80), (1.0, 1.0, 0.90))]
    ddc = selection_run("mnist_usps", "ddc", 0, {"snd": (9.0, 0.10), "oracle": (0.1, 0.10)}, 0.1, weight=0.5)
    picks = hyperparameter_picks(runs + [ddc], "method.weight")  # another method's sweep stays apart
    assert picks["wdgrl mnist_usps"]["snd"] == [(0.1, 0.80)] and picks["wdgrl mnist_usps"]["oracle"] == [(1.0, 0.90)]
    assert "last_step" not in picks["wdgrl mnist_usps"] and picks["ddc mnist_usps"]["snd"] == [(0.5, 0.10)]
    text = render_hyperparameter_picks(picks, "method.weight")
    assert "| snd | 0.5 / 0.1000 (n=1) | 0.1 / 0.8000 (n=1) |" in text
    assert "| oracle (reads target labels) | 0.5 / 0.1000 (n=1) | 1 / 0.9000 (n=1) |" in text


def test_jobs_per_gpu_share_each_gpu(tmp_path, monkeypatch):
    from da_bench import devices

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored afterwards: the claims set it
    monkeypatch.setattr(devices, "host_has_gpus", lambda: False)
    assert devices.claim_gpu_slot(2, tmp_path) is None and os.environ["CUDA_VISIBLE_DEVICES"] == ""  # no GPU: no claim
    monkeypatch.setattr(devices, "host_has_gpus", lambda: True)
    held = []
    for _ in range(4):  # four worker processes, simulated: each keeps its lock
        monkeypatch.setattr(devices, "_claimed", None)
        held.append(devices.claim_gpu_slot(2, tmp_path, jobs_per_gpu=2))
        held.append(devices._claimed[1])
        assert os.environ["CUDA_VISIBLE_DEVICES"] == str(held[-2])
    assert held[0::2] == [0, 1, 0, 1]
    monkeypatch.setattr(devices, "_claimed", None)
    with pytest.raises(RuntimeError, match="gpu_slots x jobs_per_gpu"):
        devices.claim_gpu_slot(2, tmp_path, jobs_per_gpu=2)


def test_run_packed_runs_a_preset_grid_k_at_a_time(fixture_data, tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from run_packed import grid

    assert grid("smoke", ["seed=5", "trainer.max_steps=2"])[0] == [
        "method=source_only", "data=usps_mnist", "seed=5", "trainer.max_steps=2", "trainer.val_check_interval=3",
        "data.batch_size=8", "table_name=smoke"]
    assert grid("smoke", ["seed=5", "method=dann", "~callbacks.channels_last"])[0][:3] == [
        "method=dann", "data=usps_mnist", "seed=5"]  # what --also adds: the preset's grid with these overrides
    result = subprocess.run([sys.executable, "scripts/run_packed.py", "smoke", "--jobs", "2", "method=dann",
                             f"paths.data_dir={fixture_data}", f"paths.log_dir={tmp_path}", "--log-dir",
                             str(tmp_path / "packed")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "table=smoke: 2 runs, 0 failed" in result.stdout
    runs = find_runs([tmp_path / "runs"])
    assert sorted((r["method"], r["seed"], r["table"]) for r in runs) == [("dann", 0, "smoke"), ("dann", 1, "smoke")]


def test_one_setting_written_two_ways_is_one_row():
    from da_bench.tables import row_name

    runs = [{"method": "ddc", "overrides": [f"method.weight={w}", "seed=0"]} for w in (".1", "0.1", "1e-1")]
    assert {row_name(r) for r in runs} == {"ddc [method.weight=0.1]"}
    assert row_name({"method": "dann", "overrides": ["trainer.max_steps=2000", "data.normalize=unit"]}) == \
        "dann [data.normalize=unit,trainer.max_steps=2000]"


def test_the_picture_scripts_draw_a_finished_run(fixture_data, tmp_path):
    """A table against the paper's numbers, learning curves, the target confusion matrix and the feature view,
    each one command and one PNG, on a run as the CLI leaves it."""
    done = run_cli([f"paths.data_dir={fixture_data}", f"paths.log_dir={tmp_path}", "method=dann", "data=usps_mnist",
                    "data.batch_size=8", "trainer.max_steps=8"])
    assert done.returncode == 0, done.stderr[-1500:]
    (run,) = (p.parent for p in tmp_path.rglob("metrics.json"))
    commands = [
        ["da-bench-tables", str(run), "--out", str(tmp_path), "--name", "t", "--table", "survey", "--plot",
         "--wandb"],
        ["da-bench-plot", "curves", "--out", str(tmp_path / "curves.png"), f"dann:8:{run}"],
        ["da-bench-plot", "confusion", str(run), "--out", str(tmp_path / "confusion.png")],
        ["da-bench-plot", "features", str(run), "--samples", "20", "--out", str(tmp_path / "features.png")],
    ]
    for command in commands:
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
        assert done.returncode == 0, (command[0], done.stderr[-1500:])
    for png in ("t_last_step.png", "t_im.png", "t_oracle.png", "curves.png", "confusion.png", "features.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    (log,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")  # the tables' W&B run, offline
    for key in (b"tables/t_last_step", b"tables/t_oracle", b"images/t_im", b"table-t"):
        assert key in log.read_bytes(), key
    confusion = json.loads((run / "metrics.json").read_text())["confusion/test_tgt"]
    assert sum(confusion[i][i] for i in range(10)) / sum(map(sum, confusion)) == pytest.approx(
        json.loads((run / "metrics.json").read_text())["test/tgt_acc"], abs=1e-6)
