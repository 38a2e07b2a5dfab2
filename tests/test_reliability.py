"""A broken run is never a result, interruptions resume, and every user error is one line (issue #13)."""
import csv
import functools
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from da_bench.checkpoints import AtomicCheckpointIO, PickledObjectError, previous_of, resume_checkpoint
from da_bench.data.files import cached_arrays
from da_bench.errors import CheckpointError, ConfigError, NonFiniteError, RunDirBusy, RunDirError, RunInterrupted
from da_bench.provenance import git_commit
from da_bench.run_dir import RunLock, discard_unstarted_run
from da_bench.train import train
from tests.helpers import REPO, assert_same_weights, last_checkpoint, make_cfg, run_cli

DIVERGE = ["method=source_only", "method.optimizer.lr=1e6", "method.lr_schedule=null",
           "trainer.log_every_n_steps=1"]


def test_a_diverged_run_writes_no_result_and_no_broken_checkpoint(fixture_data, tmp_path):
    with pytest.raises(NonFiniteError, match="non-finite train/loss_cls"):
        train(make_cfg(fixture_data, tmp_path, DIVERGE))
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize("override, key", [("seed=-1", "seed=-1"), ("trainer.max_steps=abc", "trainer.max_steps='abc'"),
                                           ("trainer.max_steps=0", "trainer.max_steps=0"),
                                           ("data.batch_size=0", "data.batch_size=0"),
                                           ("data.batch_size=-4", "data.batch_size=-4"),
                                           ("snapshots=0", "snapshots=0")])
def test_bad_values_are_named_before_any_data_is_read(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        train(make_cfg(tmp_path / "no-data-here", tmp_path, [override]))


def test_a_missing_checkpoint_is_one_line_with_exit_code_2(fixture_data, tmp_path):
    # the other exit codes: config errors in test_train.py (without torch), divergence in test_tables.py
    missing = tmp_path / "missing.ckpt"
    result = run_cli([f"paths.data_dir={fixture_data}", "debug=fast",
                      f"paths.log_dir={tmp_path / 'runs'}", f"ckpt_path={missing}"])
    lines = [line for line in result.stderr.splitlines() if line.startswith("da_bench:")]
    assert result.returncode == 2 and lines == [f"da_bench: checkpoint error: no checkpoint at {missing}"], \
        result.stderr[-1500:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not list((tmp_path / "runs").rglob("metrics.json"))


def test_only_a_run_directory_hydra_alone_wrote_is_discarded(tmp_path):
    def launched(path):
        (path / ".hydra").mkdir(parents=True)
        (path / "train.log").write_text("")
        return path
    refused, started = launched(tmp_path / "runs" / "a" / "seed0" / "x"), launched(tmp_path / "runs" / "b" / "y")
    (started / "checkpoints").mkdir()
    discard_unstarted_run(refused, tmp_path)
    discard_unstarted_run(started, tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_dir() and ".hydra" not in p.parts)
    assert left == ["runs", "runs/b", "runs/b/y", "runs/b/y/checkpoints"]


# wdgrl (a critic with its own optimiser) on the DataLoader path; dann on the resident batches goes through the
# command line in test_journeys.py
@pytest.mark.parametrize("overrides", [["method=wdgrl", "data.resident=false"]], ids=["wdgrl"])
def test_sigterm_checkpoints_exits_143_and_the_relaunch_ends_as_an_uninterrupted_run(fixture_data, tmp_path,
                                                                                     overrides):
    signal = ["+callbacks.term._target_=tests.helpers.SignalAt", "+callbacks.term.step=3"]
    # a periodic save after the resume (step 5) as well: it must overwrite last.ckpt, not start a last-v1.ckpt
    base = [*overrides, "trainer.max_steps=8", "callbacks.model_checkpoint.every_n_train_steps=5"]
    with pytest.raises(RunInterrupted) as stopped:
        train(make_cfg(fixture_data, tmp_path, base + signal))
    assert stopped.value.exit_code == 143 and "SIGTERM" in str(stopped.value)
    assert not (tmp_path / "metrics.json").exists()
    assert 3 <= last_checkpoint(tmp_path)["global_step"] < 8
    metrics = train(make_cfg(fixture_data, tmp_path, base))
    assert metrics["steps"] == 8 and metrics["resumed_from"].endswith("last.ckpt")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    # the same batches and random draws from the stop on: the weights of a run that was never stopped
    uninterrupted = train(make_cfg(fixture_data, tmp_path / "uninterrupted", base))
    assert uninterrupted["test/tgt_acc"] == metrics["test/tgt_acc"]
    assert_same_weights(tmp_path, tmp_path / "uninterrupted")


def test_a_sigterm_stops_a_grid_with_a_report_and_a_nonzero_exit(fixture_data, tmp_path):
    result = run_cli(["-m", "seed=0,1,2", f"paths.data_dir={fixture_data}", f"paths.log_dir={tmp_path}", "debug=fast",
                      "trainer.max_steps=8", "+callbacks.term._target_=tests.helpers.SignalAt",
                      "+callbacks.term.step=3"])
    assert result.returncode == 143, result.stderr[-2000:]
    assert "da_bench grid: 1 interrupted" in result.stderr and "did not start" in result.stderr
    assert not list(tmp_path.rglob("metrics.json"))


def test_a_corrupt_last_checkpoint_is_moved_aside_and_the_previous_one_used(fixture_data, tmp_path):
    cfg = make_cfg(fixture_data, tmp_path, ["method=dann", "trainer.max_steps=8",
                                            "callbacks.model_checkpoint.every_n_train_steps=3"])
    train(cfg)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]  # a finished run drops its backup
    (tmp_path / "metrics.json").unlink()
    shutil.copy(checkpoints / "last.ckpt", checkpoints / "last.prev.ckpt")  # as an unfinished run leaves them
    (checkpoints / "last.ckpt").write_bytes((checkpoints / "last.ckpt").read_bytes()[:1000])  # truncated
    found = resume_checkpoint(checkpoints)
    assert found == checkpoints / "last.prev.ckpt"
    assert len(list(checkpoints.glob("last.ckpt.corrupt-*"))) == 1
    (checkpoints / "last.prev.ckpt").write_bytes(b"not a checkpoint")
    assert resume_checkpoint(checkpoints) is None  # nothing usable: train from scratch
    assert train(cfg)["resumed_from"] is None


def test_a_failed_checkpoint_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 1}, target)
    before = target.read_bytes()
    with pytest.raises(Exception):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 2, "bad": lambda: 0}, target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "global_step": 3}, target)
    assert previous_of(target).read_bytes() == before and torch.load(target)["global_step"] == 3


def test_checkpoints_that_do_not_fit_are_one_line(fixture_data, tmp_path):
    train(make_cfg(fixture_data, tmp_path / "dann", ["method=dann"]))
    # a run directory is accepted as printed (no "=" in its name), but it holds another method's weights
    with pytest.raises(CheckpointError, match="does not fit ADDA"):
        train(make_cfg(fixture_data, tmp_path / "adda", ["method=adda", f"ckpt_path={tmp_path / 'dann'}"]))
    # an intact checkpoint with a pickled callable in its hyperparameters: named, left in place
    state = last_checkpoint(tmp_path / "dann")
    state["hyper_parameters"] = {"discriminator_optimizer": functools.partial(torch.optim.Adam, lr=1e-4)}
    torch.save(state, tmp_path / "dann" / "checkpoints" / "last.ckpt")
    (tmp_path / "dann" / "metrics.json").unlink()
    with pytest.raises(PickledObjectError, match="last.ckpt stores a pickled functools.partial.*rerun=true"):
        train(make_cfg(fixture_data, tmp_path / "dann", ["method=dann"]))
    assert list((tmp_path / "dann" / "checkpoints").iterdir()) == [tmp_path / "dann" / "checkpoints" / "last.ckpt"]
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.ckpt is unreadable"):
        train(make_cfg(fixture_data, tmp_path / "x", ["method=dann", f"ckpt_path={tmp_path / 'junk.ckpt'}"]))


def test_rerun_archives_the_old_run_and_trains_from_scratch(fixture_data, tmp_path):
    first = train(make_cfg(fixture_data, tmp_path, ["method=source_only"]))
    again = train(make_cfg(fixture_data, tmp_path, ["method=source_only", "rerun=true"]))
    assert again["resumed_from"] is None and again["steps"] == 6
    archived = list((tmp_path / "archive").glob("*/metrics.json"))
    assert len(archived) == 1 and json.loads(archived[0].read_text()) == first


def test_one_run_directory_one_process(fixture_data, tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunDirBusy, match=f"pid {os.getpid()}"):
            train(make_cfg(fixture_data, tmp_path, ["method=source_only"]))
    assert train(make_cfg(fixture_data, tmp_path, ["method=source_only"]))["steps"] == 6  # released

    # a process forked while the lock was held (a DataLoader worker still alive) must not keep it
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    with RunLock(tmp_path):
        worker_may_exit = fork.Event()
        worker = fork.Process(target=worker_may_exit.wait)
        worker.start()
    try:
        with RunLock(tmp_path):
            pass
    finally:
        worker_may_exit.set()
        worker.join()


def test_an_unwritable_run_directory_is_named(fixture_data, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(RunDirError, match="a_file"):
        train(make_cfg(fixture_data, tmp_path / "a_file" / "run", ["method=source_only"]))


def test_a_corrupt_cache_is_rebuilt_and_a_failed_write_leaves_no_temporary(tmp_path, caplog):
    cache = tmp_path / "c.npz"
    build = lambda: (np.zeros((2, 1, 4, 4), np.uint8), np.arange(2))
    cached_arrays(cache, build)
    cache.write_bytes(cache.read_bytes()[:50])
    images, labels = cached_arrays(cache, build)
    assert images.shape == (2, 1, 4, 4) and str(cache) in caplog.text
    host = socket.gethostname()
    (tmp_path / f".c.npz.{host}.999999999.tmp").write_bytes(b"left by a killed writer on this host")
    (tmp_path / f".c.npz.other-node.{os.getpid()}.tmp").write_bytes(b"another node's writer, maybe alive")
    cache.unlink()
    cached_arrays(cache, build)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".c.npz.other-node.{os.getpid()}.tmp", "c.npz"]
    full_disk = tmp_path / "full"
    full_disk.mkdir()
    import unittest.mock

    with unittest.mock.patch("numpy.savez", side_effect=OSError(28, "No space left on device")):
        with pytest.raises(OSError):
            cached_arrays(full_disk / "c.npz", build)
    assert list(full_disk.iterdir()) == []


def test_provenance_is_this_checkout_or_unknown(tmp_path):
    assert git_commit().split("-")[0] != "unknown"
    outer = tmp_path / "other_repo"
    (outer / "vendored" / "da_bench").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(outer)], check=True)
    assert git_commit(outer / "vendored" / "da_bench").startswith("unknown (da_bench ")


def test_the_console_script_runs_end_to_end_from_any_directory(fixture_data, tmp_path):
    result = run_cli(["method=dann", "data=usps_mnist", "seed=3", f"paths.data_dir={fixture_data}",
                      f"paths.log_dir={tmp_path}", "debug=fast"],
                     command=("da-bench-train",), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    (found,) = tmp_path.glob("runs/usps_mnist/dann/seed3/*/metrics.json")
    metrics = json.loads(found.read_text())
    assert metrics["seed"] == 3 and metrics["steps"] == 6


def test_configs_ship_in_the_wheel(tmp_path):
    import shutil
    import zipfile

    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    for package in ("da_bench", "hydra_plugins"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    names = zipfile.ZipFile(next(tmp_path.glob("da_bench-*.whl"))).namelist()
    assert "da_bench/conf/train.yaml" in names and "da_bench/paper_numbers.yaml" in names
    assert "da_bench/conf/method/dann.yaml" in names and "da_bench/conf/table/mnistm.yaml" in names
    assert "da_bench/conf/hydra/launcher/slurm_grid.yaml" in names  # launcher=slurm / slurm_local
    assert "hydra_plugins/da_bench_launchers/submitit_grid.py" in names


def test_a_checkpoint_of_another_seed_or_a_longer_run_is_refused(fixture_data, tmp_path):
    train(make_cfg(fixture_data, tmp_path / "seed5", ["method=dann", "seed=5", "trainer.max_steps=8"]))
    other_seed = make_cfg(fixture_data, tmp_path / "seed7", ["method=dann", "seed=7", "trainer.max_steps=8",
                                                              f"ckpt_path={tmp_path / 'seed5'}"])
    with pytest.raises(CheckpointError, match=r"belongs to another run: seed=5 \(this run: 7\)"):
        train(other_seed)
    shorter = make_cfg(fixture_data, tmp_path / "short", ["method=dann", "seed=5", "trainer.max_steps=4",
                                                           f"ckpt_path={tmp_path / 'seed5'}"])
    with pytest.raises(CheckpointError, match="at step 8, past this run's trainer.max_steps=4"):
        train(shorter)
    assert not list((tmp_path / "seed7").rglob("metrics.json")) + list((tmp_path / "short").rglob("metrics.json"))


def test_a_sigterm_while_testing_exits_143_and_the_relaunch_only_evaluates(fixture_data, tmp_path):
    """Lightning lets an evaluation loop finish its last batch and forgets the signal at the next trainer call:
    without the recipe's own flag this ended with exit 0 and no metrics.json."""
    base = ["method=dann", "trainer.max_steps=8"]
    with pytest.raises(RunInterrupted, match="SIGTERM while testing the trained weights at step 8") as stopped:
        train(make_cfg(fixture_data, tmp_path, base + ["+callbacks.term._target_=tests.helpers.SignalAt",
                                                       "+callbacks.term.phase=test"]))
    assert stopped.value.exit_code == 143 and not (tmp_path / "metrics.json").exists()
    assert last_checkpoint(tmp_path)["global_step"] == 8
    metrics = train(make_cfg(fixture_data, tmp_path, base))
    assert metrics["steps"] == 8 and metrics["resumed_from"].endswith("last.ckpt")


def test_a_fresh_start_drops_a_killed_attempts_curve(fixture_data, tmp_path):
    curve = tmp_path / "csv" / "metrics.csv"
    curve.parent.mkdir(parents=True)
    curve.write_text("epoch,step,train/loss_cls\n0,2,9.0\n0,5,9.0\n")  # kill -9 before the first checkpoint
    train(make_cfg(fixture_data, tmp_path, ["method=source_only"]))
    with open(curve, newline="") as f:
        losses = [(row["step"], row["train/loss_cls"]) for row in csv.DictReader(f) if row.get("train/loss_cls")]
    assert losses and ("2", "9.0") not in losses and ("5", "9.0") not in losses


def test_rerun_gives_the_new_attempt_its_own_wandb_id(tmp_path):
    from da_bench.run_dir import archive_run, run_hash

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = run_hash(run_dir)
    assert run_hash(run_dir) == first  # a resume continues its W&B run
    (run_dir / "metrics.json").write_text("{}")
    archive_run(run_dir)
    assert run_hash(run_dir) != first


def test_disk_wandb_and_instantiation_failures_are_one_line(fixture_data, tmp_path):
    from hydra.errors import InstantiationException

    from da_bench.report import one_line

    with pytest.raises(RuntimeError) as full:
        torch.save({"x": torch.zeros(100_000)}, "/dev/full")  # torch's own error on a full disk
    message, code = one_line(full.value)
    assert code == 4 and message.startswith("disk error: a file could not be written (disk full?)")
    from wandb.errors import UsageError

    message, code = one_line(UsageError("No API key configured. Use `wandb login` to log in."))
    assert code == 2 and message.startswith("W&B: No API key configured") and "logger=csv" in message
    if torch.cuda.is_available():
        return  # trainer=gpu builds there
    with pytest.raises(InstantiationException) as caught:
        train(make_cfg(fixture_data, tmp_path, ["method=source_only", "trainer=gpu"]))
    message, code = one_line(caught.value)
    assert code == 2 and message.startswith("config error: trainer: pytorch_lightning.trainer.trainer.Trainer "
                                            "failed: MisconfigurationException:")


@pytest.mark.parametrize("launcher, expected", [("per_gpu", max(1, (os.cpu_count() or 1) // 3)), ("slurm", 8)])
def test_launcher_presets_give_each_job_its_share_of_cores(fixture_data, tmp_path, launcher, expected):
    cfg = make_cfg(fixture_data, tmp_path, [f"launcher={launcher}", "gpu_slots=3"], debug=None)
    assert cfg.cpus_per_job == expected
