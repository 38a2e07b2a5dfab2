"""Several updates per Lightning training_step (`updates_per_step`, methods/base.py) train the same model as
one update per step: the same batches reach the same updates, max_steps counts updates, logs and
checkpoints are at update steps, and an interrupted run resumes (issue #12)."""
import csv

import pytest
import torch

from da_bench.errors import ConfigError, RunInterrupted
from da_bench.train import train
from tests.helpers import make_cfg

STEPS = ["trainer.max_steps=10", "trainer.val_check_interval=4", "trainer.log_every_n_steps=4"]


def final_state(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def logged_steps(run_dir, prefix):
    (metrics_csv,) = run_dir.rglob("metrics.csv")
    return [int(row["step"]) for row in csv.DictReader(metrics_csv.open())
            if any(value and key.startswith(prefix) for key, value in row.items())]


# dann: the base's single optimiser step and lr schedule; adda: its own optimisers, and stage 2 starts at
# update 5, inside the second call of 4
@pytest.mark.parametrize("method", ["dann", "adda"])
def test_four_updates_per_step_train_the_same_model_as_one(fixture_data, tmp_path, method):
    runs = {k: train(make_cfg(fixture_data, tmp_path / str(k), [f"method={method}", *STEPS, f"updates_per_step={k}"]))
            for k in (1, 4)}
    assert runs[1]["steps"] == runs[4]["steps"] == 10  # 4 + 4 + 2 updates: the last call runs fewer
    one, four = final_state(tmp_path / "1"), final_state(tmp_path / "4")
    assert one.keys() == four.keys()
    for name in one:
        torch.testing.assert_close(four[name], one[name], msg=name)
    assert runs[4]["test/tgt_acc"] == pytest.approx(runs[1]["test/tgt_acc"])
    assert [s["step"] for s in runs[4]["snapshots"]] == [s["step"] for s in runs[1]["snapshots"]] == [4, 8, 10]
    # the loggers' x axis counts updates: validation curves at the same steps, train values at update steps
    # (the last, shorter call ends at update 10 and is a validation batch of its own: K=4 adds a curve point)
    assert logged_steps(tmp_path / "4", "val/")[:2] == logged_steps(tmp_path / "1", "val/")[:2] == [3, 7]
    assert logged_steps(tmp_path / "1", "train/") == [3, 7]
    assert logged_steps(tmp_path / "4", "train/") == [3, 7, 9]  # every call logs (4 // 4); the last ends at 9
    assert "step" not in runs[4]


def test_intervals_that_fall_between_calls_are_named(tmp_path):
    with pytest.raises(ConfigError, match="trainer.val_check_interval=6 is not a multiple of updates_per_step=4"):
        train(make_cfg(tmp_path / "no-data-here", tmp_path, ["updates_per_step=4", "trainer.val_check_interval=6"]))
    with pytest.raises(ConfigError, match="updates_per_step=0"):
        train(make_cfg(tmp_path / "no-data-here", tmp_path, ["updates_per_step=0"]))


def test_an_interrupted_run_with_several_updates_per_step_resumes(fixture_data, tmp_path):
    base = ["method=dann", *STEPS, "updates_per_step=4"]
    signal = ["+callbacks.term._target_=tests.helpers.SignalAt", "+callbacks.term.step=4"]
    with pytest.raises(RunInterrupted):
        train(make_cfg(fixture_data, tmp_path, base + signal))
    step = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert step in (4, 8)  # a signal is acted on between training_steps
    metrics = train(make_cfg(fixture_data, tmp_path, base))
    assert metrics["steps"] == 10 and metrics["resumed_from"].endswith("last.ckpt")


@pytest.mark.parametrize("runner, kind", [("eager", "EagerUpdates"), ("cuda_graphs", "GraphedUpdates")])
def test_the_recipe_builds_the_runner_with_k_and_hands_it_to_the_method(fixture_data, tmp_path, runner, kind):
    """K and the runner reach the method when it is built (issue #31): what the recipe instantiates."""
    from hydra.utils import instantiate

    cfg = make_cfg(fixture_data, tmp_path, ["method=dann", f"runner={runner}", "updates_per_step=4"])
    built = instantiate(cfg.runner, updates_per_step=cfg.updates_per_step)
    method = instantiate(cfg.method, net=instantiate(cfg.net), runner=built, _convert_="all")
    assert method.runner is built and type(built).__name__ == kind and built.updates_per_step == 4
    assert "runner" not in method.hparams  # not in the checkpoint's hyperparameters


def test_no_method_asks_which_runner_it_has():
    """The update rules (da_bench/methods/) hand `runner` to the base and nothing else: no method reads it,
    names a runner class or the fast path, or steps the lr schedulers itself."""
    from pathlib import Path

    import da_bench.methods

    for path in sorted(Path(da_bench.methods.__file__).parent.glob("*.py")):
        if path.name == "base.py":
            continue
        text = path.read_text()
        for word in ("self.runner", "EagerUpdates", "GraphedUpdates", "fast_path", "step_lr_schedulers", ".graphs"):
            assert word not in text, f"{path.name} uses {word}"
