"""The CUDA-graph fast path (da_bench/fast_path.py, issue #12), rehearsed on the CPU: the static batch buffers,
the device-side progress and learning rates, the lr schedulers stepped outside the update, the deferred
logging and the checkpoint, everything but the capture itself (that needs a CUDA device: gpu_check.sh)."""
import csv
import logging

import pytest
import torch

from da_bench.errors import RunInterrupted
from da_bench.train import train
from tests.helpers import last_checkpoint, make_cfg
from tests.test_segmentation import SMALL_SCENES

REHEARSE = ["runner=cuda_graphs", "runner.rehearse=true", "runner.warmup=2"]


def train_values(run_dir) -> dict[str, list[float]]:
    """Every train/* value the run logged, in step order."""
    (path,) = run_dir.rglob("metrics.csv")
    rows = list(csv.DictReader(path.open()))
    names = sorted({k for row in rows for k in row if k.startswith("train/")})
    return {name: [float(row[name]) for row in rows if row.get(name)] for name in names}


def assert_close_runs(fast_dir, eager_dir, rtol=1e-5, atol=1e-4):
    """Float rounding apart, the same run: the fast path computes the GRL coefficient and Adam's step size
    from 0-d float32 tensors, the eager path from Python floats (measured: WDGRL's critic, 40 Adam steps, differs
    by 2.5e-5 at weights of 0.06; every other weight by 3e-8). A missed lr or GRL step differs by percents."""
    fast, eager = last_checkpoint(fast_dir), last_checkpoint(eager_dir)
    assert fast["global_step"] == eager["global_step"]
    for name, value in eager["state_dict"].items():
        torch.testing.assert_close(fast["state_dict"][name], value, rtol=rtol, atol=atol, msg=name)
    for ours, theirs in zip(fast["optimizer_states"], eager["optimizer_states"], strict=True):
        for group, expected in zip(ours["param_groups"], theirs["param_groups"], strict=True):
            assert isinstance(group["lr"], float) and group["lr"] == pytest.approx(expected["lr"], rel=1e-6)
    ours, theirs = train_values(fast_dir), train_values(eager_dir)
    assert ours.keys() == theirs.keys() and ours
    for name in theirs:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-3, abs=1e-5), name


# one optimiser with the GRL and lr schedules (dann), two stages (adda), a critic with its own optimiser
# (wdgrl), two segmentation optimisers and schedulers with a preheat phase (clan), and DAAN's omega
# re-estimated on the device every 2 steps (its own phase), DAN's multi-kernel MMD (its kernel weights and
# median bandwidth once failed a capture on the H200 that this rehearsal did not catch)
@pytest.mark.parametrize("overrides", [["method=dann"], ["method=adda"], ["method=wdgrl"], ["method=dan"],
                                       ["method=clan", "data=mnist_mnistm_seg", "method.preheat_fraction=0.25",
                                        *SMALL_SCENES],
                                       ["method=daan", "method.omega_interval=2"]],
                         ids=["dann", "adda", "wdgrl", "dan", "clan", "daan"])
def test_the_rehearsed_fast_path_trains_the_eager_model(fixture_data, tmp_path, overrides):
    base = [*overrides, "trainer.max_steps=8", "~callbacks.snapshots"]  # (the validators are not what is tested)
    eager = train(make_cfg(fixture_data, tmp_path / "eager", base))
    fast = train(make_cfg(fixture_data, tmp_path / "fast", base + REHEARSE))
    assert fast["steps"] == eager["steps"] == 8
    assert fast[fast["target_metric"]] == pytest.approx(eager[eager["target_metric"]], abs=1e-6)
    assert_close_runs(tmp_path / "fast", tmp_path / "eager")


def test_the_fast_path_with_several_updates_per_step_and_a_resume(fixture_data, tmp_path):
    steps = ["method=dann", "trainer.max_steps=8", "updates_per_step=2", "trainer.val_check_interval=4",
             "~callbacks.snapshots"]
    base = [*steps, *REHEARSE]
    signal = ["+callbacks.term._target_=tests.helpers.SignalAt", "+callbacks.term.step=4"]
    with pytest.raises(RunInterrupted):
        train(make_cfg(fixture_data, tmp_path / "fast", base + signal))
    train(make_cfg(fixture_data, tmp_path / "fast", base))  # resumes: the checkpoint holds eager-form optimisers
    train(make_cfg(fixture_data, tmp_path / "eager", steps))
    fast, eager = last_checkpoint(tmp_path / "fast"), last_checkpoint(tmp_path / "eager")
    assert fast["global_step"] == eager["global_step"] == 8
    for name, value in eager["state_dict"].items():
        torch.testing.assert_close(fast["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_a_run_off_the_fast_path_says_why_and_trains_eagerly(fixture_data, tmp_path, caplog):
    overrides, why = ["method=dann", "runner=cuda_graphs"], "the device is cpu"
    with caplog.at_level(logging.WARNING, logger="da_bench.fast_path"):
        train(make_cfg(fixture_data, tmp_path, overrides + ["trainer.max_steps=2"]))
    assert any(why in record.getMessage() and "trains eagerly" in record.getMessage() for record in caplog.records)


def test_a_replayed_update_counts_as_a_global_step(tmp_path):
    """A replay runs no Lightning optimiser wrapper; count_manual_update adds the step the wrapper would have counted."""
    import pytorch_lightning as pl

    from da_bench.compat import count_manual_update

    class Manual(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization, self.layer = False, torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(self.layer(batch[0]).sum())
            opt.step()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 2)), batch_size=2)
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Manual(), data)
    assert trainer.global_step == 3
    count_manual_update(trainer)
    assert trainer.global_step == 4


def test_no_host_reads_names_a_da_bench_line_that_reads_a_tensor_value():
    from da_bench.fast_path import PACKAGE, HostReadError, no_host_reads

    update_rule = compile("weight = 2.0 if ready else 1.0", f"{PACKAGE}/methods/probe.py", "exec")  # da_bench code
    with no_host_reads():
        assert torch.ones(2).sum().item() == 2.0  # a read outside da_bench's code passes
        with pytest.raises(HostReadError, match=r"probe.py:1 reads a tensor's value on the host \(Tensor.__bool__\)"):
            exec(update_rule, {"ready": torch.tensor(True)})
    exec(update_rule, {"ready": torch.tensor(True)})  # restored afterwards


@pytest.mark.parametrize("line, what", [
    ("w = torch.tensor([0.5, 0.5])", r"copies host data to the device each update \(torch.tensor\)"),
    ("w = torch.as_tensor(x)", r"copies host data to the device each update \(torch.as_tensor\)"),
    ("w = x[x > 0]", r"indexes with a boolean mask"),
    ("w = x[:, x[0] > 0]", r"indexes with a boolean mask")])
def test_no_host_reads_names_a_host_copy_or_a_masked_index(line, what):
    """The two syncs DAN's MMD once made (a weight tensor built per call, a masked off-diagonal): a capture
    fails on them, so the CPU rehearsal must too; integer and slice indexing pass."""
    from da_bench.fast_path import PACKAGE, HostReadError, no_host_reads

    x = torch.ones(3, 3)
    with no_host_reads():
        with pytest.raises(HostReadError, match=r"probe.py:1 " + what):
            exec(compile(line, f"{PACKAGE}/losses/probe.py", "exec"), {"torch": torch, "x": x})
        exec(compile("w = x[1:, 0] + x[torch.arange(2)].sum()", f"{PACKAGE}/losses/probe.py", "exec"),
             {"torch": torch, "x": x})
    exec(compile(line, f"{PACKAGE}/losses/probe.py", "exec"), {"torch": torch, "x": x})  # restored afterwards
