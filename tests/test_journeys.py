"""The cluster user's journeys (issue #28), each through the plain command line with the user's defaults:
progress bar on, no debug preset, the default logger; only tiny fixture data, a small batch and few steps.
Interrupt, resume, a time limit with requeue, two grids at once, a bug in one job, divergence, bad input."""
import csv
import json
import re
import signal
import subprocess

import pytest
import yaml

from tests.helpers import REPO, TRAIN, assert_same_weights, run_cli, run_cli_interrupted


def user(fixture_data, log_dir) -> list[str]:
    """What a user of the fixture data types besides the method: where the data and logs are, and a batch
    that fits the fixtures' 45-image training splits."""
    return [f"paths.data_dir={fixture_data}", f"paths.log_dir={log_dir}", "data=usps_mnist", "data.batch_size=8"]


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("da_bench:")]


def only_run(log_dir):
    (metrics,) = log_dir.rglob("metrics.json")
    return metrics.parent, json.loads(metrics.read_text())


def test_ctrl_c_then_sigterm_then_the_same_command_ends_as_an_uninterrupted_run(fixture_data, tmp_path):
    args = [*user(fixture_data, tmp_path / "logs"), "method=dann", "trainer.max_steps=60", "updates_per_step=2"]
    ctrl_c = run_cli_interrupted(args, signal.SIGINT, after=20)
    assert ctrl_c.returncode == 130, ctrl_c.stderr[-2000:]
    assert errors(ctrl_c)[0].startswith("da_bench: interrupted: interrupted in training at step")
    sigterm = run_cli_interrupted(args, signal.SIGTERM, after=40)
    assert sigterm.returncode == 143, sigterm.stderr[-2000:]
    assert errors(sigterm)[0].startswith("da_bench: interrupted: SIGTERM in training at step")
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in ctrl_c.stderr + sigterm.stderr + resumed.stderr
    shown = [int(n) for n in re.findall(r"\| (\d+)/60 \[", resumed.stdout)]
    assert shown and 40 <= shown[0] < 60 and shown[-1] == 60  # the bar counts on from where the run stopped
    run_dir, metrics = only_run(tmp_path / "logs")
    assert metrics["steps"] == 60 and metrics["resumed_from"].endswith("last.ckpt")
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        logged = [row["step"] for row in csv.DictReader(f) if row.get("train/loss_cls")]
    assert len(logged) == len(set(logged)) == 60 // 50, "the curve lost or repeated a logged step"
    twin = run_cli([*user(fixture_data, tmp_path / "twin"), "method=dann", "trainer.max_steps=60", "updates_per_step=2"])
    assert twin.returncode == 0, twin.stderr[-2000:]
    twin_dir, twin_metrics = only_run(tmp_path / "twin")
    assert metrics["test/tgt_acc"] == twin_metrics["test/tgt_acc"]
    assert_same_weights(run_dir, twin_dir)


def test_a_slurm_local_grid_requeues_at_its_time_limit_resumes_and_reports_a_killed_job(fixture_data, tmp_path):
    """launcher=slurm_local: submitit's local executor with the SLURM preset's keys. Both jobs hold at step 20
    (WaitAt) until the time limit's signal; job 0 kills itself (SIGKILL) at step 3 instead: no result, no
    requeue. Job 1 is signalled 20 s after its start, checkpoints, is requeued, resumes and finishes."""
    result = run_cli(["-m", *user(fixture_data, tmp_path), "method=source_only", "trainer.max_steps=60",
                      "launcher=slurm_local", "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=40",
                      "+callbacks.wait._target_=tests.helpers.WaitAt", "+callbacks.wait.step=20",
                      "+callbacks.kill._target_=tests.helpers.SignalAt", "+callbacks.kill.signum=9",
                      "+callbacks.kill.step=3,-1"])
    assert result.returncode == 1, result.stderr[-3000:]
    summary = result.stderr[result.stderr.index("da_bench grid:"):]
    assert summary.startswith("da_bench grid: 1 done, 1 lost") and "kill.step=3" in summary, summary
    assert "Traceback" not in result.stderr
    _, metrics = only_run(tmp_path)
    assert "+callbacks.kill.step=-1" in metrics["overrides"] and metrics["steps"] == 60 and metrics["resumed_from"]
    (grid_file,) = (tmp_path / "runs" / "grids").glob("*.jsonl")
    assert "requeued" in [json.loads(line)["status"] for line in grid_file.read_text().splitlines()]


def test_two_grids_at_once_report_only_their_own_jobs_and_a_dry_run_lists_the_cells(fixture_data, tmp_path):
    common = [*user(fixture_data, tmp_path), "method=source_only", "trainer.max_steps=20"]
    clean = subprocess.Popen([*TRAIN, "-m", *common, "seed=0,1"], cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buggy = run_cli(["-m", *common, "seed=2", "+callbacks.bug._target_=tests.helpers.RaiseAt", "+callbacks.bug.step=5"])
    _, clean_err = clean.communicate(timeout=600)
    assert clean.returncode == 0 and "da_bench grid: 2 done\n" in clean_err, clean_err[-2000:]
    assert buggy.returncode == 1, buggy.stderr[-2000:]
    assert "da_bench grid: 1 failed" in buggy.stderr and "unexpected RuntimeError: a bug at step 5" in buggy.stderr
    dry = run_cli(["-m", *common, "seed=0,1,3", "dry_run=true"])
    assert dry.returncode == 0 and "da_bench grid (dry run): 2 done, 1 missing" in dry.stderr, dry.stderr[-2000:]
    assert not (tmp_path / "runs" / "usps_mnist" / "source_only" / "seed3").exists()  # listed, not created
    dry = run_cli(["-m", *common, "seed=2", "+callbacks.bug._target_=tests.helpers.RaiseAt", "+callbacks.bug.step=5",
                   "dry_run=true"])
    assert "1 failed" in dry.stderr and "a bug at step 5" in dry.stderr, dry.stderr[-2000:]


def test_a_nan_that_reaches_a_snapshot_is_the_divergence_line(fixture_data, tmp_path):
    result = run_cli([*user(fixture_data, tmp_path), "method=dann", "trainer.max_steps=100",
                      "method.optimizer.lr=1e6", "method.lr_schedule=null"])
    assert result.returncode == 3, result.stderr[-2000:]
    assert errors(result) == ["da_bench: training diverged: non-finite source features, source logits, target "
                              "features, target logits, training features at the snapshot of step 5"]
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("*.ckpt"))


def test_ctrl_c_during_start_up_is_one_line(fixture_data, tmp_path):
    result = run_cli_interrupted([*user(fixture_data, tmp_path), "method=dann"], signal.SIGINT, when=rb"Seed set to")
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert errors(result)[0].startswith("da_bench: interrupted")


@pytest.mark.parametrize("args, code, line", [
    (["paths.log_dir=/sys/da_bench_logs"], 4, "da_bench: run directory error: cannot write the run directory "
                                              "/sys/da_bench_logs/runs/usps_mnist/dann/seed0/data.batch_size-8"),
    (["-m", "seed=0,1", "paths.log_dir=/sys/da_bench_logs"], 4, "da_bench: run directory error: cannot write "
                                                                "the run directory /sys/da_bench_logs/runs"),
    (["+trainer.max_stepz=20"], 2, "da_bench: config error: trainer: pytorch_lightning.trainer.trainer.Trainer "
                                   "failed: TypeError: Trainer.__init__() got an unexpected keyword argument 'max_stepz'"),
], ids=["read-only log dir", "read-only log dir, grid", "misspelt trainer key"])
def test_bad_input_is_one_line_with_its_cause(fixture_data, tmp_path, args, code, line):
    multirun = [a for a in args if a == "-m"]
    result = run_cli([*multirun, *user(fixture_data, tmp_path), *(a for a in args if a != "-m")])
    assert result.returncode == code and errors(result) and errors(result)[0].startswith(line), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_an_optuna_sweep_optimises_a_label_free_score_never_a_test_number(fixture_data, tmp_path):
    result = run_cli(["-m", "hparams_search=dann_optuna", "hydra.sweeper.n_trials=2", *user(fixture_data, tmp_path),
                      "trainer.max_steps=20"])
    assert result.returncode == 0 and "da_bench grid: 2 done" in result.stderr, result.stderr[-2000:]
    best = yaml.safe_load((tmp_path / "runs" / "optimization_results.yaml").read_text())["best_value"]
    runs = [json.loads(p.read_text()) for p in tmp_path.rglob("metrics.json")]
    assert len(runs) == 2 and best == max(r["selections"]["im"]["score"] for r in runs)
    tested = {r["test/tgt_acc"] for r in runs} | {pick["test/tgt_acc"] for r in runs for pick in r["selections"].values()}
    assert best not in tested
